"""Progress bars: tqdm with rate and ETA on stderr, configured once for every long-running command.

On a terminal the bar redraws in place; elsewhere (CI, log files) it prints a plain line at most every
10 seconds, so logs stay readable.
"""

from __future__ import annotations

import sys

from tqdm.auto import tqdm


def progress_bar(total: int | None, desc: str, unit: str, initial: int = 0, disable: bool = False) -> tqdm:
    """A bar over ``total`` items; ``initial`` counts work done before (a resumed run), so its rate and ETA
    cover only the work done now."""
    tty = sys.stderr.isatty()
    return tqdm(
        total=total,
        initial=initial,
        desc=desc,
        unit=unit,
        disable=disable,
        file=sys.stderr,
        mininterval=0.1 if tty else 10.0,
        maxinterval=10.0,
        dynamic_ncols=tty,
        ncols=None if tty else 120,
        ascii=not tty,
    )
