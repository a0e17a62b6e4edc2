"""Where the tool keeps what it makes once and reuses: prepared datasets, phantoms, OpenVINO conversions of a
read-only model and OpenVINO's compiled models (``$HEART_SR_CACHE``, else ``~/.cache/heart-sr-tf``); the lock
under which one process at a time builds each of them; and the bound on what grows with use (compiled models, one
per model, precision and input shape)."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from heart_sr_tf.errors import HeartSRError

COMPILED_LIMIT_ENV = "HEART_SR_COMPILED_CACHE_MB"
COMPILED_LIMIT_MB = 1024.0  # OpenVINO's compiled models, a few MB each: a few hundred shapes


def cache_root() -> Path:
    """``$HEART_SR_CACHE``, else ``~/.cache/heart-sr-tf``; set but empty counts as unset (a script's empty variable
    made the current folder the cache)."""
    return Path(os.environ.get("HEART_SR_CACHE") or Path.home() / ".cache" / "heart-sr-tf")


def compiled_limit() -> int:
    """How many bytes the compiled models may take (``$HEART_SR_COMPILED_CACHE_MB``, default 1024 MB; 0 keeps
    none), checked when read."""
    text = os.environ.get(COMPILED_LIMIT_ENV, "").strip()
    if not text:
        return int(COMPILED_LIMIT_MB * 1e6)
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not value >= 0 or value == float("inf"):
        raise HeartSRError(f"{COMPILED_LIMIT_ENV}: must be a number of megabytes, 0 or more, got {text!r}")
    return int(value * 1e6)


def prune_oldest(folder: Path, limit: int) -> int:
    """When the files in ``folder`` take more than ``limit`` bytes, remove the least recently used (by the later
    of their access and modification times) until they take at most three quarters of it, so that a cache at its
    bound is not pruned again by every process. Each file is a copy of what can be made again; one that another
    process removed first, or that cannot be removed, is passed over. Returns the bytes removed."""
    files = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return 0
    for entry in entries:
        try:
            if entry.is_file(follow_symlinks=False):
                info = entry.stat(follow_symlinks=False)
                files.append((max(info.st_atime, info.st_mtime), info.st_size, entry.path))
        except OSError:
            continue
    total = sum(size for _, size, _ in files)
    if total <= limit:
        return 0
    removed = 0
    for _, size, path in sorted(files):
        if total - removed <= limit * 3 // 4:
            break
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        except OSError:
            continue
        removed += size
    return removed


@contextmanager
def building(place: Path) -> Iterator[None]:
    """Held while this process builds ``place`` (a prepared dataset, the phantoms, a model's OpenVINO conversion):
    another process that would build the same place waits here, then finds it built, instead of writing into the
    same folder or removing it under a reader (two `train` runs started together on a fresh machine, test
    workers). The lock is a file under the cache root, named by the place; where locks cannot be taken (no
    ``fcntl``: not POSIX; a read-only cache root), the build goes on unlocked, as before."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        fcntl = None
    digest = hashlib.sha1(os.fsencode(Path(place).absolute())).hexdigest()[:16]
    handle = None
    if fcntl is not None:
        try:
            (cache_root() / "locks").mkdir(parents=True, exist_ok=True)
            handle = open(cache_root() / "locks" / f"{Path(place).name}-{digest}.lock", "w")  # noqa: SIM115
        except OSError:
            handle = None
    if handle is None:
        yield
        return
    with handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            print(f"waiting: another process is building {place}", file=sys.stderr, flush=True)
            fcntl.flock(handle, fcntl.LOCK_EX)
        yield
