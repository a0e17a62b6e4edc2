"""What kind of thing a scan's path names. A scan is read from a file (NIfTI, a DICOM image, a zip export) or a
folder; anything else is refused before it is opened. Opening a named pipe that nothing writes to waits forever
(``upscale`` hung without a word), and a device or a socket holds no scan: reading ``/dev/zero`` ended in
"Empty file" from nibabel."""

from __future__ import annotations

import stat
from pathlib import Path

from heart_sr_tf.errors import DataError

KINDS = {  # a file type -> how a line names it
    stat.S_IFIFO: "a named pipe (FIFO)",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
    stat.S_IFSOCK: "a socket",
}


SCAN = "a scan is read from a NIfTI or DICOM file, or a folder"


def check_scan_path(path: Path, reads: str = SCAN) -> None:
    """A DataError naming ``path`` when it exists and is neither a regular file nor a folder (symbolic links are
    followed), ending with what is read instead (``reads``); a missing path is left to the reader, which says
    so."""
    try:
        mode = Path(path).stat().st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISDIR(mode):
        return
    kind = KINDS.get(stat.S_IFMT(mode), "not a regular file")
    raise DataError(path, f"{kind}, not a file or folder: {reads}")
