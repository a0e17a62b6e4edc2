"""A small terminal progress bar with rate and ETA (no dependency beyond the standard library)."""

from __future__ import annotations

import sys
import time


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


class Progress:
    """``with Progress(total, "prepare", unit="patient") as bar: bar.update(1, note)``.

    Redraws in place on a terminal; elsewhere (CI, logs) prints a line at most every
    ``interval`` seconds and at the end.
    """

    def __init__(
        self, total: int | None, label: str, unit: str = "it", stream=None, interval: float = 10.0, enabled=True
    ):
        self.total, self.label, self.unit, self.enabled = total, label, unit, enabled
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.interval = interval if not self.tty else 0.1
        self.count = self.first = 0  # first: where counting started (a resumed run)
        self.note = ""
        self.start = self.last = time.monotonic()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._draw(final=True)

    def update(self, n: int = 1, note: str = "") -> None:
        self.count += n
        self.note = note or self.note
        now = time.monotonic()
        if now - self.last >= self.interval:
            self.last = now
            self._draw()

    def line(self) -> str:
        elapsed = time.monotonic() - self.start
        rate = (self.count - self.first) / elapsed if elapsed > 0 else 0.0
        if self.total:
            done = min(self.count / self.total, 1.0)
            bar = "#" * int(20 * done) + "-" * (20 - int(20 * done))
            eta = _clock((self.total - self.count) / rate) if rate > 0 else "--:--"
            head = f"{self.label} [{bar}] {self.count}/{self.total}"
            tail = f"{rate:.2f} {self.unit}/s ETA {eta}"
        else:
            head, tail = f"{self.label} {self.count}", f"{rate:.2f} {self.unit}/s elapsed {_clock(elapsed)}"
        return f"{head} {tail} {self.note}".rstrip()

    def _draw(self, final: bool = False) -> None:
        if not self.enabled:
            return
        text = self.line()
        if self.tty:
            self.stream.write("\r\033[K" + text + ("\n" if final else ""))
        else:
            self.stream.write(text + "\n")
        self.stream.flush()
