"""What files on disk are now, as one digest of their names, sizes and modification times: a dataset built from
scans, or a cohort's result of a scan, is reused only while the files it came from are unchanged."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable
from pathlib import Path


def digest_files(named: Iterable[tuple[object, Path]]) -> str:
    """A digest of ``(name, path)`` pairs: each name with its file's size and modification time (a missing file
    counts as size -1)."""
    digest = hashlib.sha1()
    for name, path in named:
        try:
            stat = path.stat()
            size, time = stat.st_size, stat.st_mtime_ns
        except OSError:  # a manifest's missing scan: reported by the checks that read it, not here
            size, time = -1, 0
        digest.update(os.fsencode(f"{name}\0{size}\0{time}\n"))  # (names undecodable in UTF-8 too)
    return digest.hexdigest()


def tree_state(path: Path, leave_out: Path | None = None) -> str:
    """:func:`digest_files` of a file, or of every file under a folder (not hidden ones, nor any under
    ``leave_out``: a cohort's results kept inside its inputs' folder)."""
    path = Path(path)
    if not path.is_dir():
        return digest_files([(path.name, path)])
    skip = None if leave_out is None else Path(leave_out).resolve()
    files = []
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        relative = file.relative_to(path)
        if any(part.startswith(".") for part in relative.parts):
            continue
        if skip is not None and file.resolve().is_relative_to(skip):
            continue
        files.append((relative, file))
    return digest_files(files)
