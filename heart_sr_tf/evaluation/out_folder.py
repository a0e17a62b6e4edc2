"""evaluate's output folder: whose it is, and what of it evaluate may replace.

Every folder evaluate writes holds ``MARKER``. Its first line says who wrote it; each further line names, relative
to the folder, a file this evaluation wrote there. A new evaluation into the same folder removes exactly those
files, and nothing else, before writing its own: a table or figure of the earlier run is never left beside this
run's as if it were this run's, and a file that anyone else put there, whatever its name, stays. From its
check to its last file, an evaluation holds the folder's lock (:func:`held`): two evaluations into one folder at
once would remove each other's files and leave a mixture of both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path, PurePosixPath

from heart_sr_tf.errors import DataError
from heart_sr_tf.folder_lock import folder_lock, lock_name
from heart_sr_tf.outputs import check_place, left_as_found, make_folder

MARKER = ".heart-sr-evaluation"  # in every folder evaluate writes: it may write there again
HEADER = "written by heart-sr-tf evaluate"
LOCK = lock_name("evaluate")  # while an evaluation writes the folder


@contextmanager
def held(out: Path):
    """``out`` checked (:func:`check_out`) and held by this evaluation for the block: a second evaluation into it
    meanwhile is refused in one line naming the process that holds it. The folder is made now, to hold the lock;
    if the evaluation fails before writing anything there, the folders this made are removed again."""
    out = Path(out)
    check_out(out)
    with left_as_found(out):
        make_folder(out)
        with folder_lock(out, "evaluate"):
            yield out


def check_out(out: Path) -> None:
    """Refuse, before any work, an output folder that holds files evaluate did not write: its results
    (summary.json, per_slice.csv, figures/, ...) would replace them. New, empty, or written by an earlier
    evaluate (its marker; before markers, its summary.json) is fine, unless it also holds a file by the name of
    one of evaluate's outputs (clinical_NAME/summary.md, say) that the earlier evaluation did not write."""
    out = Path(out)
    if not out.exists():
        check_place(out)  # (a link to nothing, a file on the way, no write permission: before the work, not after)
        return
    if not out.is_dir():
        raise DataError(out, "is a file; --out is a folder")
    empty = not any(path.name != LOCK for path in out.iterdir())  # (a killed evaluation's lock: taken over)
    if not ((out / MARKER).is_file() or empty or _earlier_evaluation(out / "summary.json")):
        raise DataError(out, "holds files that evaluate did not write; give a new or empty --out")
    listed = listed_outputs(out)
    if listed is None:
        return  # an evaluation whose marker lists nothing: every file of its names is taken as its own
    for path in _named_outputs(out):
        if path.exists() and path.relative_to(out).as_posix() not in listed:
            why = "was not written by evaluate but has one of its outputs' names; move it or give a new --out"
            raise DataError(path, why)


def _earlier_evaluation(summary: Path) -> bool:
    try:
        payload = json.loads(summary.read_text())
    except (OSError, ValueError):
        return False
    return isinstance(payload, dict) and {"split", "source", "protocol", "summary"} <= payload.keys()


def start_marker(out: Path) -> None:
    """The marker of a new evaluation in ``out``, listing nothing yet (:func:`record_outputs` adds each file)."""
    out.mkdir(parents=True, exist_ok=True)
    (out / MARKER).write_text(f"{HEADER}\n")


def record_outputs(out: Path, paths: Iterable[Path]) -> None:
    """Name ``paths`` (files this evaluation wrote under ``out``) in its marker: the next evaluation there removes
    them, and only them."""
    listed = listed_outputs(out) or []
    new = [name for name in (Path(p).relative_to(out).as_posix() for p in paths) if name not in listed]
    if new:
        with (out / MARKER).open("a") as marker:
            marker.writelines(f"{name}\n" for name in new)


def listed_outputs(out: Path) -> list[str] | None:
    """The files the marker names, or None for a folder whose marker lists none (written before markers listed
    their files, or with no marker but an evaluation's summary.json)."""
    try:
        lines = (out / MARKER).read_text(errors="replace").splitlines()
    except OSError:
        return None
    names = [line for line in lines[1:] if line]
    return names or None


# What an evaluation wrote before its marker listed its files: these names, in the folder and in each
# clinical_NAME folder (another segmenter's tables), and the figures.
OUTPUT_NAMES = (
    *("summary.json", "summary.csv", "summary.md", "per_patient.csv", "per_slice.csv", "clinical.json"),
    *("clinical_frames.csv", "clinical_patients.csv", "clinical_cines.csv", "clinical_bland_altman.png"),
)
FIGURE_NAME = re.compile(r"(full|heart)_.+_f\d+_s\d+\.png")  # figures/: see evaluate.figures


def clear_earlier(out: Path) -> None:
    """Remove what an earlier evaluate wrote in ``out`` (which :func:`check_out` let this one write again), once
    this one's work is done and its results are about to be written. Files that anyone else put there stay, and
    a sub-folder left empty is removed."""
    listed = listed_outputs(out)
    if listed is not None:
        earlier = [out / name for name in listed if _inside(name)]
    elif (out / MARKER).is_file() or _earlier_evaluation(out / "summary.json"):
        earlier = _named_outputs(out)
    else:
        return
    emptied = set()
    for path in earlier:
        if path.is_file() and not path.is_symlink() and not _through_link(out, path):
            path.unlink()
            emptied.add(path.parent)
    for folder in sorted(emptied - {out}, key=lambda f: len(f.parts), reverse=True):
        while folder != out and folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()
            folder = folder.parent


def _inside(name: str) -> bool:
    """A marker's line names a file under the folder: relative, without ``..``."""
    parts = PurePosixPath(name).parts
    return bool(parts) and not PurePosixPath(name).is_absolute() and ".." not in parts


def _through_link(out: Path, path: Path) -> bool:
    """``path`` lies under a linked folder inside ``out``: what it reaches is not the evaluation's to remove."""
    folder = path.parent
    while folder != out:
        if folder.is_symlink():
            return True
        folder = folder.parent
    return False


def _named_outputs(out: Path) -> list[Path]:
    """An earlier evaluation's files by their names (its marker lists none)."""
    folders = [out, *(p for p in sorted(out.glob("clinical_*")) if p.is_dir() and not p.is_symlink())]
    paths = [folder / name for folder in folders for name in OUTPUT_NAMES]
    figures = out / "figures"
    if figures.is_dir() and not figures.is_symlink():
        paths += [picture for picture in sorted(figures.iterdir()) if FIGURE_NAME.fullmatch(picture.name)]
    return paths
