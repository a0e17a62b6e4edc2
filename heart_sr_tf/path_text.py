"""File names as text. A name that is not valid UTF-8 (a Latin-1 ``Müller.nii`` copied from an old Windows share or
zip archive) reaches Python with surrogates standing for its bytes, and writing it as UTF-8 fails. The text files
that record paths (a cohort's status and measurement tables, a run's data folder, evaluate's tables) are written and
read with :data:`PATH_TEXT`: such a name is stored as the very bytes it has on disk and read back as the same path,
so that a resumed cohort finds it again. The lines the CLI prints escape it (:func:`printable_streams`).
"""

from __future__ import annotations

import codecs
import sys

PATH_TEXT = {"encoding": "utf-8", "errors": "surrogateescape"}  # open(..., **PATH_TEXT)


def as_text(name: str) -> str:
    """``name`` (a file or folder name) with its undecodable bytes as escapes (``M\\xfcller``): a label that any
    text holds (a dataset's patient, which TensorFlow stores as UTF-8)."""
    return name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def printable_streams() -> None:
    """stdout and stderr print any file name: where the locale makes them strict (``en_US.UTF-8``), a name's
    undecodable bytes would raise UnicodeEncodeError in the line that names a result, after the work is done.
    They print as escapes (``M\\udcfcller.nii``), as Python's stderr does by default."""
    for stream in (sys.stdout, sys.stderr):
        if getattr(stream, "errors", None) == "strict" and hasattr(stream, "reconfigure"):
            try:
                codecs.lookup(stream.encoding)
                stream.reconfigure(errors="backslashreplace")
            except (LookupError, TypeError, ValueError, OSError):  # (a stream that cannot change: left as it is)
                pass


def one_line(text: str) -> str:
    """``text`` with its line breaks and other control characters as escapes (``bad\\nname.nii``): a message that
    names a file whose name holds one stays the one line it is meant to be."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)
