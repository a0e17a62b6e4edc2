"""Where the tool will create a folder, or a file in one: checked before any work, so a long run never fails at its
last step on a path that could not have been written (a link to nothing, a file where a folder must be, a folder
that cannot be written)."""

from __future__ import annotations

import os
from pathlib import Path

from heart_sr_tf.errors import DataError, os_reason


def check_place(path: Path, named: Path | None = None) -> None:
    """``path`` (a folder to create or reuse, or a file's folder) can be made: no link to nothing on the way to it,
    and the nearest folder that exists is one this process can write in. One DataError naming ``named`` (what the
    user gave: the file whose folder ``path`` is), else ``path``."""
    path = Path(path)
    shown = Path(named) if named is not None else path
    for place in (path, *path.parents):
        what = "" if place == shown else f"{place} "  # ("out: is a file", "out/run: out is a file")
        if place.is_symlink() and not place.exists():
            raise DataError(shown, f"{what}is a link to {os.readlink(place)}, which does not exist")
        if place.exists():
            if not place.is_dir():
                raise DataError(shown, f"{what}is a file, not a folder")
            if not os.access(place, os.W_OK | os.X_OK):
                raise DataError(shown, f"cannot write in {place}")
            return


def make_folder(path: Path) -> Path:
    """``path`` created with its parents (or kept), after :func:`check_place`; an error of the file system is one
    DataError naming it."""
    check_place(path)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(path, f"cannot create it ({os_reason(exc)})") from None
    return Path(path)
