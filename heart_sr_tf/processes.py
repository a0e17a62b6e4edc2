"""Whether the process that left a temporary file behind is still running (its files are then not stale)."""

from __future__ import annotations

import os
from pathlib import Path


def process_alive(pid: int) -> bool:
    """True for a running process of this host. A zombie (killed, not yet reaped by its parent: a Dask worker
    killed with SIGKILL while its nanny restarts it) is no longer running: its files are stale."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return not _zombie(pid)


def _zombie(pid: int) -> bool:
    """Linux's /proc says the process is a zombie (state Z) or dead (X); elsewhere, not known: False."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    state = stat.rsplit(")", 1)[-1].split()[:1]  # the name in parentheses may hold spaces and ')'
    return state in (["Z"], ["X"])
