"""Compare two models' clinical evaluations patient by patient (``compare-clinical A B``).

Two ``evaluate --clinical`` outputs on the same frames (same split, degradation and segmenter) differ only in the
model. The figures of each carry the noise of the patients they were measured on; the difference between them,
taken patient by patient, does not carry it twice. For each structure: the difference in 3D Dice against the
ground truth and in agreement with full resolution's segmentation; for each measurement: the difference in
absolute error. Each is a mean over patients with its 95% interval by resampling patients, so "A is better" can
be read as an interval that excludes 0. This is how to choose between checkpoints on validation.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from heart_sr_tf.cardiac_metrics import STRUCTURES, paired_difference
from heart_sr_tf.errors import DataError
from heart_sr_tf.evaluation.acquisition_ladder import RUNG_PREFIX
from heart_sr_tf.evaluation.clinical import DECIMALS, MEASURES, UNITS
from heart_sr_tf.evaluation.report import read_output
from heart_sr_tf.path_text import PATH_TEXT

FILES = ("clinical.json", "clinical_frames.csv", "clinical_patients.csv")
FRAME_COLUMNS = ("patient", "phase", "method", *(f"dice_{k}" for k in STRUCTURES))
PATIENT_COLUMNS = ("patient", "method")


def read_clinical(folder: Path) -> dict:
    """An ``evaluate --clinical`` output folder: its metadata, frame rows and patient rows."""
    folder = Path(folder)
    meta = read_output(folder, FILES, "evaluate --clinical")
    tables = []
    for name, needed in ((FILES[1], FRAME_COLUMNS), (FILES[2], PATIENT_COLUMNS)):
        with (folder / name).open(newline="", **PATH_TEXT) as f:
            reader = csv.DictReader(f)
            lacking = [c for c in needed if c not in (reader.fieldnames or [])]
            if lacking:
                raise DataError(folder / name, f"lacks the column(s) {', '.join(lacking)}")
            tables.append(list(reader))
    return {"folder": folder, "meta": meta, "frames": tables[0], "patients": tables[1]}


def _check_same_frames(a: dict, b: dict) -> None:
    """The two evaluations must differ in the model only: same split, degradation, frames, and the same label
    maps for every method that does not depend on the model (full resolution and the baselines; an acquisition
    ladder, present in one or both, is not compared)."""
    for key in ("split", "degradation"):
        if a["meta"].get(key) != b["meta"].get(key):
            raise DataError(
                b["folder"], f"its {key} differs from {a['folder']}'s: compare evaluations of the same frames"
            )

    def fixed(evaluation: dict) -> dict:
        return {
            (r["patient"], r["phase"], r["method"]): tuple(r[f"dice_{k}"] for k in STRUCTURES)
            for r in evaluation["frames"]
            if r["method"] != "model" and not r["method"].startswith(RUNG_PREFIX)  # the ladder's: asked for or not
        }

    if fixed(a) != fixed(b):
        raise DataError(
            b["folder"],
            f"its frames or its segmenter differ from {a['folder']}'s (full resolution and the baselines do not "
            "segment the same): compare evaluations with the same --split, --limit and --segmenter",
        )


def compare(a: dict, b: dict) -> dict:
    """Model A minus model B: ``dice`` and ``agreement`` per structure (higher is better), ``error`` per measure
    (absolute error against the ground truth; lower is better), each ``{mean, low, high}`` over patients."""
    _check_same_frames(a, b)
    per_patient = [_per_patient(e["frames"]) for e in (a, b)]
    patients = sorted(per_patient[0])  # the same in both: the frames were checked
    out: dict = {"patients": len(patients), "dice": {}, "agreement": {}, "error": {}}
    for column in ("dice", "agreement"):
        for name in STRUCTURES:
            key = f"{column}_{name}"
            values = [[per_patient[i][p].get(key, np.nan) for p in patients] for i in (0, 1)]
            out[column][name] = paired_difference(values[0], values[1])
    rows = [{r["patient"]: r for r in e["patients"] if r["method"] == "model"} for e in (a, b)]
    for measure in MEASURES:
        errors = [[_abs_error(rows[i].get(p), measure) for p in patients] for i in (0, 1)]
        out["error"][measure] = paired_difference(errors[0], errors[1])
    return out


def _per_patient(frames: list[dict]) -> dict[str, dict[str, float]]:
    """patient -> the model's mean over that patient's frames of every Dice and agreement column."""
    columns = [f"{c}_{k}" for c in ("dice", "agreement") for k in STRUCTURES]
    grouped: dict[str, list[dict]] = {}
    for row in frames:
        if row["method"] == "model":
            grouped.setdefault(row["patient"], []).append(row)
    return {
        patient: {c: float(np.mean([_number(r.get(c)) for r in rows])) for c in columns}
        for patient, rows in grouped.items()
    }


def _abs_error(row: dict | None, measure: str) -> float:
    if row is None:
        return float("nan")
    return abs(_number(row.get(measure)) - _number(row.get(f"truth_{measure}")))


def _number(text) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        return float("nan")


def comparison_markdown(a: dict, b: dict, result: dict) -> str:
    """The comparison as tables: differences of A from B, each with its interval."""

    def cell(d: dict, digits: int) -> str:
        if not np.isfinite(d["mean"]):  # not measured (e.g. the wall, in evaluations from before it) or no value
            return "no patient with a value in both"
        return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"

    lines = [
        f"## A minus B, patient by patient ({result['patients']} patients, {a['meta'].get('split')})",
        "",
        f"A: {a['meta'].get('source')} ({a['folder']}); B: {b['meta'].get('source')} ({b['folder']}). Mean "
        "over patients [95% interval by resampling patients]; an interval that excludes 0 is a difference these "
        "patients show.",
        "",
        "| structure | Dice against the ground truth (higher is better) | agreement with full resolution (higher is "
        "better) |",
        "|---|---|---|",
    ]
    for name in STRUCTURES:
        lines.append(f"| {name} | {cell(result['dice'][name], 4)} | {cell(result['agreement'][name], 4)} |")
    lines += ["", "| measure | absolute error, A minus B (lower is better) |", "|---|---|"]
    for measure in MEASURES:
        unit = UNITS.get(measure, "ml")
        lines.append(f"| {measure}, {unit} | {cell(result['error'][measure], DECIMALS.get(measure, 1))} |")
    return "\n".join(lines) + "\n"
