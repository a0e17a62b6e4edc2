"""A DICOM export kept as a zip archive (UK Biobank ships each participant's cines so): unpacked into a temporary
folder, read there as a folder is, and the folder removed; every message names the archive, never the
temporary folder."""

from __future__ import annotations

import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from heart_sr_tf.errors import DataError, os_reason


def is_zip_export(path: Path) -> bool:
    """A ``.zip`` file that is a zip archive."""
    path = Path(path)
    return path.suffix.lower() == ".zip" and path.is_file() and zipfile.is_zipfile(path)


@contextmanager
def unpacked(path: Path) -> Iterator[Path]:
    """The archive's files in a temporary folder, removed afterwards; a member that would land outside it (an
    absolute path or ``..``), an encrypted or damaged archive, more than the temporary folder has room for: one line
    naming the archive. DataErrors raised inside name the archive, then its member (``export.zip: dicom/IM0001.dcm:
    ...``), never the temporary folder."""
    path = Path(path)
    with tempfile.TemporaryDirectory(prefix="heart-sr-zip-") as tmp:
        folder = Path(tmp).resolve()
        try:
            with zipfile.ZipFile(path) as archive:
                size, free = sum(m.file_size for m in archive.infolist()), shutil.disk_usage(folder).free
                if size > free:
                    raise DataError(
                        path, f"unpacks to {size / 1e6:.1f} MB and {free / 1e6:.1f} MB are free in {folder.parent} "
                        "(the temporary folder); point TMPDIR at a folder with room"
                    )  # fmt: skip
                for member in archive.infolist():
                    target = (folder / member.filename).resolve()
                    if target == folder:  # ("./", an archive's own folder)
                        continue
                    if folder not in target.parents:
                        raise DataError(path, f"member {member.filename!r} would land outside the archive's folder")
                    if member.is_dir():
                        continue
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with archive.open(member) as source, open(target, "wb") as out:
                        shutil.copyfileobj(source, out)
        except OSError as exc:
            if exc.filename is not None and Path(exc.filename).resolve() == path.resolve():
                raise DataError(path, f"unreadable zip archive ({os_reason(exc)})") from None
            raise DataError(path, f"cannot unpack it in {folder.parent} ({os_reason(exc)})") from None  # (disk full)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError, RuntimeError, EOFError) as exc:
            raise DataError(path, f"unreadable zip archive ({type(exc).__name__}: {str(exc)[:120]})") from None
        try:
            yield folder
        except DataError as exc:
            raise DataError(path, in_archive(str(exc), folder)) from None


def in_archive(message: str, folder: Path) -> str:
    """``message`` about the unpacked ``folder``, told of the archive: its members by their names in it."""
    message = message.removeprefix(f"{folder}: ")
    return message.replace(f"{folder}/", "").replace(str(folder), "the archive")
