"""``--series-description`` and ``--repeated-slices``: which of the DICOM series found in folders a command
takes."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field


@dataclass
class SeriesFilter:
    """``--series-description PATTERN``: of the DICOM series found in folders, keep those whose SeriesDescription
    matches the shell pattern (any case; ``*sax*``); NIfTI files and a manifest's rows are kept. ``aside`` receives
    the descriptions of the series left aside. ``--repeated-slices latest`` (``latest``): a cine stack exported one
    series per slice, with a slice acquired again, takes that slice from its later series and leaves the earlier
    out (by default the stack stays apart, each series a scan of its own, with a note)."""

    pattern: str | None = None
    latest: bool = False
    aside: list[str] = field(default_factory=list)

    def keeps(self, job) -> bool:
        if self.pattern is None or job.description is None:
            return True
        if fnmatch.fnmatch(job.description.lower(), self.pattern.lower()):
            return True
        self.aside.append(job.description)
        return False

    def line(self) -> str:
        """What was left aside, for the user: how many series, and their descriptions."""
        seen = ", ".join(repr(d) if d else "no description" for d in dict.fromkeys(self.aside))
        return f"{len(self.aside)} series not matching --series-description {self.pattern!r} left aside ({seen[:300]})"

    def options(self) -> str:
        """The options it stands for, as given: ``--series-description '*sax*' --repeated-slices latest``."""
        given = [f"--series-description {self.pattern!r}"] if self.pattern is not None else []
        return " ".join(given + (["--repeated-slices latest"] if self.latest else []))
