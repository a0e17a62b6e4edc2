"""Compare two models' image metrics patient by patient (``compare-images A B``).

Two ``evaluate`` outputs of the same slices (same split or scans, same degradation) differ only in the model: a
fine-tune on a lab's scans against the model it started from, or two checkpoints. Each model's mean carries the
noise of the patients it was measured on; their difference, taken patient by patient, does not carry it twice.
Per roi and metric: the mean over patients of A's per-patient mean minus B's, with its 95% interval by resampling
patients, so "A is better" reads as an interval that excludes 0.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from heart_sr_tf.cardiac_metrics import paired_difference
from heart_sr_tf.errors import DataError
from heart_sr_tf.evaluation.report import read_output
from heart_sr_tf.path_text import PATH_TEXT

FILES = ("summary.json", "per_slice.csv")
METRICS = (("psnr", "PSNR (dB)", 2), ("ssim", "SSIM (7x7)", 4))
KEY = ("roi", "patient", "frame", "slice")


def read_evaluation(folder: Path) -> dict:
    """An ``evaluate`` output folder: its metadata, and its model's per-slice rows keyed by roi, patient, frame
    and slice."""
    folder = Path(folder)
    meta = read_output(folder, FILES, "evaluate")
    with (folder / FILES[1]).open(newline="", **PATH_TEXT) as handle:
        rows = list(csv.DictReader(handle))
    if not rows or any(column not in rows[0] for column in (*KEY, "method", "psnr", "ssim")):
        raise DataError(folder / FILES[1], "not an evaluate per-slice table")
    model = {tuple(r[k] for k in KEY): {m: float(r[m]) for m, _, _ in METRICS} for r in rows if r["method"] == "model"}
    return {"folder": folder, "meta": meta, "model": model}


def compare(a: dict, b: dict) -> dict:
    """roi -> metric -> A minus B over patients (mean, 95% interval), with each one's mean and the patients: refused
    unless both scored the same slices under the same degradation."""
    for side in (a, b):
        if not side["model"]:
            raise DataError(side["folder"], "holds no model rows")
    degradations = [_degradation(side["meta"]) for side in (a, b)]
    if degradations[0] != degradations[1]:
        raise DataError(b["folder"], f"another degradation than {a['folder']}'s: not the same low-resolution input")
    if set(a["model"]) != set(b["model"]):
        only = len(set(a["model"]) ^ set(b["model"]))
        raise DataError(b["folder"], f"not the same slices as {a['folder']} ({only} slices in one only)")
    grouped = [_by_patient(side["model"]) for side in (a, b)]  # (roi, patient) -> its slices' metrics
    out: dict = {}
    for roi in sorted({roi for roi, _ in grouped[0]}):
        patients = sorted(p for r, p in grouped[0] if r == roi)
        out[roi] = {"patients": len(patients), "slices": sum(len(grouped[0][roi, p]) for p in patients)}
        for metric, _, _ in METRICS:
            means = [[np.mean([v[metric] for v in side[roi, p]]) for p in patients] for side in grouped]
            out[roi][metric] = {
                "a": float(np.mean(means[0])),
                "b": float(np.mean(means[1])),
                **paired_difference(means[0], means[1]),
            }
    return out


def _by_patient(model: dict) -> dict:
    groups: dict = {}
    for (roi, patient, *_), values in model.items():
        groups.setdefault((roi, patient), []).append(values)
    return groups


def _degradation(meta: dict) -> dict:
    return {k: v for k, v in (meta.get("degradation") or {}).items() if k != "description"}


def comparison_markdown(a: dict, b: dict, result: dict) -> str:
    lines = [
        f"## {a['meta'].get('source', a['folder'])} (A) minus {b['meta'].get('source', b['folder'])} (B)",
        "",
        f"The same slices ({a['meta'].get('split', '?')}), the same degradation; per-slice metrics on [0, 1], data "
        "range 1, averaged per patient; the difference patient by patient, its mean with a 95% interval by "
        "resampling patients.",
        "",
        "| roi | patients (slices) | metric | A | B | A - B [95%] |",
        "|---|---|---|---|---|---|",
    ]
    for roi, figures in result.items():
        for metric, name, decimals in METRICS:
            f = figures[metric]
            n = decimals
            interval = f"{f['mean']:+.{n}f} [{f['low']:+.{n}f}, {f['high']:+.{n}f}]"
            lines.append(
                f"| {roi} | {figures['patients']} ({figures['slices']}) | {name} | {f['a']:.{n}f} | {f['b']:.{n}f} | "
                f"{interval} |"
            )
    single = [roi for roi, figures in result.items() if figures["patients"] == 1]
    if single:
        lines += [
            "",
            f"One patient ({', '.join(single)}): the interval resamples nothing and says nothing beyond them.",
        ]
    return "\n".join(lines) + "\n"
