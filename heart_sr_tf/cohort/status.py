"""``DIR/cohort.csv``: one row per finished scan, appended as scans finish, so that an interrupted cohort
resumes: a scan is skipped when its last row says ``done`` with the same options, its output exists and its input
is as it was then (``input_state``: its files' names, sizes and times; a row written before that column existed
does not say, and is taken as it was). A row's ``input`` is the scan's path, and which series of its folder when
the folder holds several."""

from __future__ import annotations

import csv
from pathlib import Path

from heart_sr_tf.cohort.jobs import Job
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.path_text import PATH_TEXT
from heart_sr_tf.volumes.dicom_writer import MARKER

FIELDS = ("input", "output", "status", "seconds", "model", "options", "error", "input_state")
STATUS_NAME = "cohort.csv"


class StatusFile:
    def __init__(self, out_dir: Path):
        self.path = Path(out_dir) / STATUS_NAME
        self._last: dict[str, dict] = {}
        if self.path.is_file():
            try:
                with self.path.open(newline="", **PATH_TEXT) as handle:
                    reader = csv.DictReader(handle)
                    rows = list(reader)
                    for row in rows:
                        self._last[row["input"]] = row
            except (OSError, UnicodeDecodeError, csv.Error, KeyError) as exc:
                raise HeartSRError(f"{self.path}: unreadable status file ({exc}); move it away to start over") from None
            if tuple(reader.fieldnames or ()) != FIELDS:  # an older version's columns: rewritten with today's
                self._rewrite(rows)

    def _rewrite(self, rows: list[dict]) -> None:
        """The status file again, with :data:`FIELDS` as its columns (a column it lacked left empty), written
        beside it and moved into place."""
        temporary = self.path.with_name(f".heart-sr-{self.path.name}")
        with temporary.open("w", newline="", **PATH_TEXT) as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS, extrasaction="ignore")
            writer.writeheader()
            writer.writerows({name: row.get(name) or "" for name in FIELDS} for row in rows)
        temporary.replace(self.path)

    def is_done(self, job: Job, options: str) -> bool:
        row = self._last.get(job.key)
        return (
            self.was_done(job, options)
            and row.get("input_state", "") in ("", job.state)
            and ((job.output / MARKER).is_file() if job.dicom else job.output.is_file())
        )

    def elsewhere(self, jobs: list[Job]) -> list[str]:
        """The results it lists as done whose scans are not among ``jobs`` (removed, renamed, or not given this
        time) and that are still there: the cohort leaves them, and says so. A result one of ``jobs`` writes is
        not among them, however its scan was spelt then (a relative path, now an absolute one)."""
        keys = {job.key for job in jobs}
        outputs = {job.output.resolve() for job in jobs}
        return sorted(
            row["output"]
            for key, row in self._last.items()
            if key not in keys
            and row.get("status") == "done"
            and row.get("output")
            and Path(row["output"]).exists()
            and Path(row["output"]).resolve() not in outputs
        )

    def was_done(self, job: Job, options: str) -> bool:
        """Whether the scan's last row says done, with these options, into this output (its input may have
        changed since: :meth:`is_done`)."""
        row = self._last.get(job.key)
        return (
            row is not None
            and row.get("status") == "done"
            and row.get("options") == options
            and row.get("output") == str(job.output)
        )

    def changed(self, job: Job, options: str) -> bool:
        """Whether the scan was done with these options, and its input has changed since."""
        state = (self._last.get(job.key) or {}).get("input_state", "")
        return self.was_done(job, options) and state not in ("", job.state)

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
            "input_state": job.state,
        }
        with self.path.open("a", newline="", **PATH_TEXT) as handle:
            writer = csv.DictWriter(handle, fieldnames=FIELDS)
            if new:
                writer.writeheader()
            writer.writerow(row)
            handle.flush()
        self._last[row["input"]] = row
