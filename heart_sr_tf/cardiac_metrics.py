"""Clinical measurements from label maps (0 background, 1 RV, 2 myocardium, 3 LV), as a cardiac lab computes
them from cine: 3D Dice per structure, ventricular volumes, ejection fraction, myocardial mass, LV wall thickness,
and the agreement statistics (bias, 95% limits of agreement) that compare two methods of measuring."""

from __future__ import annotations

import math

import numpy as np

from heart_sr_tf.errors import HeartSRError

STRUCTURES = {"LV": 3, "myocardium": 2, "RV": 1}
MIN_SLICES = 3  # a ventricular volume needs a short-axis stack: one or two slices (a long-axis cine) give none


def too_few_slices(slices: int) -> str | None:
    """Why a scan of ``slices`` slices gives no ventricular volumes, else None."""
    if slices >= MIN_SLICES:
        return None
    return (
        f"{slices} slice(s): volumes need a short-axis stack of at least {MIN_SLICES} slices (the segmenter "
        "knows short-axis images; a long-axis cine gives no volumes)"
    )


MYOCARDIAL_DENSITY = 1.05  # g/ml


def body_surface_area(height_m: float, weight_kg: float) -> float:
    """Body surface area (m2) by Mosteller's formula, sqrt(height in cm x weight in kg / 3600): what cardiac
    volumes and mass are indexed to."""
    return float(np.sqrt(height_m * 100.0 * weight_kg / 3600.0))


HEIGHT_M, WEIGHT_KG = (0.3, 2.5), (2.0, 400.0)  # what a patient's height and weight may plausibly be


def plausible_body(height_m: float, weight_kg: float) -> bool:
    """Whether a height (m) and weight (kg) can be a patient's (a header's 0, or centimetres given as metres,
    cannot)."""
    return HEIGHT_M[0] <= height_m <= HEIGHT_M[1] and WEIGHT_KG[0] <= weight_kg <= WEIGHT_KG[1]


def given_body(
    height_cm, weight_kg, where: str, names: tuple[str, str] = ("height_cm", "weight_kg")
) -> tuple[float, float] | None:
    """A patient's height (cm) and weight (kg) given by hand (a manifest's cells, options: ``names``), as (m, kg):
    both or neither (empty or None), a comma allowed as the decimal mark; a HeartSRError naming ``where`` when they
    are one without the other, no numbers, or no patient's."""
    cells = dict(zip(names, (str(v if v is not None else "").strip() for v in (height_cm, weight_kg)), strict=True))
    if not any(cells.values()):
        return None
    if not all(cells.values()):
        missing = next(name for name, cell in cells.items() if not cell)
        raise HeartSRError(f"{where}: {missing} is empty; give {names[0]} and {names[1]} both, or neither")
    try:
        height, weight = (float(cell.replace(",", ".")) for cell in cells.values())
    except ValueError:
        found = ", ".join(f"{name} {cell!r}" for name, cell in cells.items())
        raise HeartSRError(f"{where}: {found}: not numbers") from None
    if not plausible_body(height / 100.0, weight):
        ranges = f"{HEIGHT_M[0] * 100:g} to {HEIGHT_M[1] * 100:g} cm, {WEIGHT_KG[0]:g} to {WEIGHT_KG[1]:g} kg"
        raise HeartSRError(f"{where}: {names[0]} {height:g}, {names[1]} {weight:g}: not a patient's ({ranges})")
    return height / 100.0, weight


KEPT_WARNING = 0.6  # a structure's largest component holding less of its labelled voxels is a frame to check: on 60
# ACDC validation and test frames full resolution's lowest share was 0.64; of the five zero-filled structures under
# 0.6, three had a Dice of 0 (the others 0.53 and 0.84), and the default model's one an RV Dice of 0.54


def dice(prediction: np.ndarray, truth: np.ndarray, label: int) -> float:
    """3D Dice of one label; 1.0 when both are empty."""
    p, t = prediction == label, truth == label
    total = int(p.sum()) + int(t.sum())
    return 1.0 if total == 0 else 2.0 * float(np.logical_and(p, t).sum()) / total


def dice_scores(prediction: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {name: dice(prediction, truth, label) for name, label in STRUCTURES.items()}


def volumes_ml(labels: np.ndarray, voxel_ml: float) -> dict[str, float]:
    """LV and RV cavity volumes and the myocardial volume, in ml."""
    return {name: float(np.sum(labels == label)) * voxel_ml for name, label in STRUCTURES.items()}


def wall_thickness_mm(labels: np.ndarray, pixel_mm: tuple[float, float]) -> float:
    """Mean LV wall thickness (mm) of a ``[slices, H, W]`` label map with in-plane pixels of ``pixel_mm`` (rows,
    columns): at every myocardium pixel touching the LV cavity, the distance to the nearest pixel outside the LV
    and its myocardium (the epicardial border), averaged over the slices' endocardial borders. NaN without a
    slice where the two touch."""
    from scipy import ndimage  # here, not at the top: `upscale` imports this module, and scipy.ndimage costs it 0.15 s

    values = []
    cross = ndimage.generate_binary_structure(2, 1)
    for section in labels:
        cavity, wall = section == STRUCTURES["LV"], section == STRUCTURES["myocardium"]
        if not cavity.any() or not wall.any():
            continue
        to_outside = ndimage.distance_transform_edt(cavity | wall, sampling=pixel_mm)
        border = wall & ndimage.binary_dilation(cavity, structure=cross)
        if border.any():  # (a cavity and a wall apart, as in a segmentation in pieces, have no border)
            values.append(to_outside[border])
    return float(np.mean(np.concatenate(values))) if values else float("nan")


def kept_shares(raw: np.ndarray, kept: np.ndarray) -> dict[str, float]:
    """Per structure, the share of the voxels the segmenter labelled that its largest component holds (1.0 when
    it labelled none). A low share says the structure came in pieces, and the one kept may not be the heart's:
    on zero-filled ACDC test frames, three of five shares under 0.6 went with a Dice of 0."""
    shares = {}
    for name, label in STRUCTURES.items():
        labelled = int(np.sum(raw == label))
        shares[name] = 1.0 if labelled == 0 else float(np.sum(kept == label)) / labelled
    return shares


UNSURE = (0.2, 0.8)  # a voxel where the segmenter gives a structure a probability in between is on its own border


def disagreement_voxels(labels: np.ndarray, full: np.ndarray, unsure: dict[str, np.ndarray]) -> dict[str, int]:
    """Per structure, the voxels where ``labels`` and full resolution's label map ``full`` disagree about it
    (``<name>``), and those of them where the segmenter was unsure of it at full resolution (``<name>_unsure``:
    ``unsure[name]``, its probability within :data:`UNSURE`). Where it is unsure, any input but the very image flips
    some of its decisions; where it is sure, a disagreement means the input lost what it needed."""
    out = {}
    for name, label in STRUCTURES.items():
        disagree = (labels == label) != (full == label)
        out[name], out[f"{name}_unsure"] = int(np.sum(disagree)), int(np.sum(disagree & unsure[name]))
    return out


def kept_percent(share: float) -> str:
    """A kept share as a whole percentage rounded down, so a share under ``KEPT_WARNING`` never reads as 60%."""
    return f"{math.floor(round(share * 100, 6))}%"


def patient_measurements(ed: dict[str, float], es: dict[str, float]) -> dict[str, float]:
    """From ED and ES volumes (ml): LVEDV, LVESV, LVEF (%), RVEDV, RVESV, RVEF (%), myocardial mass at ED (g);
    and the mean LV wall thickness at ED (mm) where the ED figures carry it (``wall_mm``)."""

    def ef(edv: float, esv: float) -> float:
        return 100.0 * (edv - esv) / edv if edv > 0 else float("nan")

    return {
        "LVEDV": ed["LV"],
        "LVESV": es["LV"],
        "LVEF": ef(ed["LV"], es["LV"]),
        "RVEDV": ed["RV"],
        "RVESV": es["RV"],
        "RVEF": ef(ed["RV"], es["RV"]),
        "myo_mass": ed["myocardium"] * MYOCARDIAL_DENSITY,
        "ED_wall_mm": ed.get("wall_mm", float("nan")),
    }


def agreement(measured, reference) -> dict[str, float]:
    """Bland-Altman agreement of paired measurements: mean absolute error, bias (mean of measured - reference),
    and the 95% limits of agreement (bias -+ 1.96 SD of the differences)."""
    d = np.asarray(measured, float) - np.asarray(reference, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"mae": float("nan"), "bias": float("nan"), "loa_low": float("nan"), "loa_high": float("nan")}
    sd = float(np.std(d, ddof=1)) if d.size > 1 else 0.0
    bias = float(np.mean(d))
    return {"mae": float(np.mean(np.abs(d))), "bias": bias, "loa_low": bias - 1.96 * sd, "loa_high": bias + 1.96 * sd}


def gap_closed(model: float, low: float, full: float) -> float:
    """The share (%) of the gap from ``low`` (zero-filling) to ``full`` (full resolution) that ``model`` closes."""
    gap = full - low
    return float("nan") if abs(gap) < 1e-12 else 100.0 * (model - low) / gap


def gap_closed_interval(
    model: np.ndarray, low: np.ndarray, full: np.ndarray, groups: np.ndarray, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% interval of ``gap_closed`` of the means of per-frame values, by resampling ``groups`` (patients) with
    replacement: how far the share could move with other patients like these. NaN where a resample has no gap."""
    ids, index = np.unique(groups, return_inverse=True)
    counts = np.bincount(index, minlength=len(ids)).astype(float)
    sums = [np.bincount(index, weights=np.asarray(x, float), minlength=len(ids)) for x in (model, low, full)]
    picks = np.random.default_rng(seed).integers(0, len(ids), size=(resamples, len(ids)))
    n = counts[picks].sum(1)
    m, lo, hi = (s[picks].sum(1) / n for s in sums)
    gap = hi - lo
    with np.errstate(divide="ignore", invalid="ignore"):
        shares = np.where(np.abs(gap) < 1e-12, np.nan, 100.0 * (m - lo) / gap)
    shares = shares[np.isfinite(shares)]
    if shares.size < resamples // 2:
        return float("nan"), float("nan")
    low_q, high_q = np.percentile(shares, [2.5, 97.5])
    return float(low_q), float(high_q)


def paired_difference(a, b, resamples: int = 1000, seed: int = 0) -> dict[str, float]:
    """Mean of ``a - b`` over pairs (one per patient; pairs with a NaN dropped) and its 95% interval by resampling
    the pairs: e.g. a method's absolute error minus full resolution's, patient by patient."""
    d = np.asarray(a, float) - np.asarray(b, float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"mean": float("nan"), "low": float("nan"), "high": float("nan")}
    picks = np.random.default_rng(seed).integers(0, d.size, size=(resamples, d.size))
    low, high = np.percentile(d[picks].mean(1), [2.5, 97.5])
    return {"mean": float(d.mean()), "low": float(low), "high": float(high)}


CINE_MEASURES = (
    "ED_frame", "ES_frame", "LVEDV_ml", "LVESV_ml", "LVEF_pct", "RVEDV_ml", "RVESV_ml", "RVEF_pct", "myo_mass_g",
    "ED_wall_mm",
)  # fmt: skip


def cine_measurements(rows: list[dict], prefix: str = "") -> dict[str, float]:
    """A cine's measurements from its frame rows (``frame``, ``LV_ml``, ``RV_ml``, ``myocardium_ml``,
    ``LV_wall_mm``: numbers, or a volume table's strings with blank for none; ``prefix``: the columns of another
    reading, e.g. the scan as acquired's): ED the frame of largest LV, ES of smallest; the ejection fractions, the
    myocardial mass and the mean LV wall thickness at ED. NaN where undefined (a single frame has no ES; no LV, no
    EF)."""

    def value(row: dict, name: str) -> float:
        v = row.get(f"{prefix}{name}", "")
        return float(v) if v not in ("", None) else float("nan")

    nan = float("nan")
    if not rows:
        return dict.fromkeys(CINE_MEASURES, nan)
    ed = max(rows, key=lambda r: value(r, "LV_ml"))
    es = min(rows, key=lambda r: value(r, "LV_ml"))
    cine = len(rows) > 1 and value(ed, "LV_ml") > 0

    def ef(edv: float, esv: float) -> float:
        return 100.0 * (edv - esv) / edv if cine and edv > 0 else nan

    lv, rv = (value(ed, "LV_ml"), value(es, "LV_ml")), (value(ed, "RV_ml"), value(es, "RV_ml"))
    return {
        "ED_frame": int(ed["frame"]) if cine else nan,
        "ES_frame": int(es["frame"]) if cine else nan,
        "LVEDV_ml": lv[0] if cine else nan,
        "LVESV_ml": lv[1] if cine else nan,
        "LVEF_pct": ef(*lv),
        "RVEDV_ml": rv[0] if cine else nan,
        "RVESV_ml": rv[1] if cine else nan,
        "RVEF_pct": ef(*rv),
        "myo_mass_g": value(ed, "myocardium_ml") * MYOCARDIAL_DENSITY if cine else nan,
        "ED_wall_mm": value(ed, "LV_wall_mm") if cine else nan,
    }
