"""``DIR/measurements.csv``: with ``cohort --measure``, one row per measured scan, rebuilt from each scan's own
``OUT_volumes.csv`` after every run (so a resumed cohort's table holds the scans of earlier runs too): the patient
(the manifest's column, else the DICOM PatientID, to join with clinical records), ED and ES,
volumes, ejection fractions, myocardial mass and wall thickness of the upscaled scan, the volumes and mass indexed to
the body surface area where the manifest or the scan's DICOM header gave the patient's height and weight, and the
same of the scan as acquired beside them."""

from __future__ import annotations

import csv
import math
from pathlib import Path

from heart_sr_tf.cardiac_metrics import CINE_MEASURES, cine_measurements
from heart_sr_tf.cohort.jobs import Job
from heart_sr_tf.path_text import PATH_TEXT
from heart_sr_tf.volumes.measure import (
    ACQUIRED,
    NOTE_START,
    measure_outputs,
    read_body_surface,
    read_note,
    read_volumes,
)

MEASUREMENTS_NAME = "measurements.csv"
INDEXED = {"LVEDV_ml": "LVEDVi_ml_m2", "LVESV_ml": "LVESVi_ml_m2", "RVEDV_ml": "RVEDVi_ml_m2",
           "RVESV_ml": "RVESVi_ml_m2", "myo_mass_g": "myo_mass_i_g_m2"}  # fmt: skip
MEASURES = (*CINE_MEASURES, "BSA_m2", *INDEXED.values())  # blank where no height and weight were given


def write_measurements(jobs: list[Job], out_dir: Path) -> tuple[Path, int, str]:
    """The table of the given jobs (those done with ``--measure``) whose volumes exist, written atomically; returns
    its path, its row count and its note (which segmenter measured)."""
    rows, notes = [], []
    for job in jobs:
        volumes = measure_outputs(job.output)[1]
        if not (job.output.exists() and volumes.is_file()):
            continue
        frames = read_volumes(volumes)
        if (note := read_note(volumes)) not in notes:
            notes.append(note)
        acquired = any(f"{ACQUIRED}LV_ml" in row for row in frames)
        patient = job.patient or job.patient_id or ""  # (the manifest's patient column, else the DICOM PatientID)
        row = {"input": job.key, "patient": patient, "output": str(job.output), "frames": len(frames)}
        bsa = read_body_surface(volumes)
        for prefix in ("", *((ACQUIRED,) if acquired else ())):
            values = cine_measurements(frames, prefix)
            values["BSA_m2"] = bsa if bsa is not None else math.nan
            values.update({index: values[name] / values["BSA_m2"] for name, index in INDEXED.items()})
            row.update({f"{prefix}{name}": _cell(values[name]) for name in MEASURES})
        rows.append(row)
    path, note = Path(out_dir) / MEASUREMENTS_NAME, measurements_note(notes)
    tmp = path.with_name(f".heart-sr-{path.name}.part")
    fields = ["input", "patient", "output", "frames", *MEASURES, *(f"{ACQUIRED}{name}" for name in MEASURES)]
    with tmp.open("w", newline="", **PATH_TEXT) as f:
        f.write(f"# {note}; per scan, from its _volumes.csv; {ACQUIRED}*: the scan as acquired; "
                "blank: undefined\n")  # fmt: skip
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)
    return path, len(rows), note


def measurements_note(notes: list[str]) -> str:
    """What the table says of its numbers: its scans' tables' own note (which segmenter, on which grid), or, where
    they differ (some measured through another segmenter), that they do."""
    if len(notes) == 1:
        return notes[0]
    if not notes:
        return f"{NOTE_START}; none measured"
    return "volumes from automatic segmenters, not the same one for every scan: see each scan's _volumes.csv"


def _cell(value: float) -> str | float:
    if isinstance(value, float) and math.isnan(value):
        return ""
    return round(value, 2) if isinstance(value, float) else value
