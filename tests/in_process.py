"""The command line run inside the test process.

A fresh ``python cli.py`` pays about ten seconds to import TensorFlow before it does anything. Tests that check
what a command prints, returns and writes run it here instead, where TensorFlow is already imported, through
click's runner. Tests of what only a separate process shows keep a subprocess: signals, the quiet start,
several workers, peak memory, an installed copy.
"""

from __future__ import annotations

import os
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass
class Completed:
    """What ``subprocess.run`` would have reported: the exit status and the two streams."""

    returncode: int
    stdout: str
    stderr: str


def run_cli(*args, cwd: Path | str = ROOT, env: dict[str, str] | None = None) -> Completed:
    """``python cli.py ARGS`` in this process, in ``cwd`` (the checkout by default), with ``env`` added to the
    environment.

    An exception that escapes the command (a bug: the CLI turns our errors into one line and exit status 2)
    comes back as status 1 with its traceback on stderr, as it would from a subprocess."""
    from click.testing import CliRunner

    from heart_sr_tf.cli import main

    before = os.getcwd()
    handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGTERM, signal.SIGHUP)}
    try:
        os.chdir(cwd)
        result = CliRunner().invoke(main, [str(a) for a in args], env=env, prog_name="cli.py")
    finally:
        os.chdir(before)
        for signum, handler in handlers.items():  # the CLI installs its own for the command's duration
            signal.signal(signum, handler)
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "Traceback (most recent call last):\n" + "".join(traceback.format_exception(result.exception))
    return Completed(result.exit_code, result.stdout, stderr)
