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


def holder(folder: Path, kind: str) -> str | None:
    """Who holds ``folder``'s lock for ``kind`` (``process P on HOST, since T``), for a reader that must not read
    the folder while it is written; None when there is no lock, or its process on this host is gone. The lock
    is left as it is."""
    held = _read(Path(folder) / lock_name(kind))
    return None if held is None or _gone(*held) else _where(*held)


def _read(path: Path) -> tuple[str, str, str] | None:
    """The host, process and time a lock file names; None when there is none."""
    try:
        return tuple((path.read_text().splitlines() + ["", "", ""])[:3])
    except OSError:
        return None


def _gone(host: str, pid: str, since: str) -> bool:
    """The lock's process is known to be gone: it ran on this host and is no longer alive."""
    return host == socket.gethostname() and pid.isdigit() and not process_alive(int(pid))


def _where(host: str, pid: str, since: str) -> str:
    return f"process {pid or '?'} on {host or 'an unknown host'}, since {since or 'an unknown time'}"


def _refuse_or_clear(path: Path, host: str, writer: str) -> None:
    """Refuse while the lock's run may be alive; remove a lock whose process on this host is gone."""
    held = _read(path)
    if held is None:
        return  # (removed meanwhile: try again)
    if _gone(*held):
        path.unlink(missing_ok=True)  # a run killed before it could remove its lock
        return
    advice = (
        f"wait for it to finish or stop it (if no {writer} is running there, remove {path})"
        if held[0] == host
        else f"if that run is over (its host cannot be checked from here), remove {path}"
    )
    raise HeartSRError(f"{path.parent}: another {writer} is writing here ({_where(*held)}); {advice}")
