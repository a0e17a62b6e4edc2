"""The same frames measured through several segmenters: does the model's clinical fidelity hold whichever
segmenter a lab runs? One row per segmenter, each against its own full-resolution measurements.

A segmenter is an instrument with its own habits: one may find more myocardium on a smooth image than on a noisy
one. A model chosen or fine-tuned through one segmenter can look faithful through it and not through another, so
the figures that matter to a lab are those through segmenters the model never saw."""

from __future__ import annotations

import numpy as np

from heart_sr_tf.cardiac_metrics import STRUCTURES, paired_difference
from heart_sr_tf.evaluation.acquisition_ladder import factor_text
from heart_sr_tf.evaluation.clinical import ClinicalResult, paired_patients, share_cells


def mass_bias_minus_hr(patients: list[dict], method: str = "model") -> dict[str, float]:
    """The method's myocardial mass minus full resolution's, patient by patient (mean, 95% interval), from a
    ``ClinicalResult``'s patient rows: how far the method's mass bias sits from full resolution's."""
    rows, common = paired_patients(patients, method)
    return paired_difference(*([float(rows[m][p]["myo_mass"]) for p in common] for m in (method, "hr")))


def panel_rows(results: list[ClinicalResult], summaries: list[dict], method: str = "model") -> list[dict]:
    """One row per segmenter (``summaries``: each result's ``summary()``): its full-resolution Dice, the gap the
    method closes, and the method's LVEF, LVEDV and mass errors minus full resolution's (each with its 95%
    interval by resampling patients)."""
    rows = []
    for result, summary in zip(results, summaries, strict=True):
        s = summary[method]
        rows.append(
            {
                "segmenter": result.segmenter,
                "hr_dice": [summary["hr"]["dice"][k] for k in STRUCTURES],
                "gap_closed": [s["gap_closed"][k] for k in STRUCTURES],
                "gap_cells": share_cells(s, "gap_closed"),
                "LVEF": s["error_minus_hr"]["LVEF"],
                "LVEDV": s["error_minus_hr"]["LVEDV"],
                "mass_bias": mass_bias_minus_hr(result.patients, method),
                "equivalent": s.get("equivalent_acquisition"),  # with --acquisition-ladder
            }
        )
    return rows


def panel_markdown(results: list[ClinicalResult], summaries: list[dict], method: str = "model") -> str:
    """The across-segmenters table for summary.md, with the spread of each figure over the segmenters."""
    rows = panel_rows(results, summaries, method)

    def interval(d: dict, digits: int = 1) -> str:
        return f"{d['mean']:+.{digits}f} [{d['low']:+.{digits}f}, {d['high']:+.{digits}f}]"

    lines = [
        f"## Clinical fidelity across {len(rows)} segmenters",
        "",
        "The same frames through each segmenter, each against its own full-resolution segmentation and "
        "measurements. Errors minus full resolution's are patient by patient, with 95% intervals by resampling "
        "patients; above 0 is worse than from the full-resolution scan. The mass bias minus full resolution's is "
        "the signed mass difference.",
        "",
        "| segmenter | full-resolution Dice LV / myo / RV | gap closed LV / myo / RV [95%] | LVEF error minus full "
        "resolution's (points) | LVEDV error minus full resolution's (ml) | mass bias minus full resolution's (g) |",
        "|---|---|---|---|---|---|",
    ]
    ladder = all(r["equivalent"] for r in rows)
    if ladder:
        lines[-2] = lines[-2][:-1] + "| equivalent acquisition by agreement LV / myo / RV [95%] |"
        lines[-1] += "---|"
    for r in rows:
        dice = " / ".join(f"{d:.3f}" for d in r["hr_dice"])
        line = (
            f"| {r['segmenter']} | {dice} | {r['gap_cells']} | {interval(r['LVEF'])} | {interval(r['LVEDV'])} | "
            f"{interval(r['mass_bias'])} |"
        )
        if ladder:
            line += " " + " / ".join(_equivalent(r["equivalent"][k]) for k in STRUCTURES) + " |"
        lines.append(line)
    if len(rows) > 1:
        spread = " / ".join(_range([r["gap_closed"][i] for r in rows]) for i in range(len(STRUCTURES)))
        mass = [r["mass_bias"]["mean"] for r in rows]
        lvef = [r["LVEF"]["mean"] for r in rows]
        lines += [
            "",
            f"Across the segmenters: gap closed LV / myo / RV {spread}; LVEF error minus full resolution's "
            f"{min(lvef):+.1f} to {max(lvef):+.1f} points; mass bias minus full resolution's {min(mass):+.1f} to "
            f"{max(mass):+.1f} g.",
        ]
        if ladder:
            spans = []
            for name in STRUCTURES:
                factors = [r["equivalent"][name]["factor"] for r in rows]
                ladder_factors = rows[0]["equivalent"][name]["factors"]
                spans.append(
                    f"{factor_text(min(factors), ladder_factors)} to {factor_text(max(factors), ladder_factors)}"
                )
            lines[-1] = lines[-1][:-1] + f"; equivalent acquisition LV / myo / RV {' / '.join(spans)}."
    return "\n".join(lines) + "\n"


def _range(shares: list[float]) -> str:
    """``62 to 75%`` over the segmenters that have a gap (one without a gap has none to close: NaN)."""
    finite = [v for v in shares if np.isfinite(v)]
    return f"{min(finite):.0f} to {max(finite):.0f}%" if finite else "n/a"


def _equivalent(e: dict) -> str:
    return f"{factor_text(e['factor'], e['factors'])} [{e['low']:.1f}, {e['high']:.1f}]"
