"""``DIR/cohort.csv``: one row per finished scan, appended as scans finish, so that an interrupted cohort
resumes: a scan is skipped when its last row says ``done`` with the same options and its output exists. A row's
``input`` is the scan's path, and which series of its folder when the folder holds several."""

from __future__ import annotations

import csv
from pathlib import Path

from heart_sr_tf.cohort.jobs import Job
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.volumes.dicom_writer import MARKER

FIELDS = ("input", "output", "status", "seconds", "model", "options", "error")
STATUS_NAME = "cohort.csv"


class StatusFile:
    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / STATUS_NAME
        self._last: dict[str, dict] = {}
        if self.path.is_file():
            try:
                with self.path.open(newline="") as handle:
                    for row in csv.DictReader(handle):
                        self._last[row["input"]] = row
            except (OSError, UnicodeDecodeError, csv.Error, KeyError) as exc:
                raise HeartSRError(f"{self.path}: unreadable status file ({exc}); move it away to start over") from None

    def is_done(self, job: Job, options: str) -> bool:
        row = self._last.get(job.key)
        return (
            row is not None
            and row.get("status") == "done"
            and row.get("options") == options
            and row.get("output") == str(job.output)
            and ((job.output / MARKER).is_file() if job.dicom else job.output.is_file())
        )

    def append(self, job: Job, status: str, seconds: float, model: str, options: str, error: str = "") -> None:
        new = not self.path.exists()
        row = {
            "input": job.key,
            "output": str(job.output),
            "status": status,
            "seconds": f"{seconds:.2f}",
            "model": model,
            "options": options,
            "error": error,
        }
        with self.path.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
        self._last[row["input"]] = row
