"""Where the tool keeps what it makes once and reuses: prepared datasets, phantoms, OpenVINO conversions of a
read-only model (``$HEART_SR_CACHE``, else ``~/.cache/heart-sr-tf``); and the lock under which one process at a
time builds each of them."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("HEART_SR_CACHE", Path.home() / ".cache" / "heart-sr-tf"))


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
    digest = hashlib.sha1(str(Path(place).absolute()).encode()).hexdigest()[:16]
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
