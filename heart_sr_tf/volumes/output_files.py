"""What may stand at an output file's path before any work: nothing, or (with ``--overwrite``) a file to replace.

A folder is never replaced by a file, and a link is replaced, not written through: the result goes to a temporary
file that is renamed over the path at the end, so a check here is what keeps a long run from failing at its last
step, or from replacing what the user put there without being asked.
"""

from __future__ import annotations

import os
from pathlib import Path

from heart_sr_tf.errors import HeartSRError


def occupied(path: Path) -> bool:
    """Something stands at ``path``: a file, a folder, or a link (one to nothing too)."""
    return path.exists() or path.is_symlink()


def refuse_existing(path: Path, overwrite: bool) -> None:
    """Refuse a file output's path that holds a folder, or anything at all unless ``overwrite``."""
    path = Path(path)
    if not occupied(path):
        return
    if path.is_dir():
        raise HeartSRError(f"{path}: is a folder, not a file")
    if not overwrite:
        dangling = f" (a link to {os.readlink(path)}, which does not exist)" if not path.exists() else ""
        raise HeartSRError(f"{path}: exists{dangling}; pass --overwrite to replace it")
