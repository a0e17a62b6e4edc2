"""``--series-description`` and ``--repeated-slices``: which of the DICOM series found in folders a command
takes."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass
class SeriesFilter:
    """``--series-description PATTERN``: of the DICOM series found in folders, keep those whose SeriesDescription
    matches the shell pattern (any case; ``*sax*``); a NIfTI file is matched by the SeriesDescription of its BIDS
    sidecar (as dcm2niix writes it), and one without (and a manifest's rows) is kept, in ``unnamed``. ``aside``
    receives the descriptions of the series left aside. ``--repeated-slices latest`` (``latest``): a cine stack
    exported one series per slice, with a slice acquired again, takes that slice from its later series and leaves
    the earlier out (by default the stack stays apart, each series a scan of its own, with a note)."""

    pattern: str | None = None
    latest: bool = False
    aside: list[str] = field(default_factory=list)
    unnamed: list[str] = field(default_factory=list)  # the scans kept for want of a description to match

    def keeps(self, job) -> bool:
        if self.pattern is None:
            return True
        if job.description is None:
            self.unnamed.append(job.input.name)
            return True
        if fnmatch.fnmatch(job.description.lower(), self.pattern.lower()):
            return True
        self.aside.append(job.description)
        return False

    def line(self) -> str:
        """What was left aside, for the user: how many series, and their descriptions."""
        seen = ", ".join(repr(d) if d else "no description" for d in dict.fromkeys(self.aside))
        return f"{len(self.aside)} series not matching --series-description {self.pattern!r} left aside ({seen[:300]})"

    def lines(self) -> list[str]:
        """What the filter did, for the user: the series left aside, and the scans kept without a description."""
        lines = [self.line()] if self.aside else []
        if self.unnamed:
            names = ", ".join(self.unnamed)
            lines.append(
                f"{len(self.unnamed)} scan{'s' if len(self.unnamed) > 1 else ''} kept without a SeriesDescription to "
                f"match --series-description {self.pattern!r} against (a NIfTI file without a BIDS sidecar stating "
                f"one, or a manifest's row): {names[:300]}"
            )
        return lines

    def options(self) -> str:
        """The options it stands for, as given: ``--series-description '*sax*' --repeated-slices latest``."""
        given = [f"--series-description {self.pattern!r}"] if self.pattern is not None else []
        return " ".join(given + (["--repeated-slices latest"] if self.latest else []))
