"""Where the tool writes, checked before any work, so that a long run never fails at its last step on a path that
could not have been written, and never replaces what the user put there without being asked.

- The place: a folder to create or reuse, or an output file's folder, can be made (no link to nothing on the way, no
  file where a folder must be, a folder this process can write in).
- The path itself: an output file's path holds nothing, or (with ``--overwrite``) a file to replace. A folder is
  never replaced by a file, and a link is replaced, not written through: results go to a temporary file that is
  renamed over the path at the end.
- Again at the end, in the placing itself (:func:`place_file`, :data:`APPEARED`): a file that appeared at the path while
  the work ran (another process's, a file copied there by hand) stays as it is unless ``--overwrite`` was given.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
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


@contextmanager
def left_as_found(folder: Path):
    """The block may create the output folder ``folder`` (and its missing parents): those of them it leaves empty
    (it failed before writing anything: a source folder with no patient in it, a scheduler it cannot reach) are
    removed again, so that a refused command leaves no empty folder behind."""
    folder = Path(folder).absolute()
    missing = [place for place in (folder, *folder.parents) if not place.exists() and not place.is_symlink()]
    try:
        yield
    finally:
        for place in missing:  # (deepest first)
            try:
                place.rmdir()  # only an empty folder goes
            except OSError:
                break


def make_folder(path: Path) -> Path:
    """``path`` created with its parents (or kept), after :func:`check_place`; an error of the file system is one
    DataError naming it."""
    check_place(path)
    try:
        Path(path).mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DataError(path, f"cannot create it ({os_reason(exc)})") from None
    return Path(path)


def occupied(path: Path) -> bool:
    """Something stands at ``path``: a file, a folder, or a link (one to nothing too)."""
    return path.exists() or path.is_symlink()


APPEARED = (
    "appeared while this run worked (another process put it there); it is left as it is and this result was not "
    "written: give another output, or --overwrite to replace it"
)


def place_file(tmp: Path, path: Path, overwrite: bool) -> None:
    """The finished file ``tmp`` becomes ``path``: renamed over it with ``overwrite``; else hard-linked there and
    then unlinked, so that the check and the placing are one step. A link fails if anything at all stands at
    ``path``, even one that came an instant before, where a check then a rename would have replaced it. Where the
    file system makes no hard links: a check for anything there just before the rename."""
    tmp, path = Path(tmp), Path(path)
    if not overwrite:
        try:
            os.link(tmp, path)
        except FileExistsError:
            raise DataError(path, APPEARED) from None
        except OSError:  # no hard links here (some network and FAT file systems): the check, then the rename
            pass
        else:
            tmp.unlink()
            return
    if not overwrite and occupied(path):  # (checked free at the start, so it came while the work ran)
        raise DataError(path, APPEARED)
    tmp.replace(path)


def same_file(path: Path, other: Path) -> bool:
    """``path`` and ``other`` are one file: the same path spelt otherwise, a link to it or a hard link."""
    path, other = Path(path), Path(other)
    try:
        if path.exists() and other.exists():
            return os.path.samefile(path, other)
        return path.resolve() == other.resolve()
    except (OSError, RuntimeError):  # (unreadable, or a loop of links: no file to be the other)
        return False


def refuse_input(path: Path, in_path: Path | None, what: str = "") -> None:
    """An output that would replace the input scan is refused, with ``--overwrite`` too: OUT itself, or a side
    output named from it (``--measure``'s label map of OUT ``a.nii.gz`` is ``a_labels.nii.gz``), which ``what``
    names."""
    if in_path is not None and same_file(path, in_path):
        raise DataError(path, f"refusing to overwrite the input scan{f' ({what} goes there)' if what else ''}")


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Refuse a file output's path that holds a folder, or anything at all unless ``overwrite``."""
    path = Path(path)
    if not occupied(path):
        return
    if path.is_dir():
        raise DataError(path, "is a folder, not a file")
    if not overwrite:
        dangling = f" (a link to {os.readlink(path)}, which does not exist)" if not path.exists() else ""
        raise DataError(path, f"exists{dangling}; pass --overwrite to replace it")
