"""The acquisition ladder: which milder acquisition a super-resolved scan measures like.

A k-space model turns a scan that acquired the central ``1/s`` of the spectrum along each axis into one on the
full grid. Its clinical figures are easiest to read against scans that acquired more: the same frames, acquired
at milder factors (``LADDER_STEP`` apart, from ``LADDER_START`` up to below ``s``) and zero-filled as the scanner
does, segmented like every other input. Between full resolution (factor 1, no disagreement with itself) and the
scanner's zero-filling at ``s``, each structure's disagreement with the full-resolution segmentation (1 - its
3D Dice against it) and the PSNR trace a curve over the factor; the model's equivalent acquisition is the factor
where that curve reaches the model's own figure, interpolated linearly between the rungs. "x2.4" says: its
segmentations agree with full resolution's as a scan acquiring the central 1/2.4 of k-space along each axis
would. Intervals resample patients, as every other share does.
"""

from __future__ import annotations

import math

import numpy as np

from heart_sr_tf.cardiac_metrics import STRUCTURES
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError

LADDER_START = 1.5
LADDER_STEP = 0.5
RUNG_PREFIX = "acquired_x"  # the rungs' method names in an evaluation's tables and CSVs


def ladder_factors(degradation: Degradation) -> tuple[float, ...]:
    """The milder acquisition factors a model of ``degradation`` is placed among: 1.5, 2, ... below ``s``."""
    if degradation.kind != "kspace":
        raise HeartSRError(
            f"--acquisition-ladder: places k-space models among milder k-space acquisitions; this model's "
            f"degradation is {degradation.kind}"
        )
    count = math.ceil((degradation.factor - LADDER_START) / LADDER_STEP)
    return tuple(LADDER_START + LADDER_STEP * i for i in range(max(0, count)))


def rung_name(factor: float) -> str:
    """``acquired_x2.5``: the method name of one rung in an evaluation's tables and CSVs."""
    return f"{RUNG_PREFIX}{factor:g}"


def rung_label(factor: float) -> str:
    return f"acquired at x{factor:g}, zero-filled"


def rung_images(hr: np.ndarray, degradation: Degradation, factors, rng) -> dict[str, np.ndarray]:
    """Every rung's version of one frame ``[n, H, W]`` (full resolution on the protocol grid)."""
    return {
        rung_name(f): np.stack([degradation.acquired_np(image, f, rng) for image in hr]).astype(np.float32)
        for f in factors
    }


def equivalent_factor(factors, values, target: float) -> float:
    """Where the piecewise-linear curve ``values`` over ascending ``factors`` reaches ``target``, searched from the
    harshest acquisition down (the first crossing, should the curve not be monotone). ``+inf`` when the target
    lies beyond every value (worse than the harshest rung), ``-inf`` when below every value (better than the
    mildest)."""
    factors, values = np.asarray(factors, float), np.asarray(values, float)
    for i in range(len(factors) - 2, -1, -1):
        a, b = values[i], values[i + 1]
        if min(a, b) <= target <= max(a, b):
            if b == a:
                return float(factors[i + 1])
            return float(factors[i] + (target - a) / (b - a) * (factors[i + 1] - factors[i]))
    return math.inf if target > np.max(values) else -math.inf


def factor_text(factor: float, factors) -> str:
    """``x2.4``; ``> x3`` beyond the harshest rung, ``< x1.5`` below the mildest."""
    if factor == math.inf:
        return f"> x{max(factors):g}"
    if factor == -math.inf:
        return f"< x{min(factors):g}"
    return f"x{factor:.1f}"


def ladder_equivalents(
    frames: list[dict], ladder, factor: int, reference: str, method: str, resamples: int = 1000, seed: int = 0
) -> dict:
    """``method``'s equivalent acquisition, from an evaluation's frame rows (``ClinicalResult.frames``, with the
    rungs of ``ladder`` and the ``reference`` baseline at ``factor``): per structure by its agreement with full
    resolution, and by PSNR; each ``{"factor", "low", "high"}``, the interval by resampling patients."""
    patients = sorted({r["patient"] for r in frames})
    index = {p: i for i, p in enumerate(patients)}
    picks = np.random.default_rng(seed).integers(0, len(patients), size=(resamples, len(patients)))

    def per_patient(name: str, column: str, weight: str | None, sign: float) -> tuple[np.ndarray, np.ndarray]:
        sums, counts = np.zeros(len(patients)), np.zeros(len(patients))
        for row in frames:
            if row["method"] == name:
                w = float(row[weight]) if weight else 1.0
                sums[index[row["patient"]]] += sign * float(row[column]) * w
                counts[index[row["patient"]]] += w
        return sums, counts

    def solve(rungs: list[tuple[float, str]], column: str, weight: str | None, sign: float, offset: float) -> dict:
        curves = [per_patient(name, column, weight, sign) for _, name in rungs]
        target = per_patient(method, column, weight, sign)
        xs = [f for f, _ in rungs]

        def at(pick) -> float:
            values = [offset + s[pick].sum(-1) / c[pick].sum(-1) for s, c in curves]
            return equivalent_factor(xs, values, offset + target[0][pick].sum(-1) / target[1][pick].sum(-1))

        point = at(np.arange(len(patients)))
        draws = np.clip([at(pick) for pick in picks], min(xs), max(xs))
        low, high = np.percentile(draws, [2.5, 97.5])
        return {"factor": point, "low": float(low), "high": float(high), "factors": xs}

    steps = [(f, rung_name(f)) for f in ladder] + [(float(factor), reference)]
    out = {
        name: solve([(1.0, "hr"), *steps], f"agreement_{name}", None, -1.0, 1.0)  # disagreement: 1 - agreement
        for name in STRUCTURES
    }
    out["psnr"] = solve(steps, "psnr", "slices", -1.0, 0.0)  # -PSNR grows with the factor, as disagreement does
    return out


def ladder_lines(result, summary: dict) -> list[str]:
    """summary.md's ladder: the rungs' PSNR and agreement with full resolution next to the model's, and the
    acquisition each of the model's figures is equivalent to."""
    if not result.ladder:
        return []
    factor = result.degradation.factor
    rows = [("hr", "full resolution (x1)"), *((rung_name(f), rung_label(f)) for f in result.ladder)]
    rows += [(result.reference, f"acquired at x{factor} (the model's input), zero-filled"), ("model", "model")]
    lines = [
        "",
        f"Acquisition ladder: the same frames acquired at milder factors (the central 1/f of k-space along each "
        f"axis; this degradation's window and noise) and zero-filled. The model's equivalent acquisition is where "
        f"the rungs' figure reaches the model's, interpolated linearly in f (full resolution at x1, the model's "
        f"input at x{factor}); [95% interval by resampling patients].",
        "",
        "| input | PSNR (dB) | agreement with full resolution LV / myo / RV | disagreement removed LV / myo / RV | "
        "gap closed LV / myo / RV |",
        "|---|---|---|---|---|",
    ]
    for method, label in rows:
        s = summary[method]
        psnr = "-" if method == "hr" else f"{s['psnr']:.2f}"
        agree = " / ".join(f"{s['agreement_with_hr'][k]:.3f}" for k in ("LV", "myocardium", "RV"))
        removed = " / ".join(f"{s['disagreement_removed'][k]:.0f}%" for k in ("LV", "myocardium", "RV"))
        gaps = " / ".join(f"{s['gap_closed'][k]:.0f}%" for k in ("LV", "myocardium", "RV"))
        lines.append(f"| {label} | {psnr} | {agree} | {removed} | {gaps} |")
    equivalent = summary["model"]["equivalent_acquisition"]
    cells = []
    for key, name in (("LV", "LV"), ("myocardium", "myocardium"), ("RV", "RV"), ("psnr", "PSNR")):
        e = equivalent[key]
        cells.append(f"{name} {factor_text(e['factor'], e['factors'])} [{e['low']:.1f}, {e['high']:.1f}]")
    lines += [
        "",
        f"The model's equivalent acquisition, by agreement with full resolution's segmentation and by PSNR: "
        f"{'; '.join(cells)} (its input: x{factor}).",
    ]
    return lines
