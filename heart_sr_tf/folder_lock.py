"""One writer at a time in a folder. Two runs writing the same folder (a second terminal, a job scheduled twice,
a scheduler's requeue while the first still runs) would interleave their rows and overwrite each other's files,
and nothing would say so. So a run holds a lock file there from its checks to its last line,
``.heart-sr-<kind>.lock`` (``cohort``: a cohort's ``--out-dir``; ``train``: a training run's folder;
``evaluate``: evaluate's ``--out``), created atomically, naming the host and process that hold it. A second run
is refused in one line naming them. A lock left by a run that was killed (SIGKILL, a crash) is taken over where
its process is known to be gone (same host); a lock from another host (a shared file system) cannot be checked,
and the line says which file to remove once that run is known to be over.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import contextmanager
from pathlib import Path

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.processes import process_alive

# lock kind -> how a line names the run holding it
WRITERS = {"cohort": "cohort", "train": "training run", "evaluate": "evaluation"}


def lock_name(kind: str) -> str:
    """The lock file's name in the folder for writers of ``kind`` (a key of :data:`WRITERS`)."""
    return f".heart-sr-{kind}.lock"


@contextmanager
def folder_lock(folder: Path, kind: str):
    """Hold ``folder``'s lock for ``kind`` while the block runs; refuse (:class:`HeartSRError`) if another run
    holds it."""
    path = Path(folder) / lock_name(kind)
    host, pid = socket.gethostname(), os.getpid()
    for _ in range(2):  # (a second try after a stale lock is removed)
        try:
            handle = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            _refuse_or_clear(path, host, WRITERS[kind])
            continue
        with os.fdopen(handle, "w") as f:
            f.write(f"{host}\n{pid}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n")
        break
    else:
        raise HeartSRError(f"{folder}: another {WRITERS[kind]} took its lock ({path}) just now")
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _refuse_or_clear(path: Path, host: str, writer: str) -> None:
    """Refuse while the lock's run may be alive; remove a lock whose process on this host is gone."""
    try:
        held_host, held_pid, since = (path.read_text().splitlines() + ["", "", ""])[:3]
    except OSError:
        return  # (removed meanwhile: try again)
    if held_host == host and held_pid.isdigit() and not process_alive(int(held_pid)):
        path.unlink(missing_ok=True)  # a run killed before it could remove its lock
        return
    where = f"process {held_pid or '?'} on {held_host or 'an unknown host'}, since {since or 'an unknown time'}"
    advice = (
        f"wait for it to finish or stop it (if no {writer} is running there, remove {path})"
        if held_host == host
        else f"if that run is over (its host cannot be checked from here), remove {path}"
    )
    raise HeartSRError(f"{path.parent}: another {writer} is writing here ({where}); {advice}")
