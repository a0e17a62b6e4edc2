"""Names the user gives to folders the tool creates (a run's ``--name``, an export's ``--name``): one folder under
the place they go, never a path that leads elsewhere."""

from __future__ import annotations

import os

from heart_sr_tf.errors import HeartSRError


def check_folder_name(name: str, option: str, under: str) -> str:
    """``name`` when it is one folder's name (no separator, not ``.`` or ``..``, no blank at either end, not
    empty), else a HeartSRError naming ``option`` and the folder it must lie in (``under``)."""
    if not name or name in (".", "..") or any(sep in name for sep in ("/", "\\", os.sep)) or name != name.strip():
        raise HeartSRError(f"{option} {name!r}: {under} (no / and not . or ..)")
    return name
