"""Clinical fidelity on a lab's own scans, where there are no ground-truth labels: would the lab measure from a
low-resolution acquisition, super-resolved, what it measures from its full-resolution scan?

Each frame of each scan goes on the protocol grid (``data/slices.scan_frames``) as the full-resolution image; its
slices are degraded as the model's training data was and rebuilt by the model and by the degradation's baselines.
The segmenter segments every version of the frame, and full resolution's segmentation is the reference:

- per frame and structure, the 3D Dice of each input's segmentation against it ("agreement with full
  resolution"), and the share of the first baseline's disagreement that an input removes (95% interval by
  resampling scans);
- per frame, the LV, RV and myocardial volumes against full resolution's;
- per cine (a scan of several frames), LVEDV, LVESV, LVEF, RVEDV, RVESV, RVEF, the myocardial mass and the LV wall
  thickness at ED, each input's from its own volume curve (ED the frame of largest LV, ES of smallest, as
  ``upscale --measure`` finds them), against full resolution's: mean absolute difference, bias and 95% limits of
  agreement; and how often the input finds full resolution's ED and ES frames.

Volumes are counted on the protocol grid, each voxel's volume from the scan's spacing. The numbers come from an
automatic segmenter trained on ACDC, and every output says so.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heart_sr_tf.cardiac_metrics import (
    CINE_MEASURES,
    STRUCTURES,
    agreement,
    cine_measurements,
    dice_scores,
    gap_closed,
    gap_closed_interval,
    volumes_ml,
    wall_thickness_mm,
)
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.data.slices import (
    GRID_PIXEL_MM,
    HEART_MARGIN,
    HR_SIZE,
    grid_axis,
    heart_box,
    resize_slice,
    scan_frames,
)
from heart_sr_tf.evaluation.clinical import NAMES, degrade_frame, share_cells
from heart_sr_tf.evaluation.report import write_csv
from heart_sr_tf.evaluation.scans import CheckedScans, scan_names
from heart_sr_tf.export.layout import OURS
from heart_sr_tf.metrics import image_metrics
from heart_sr_tf.path_text import PATH_TEXT
from heart_sr_tf.progress import progress_bar

FRAME_MEASURES = ("LV_ml", "myocardium_ml", "RV_ml")
CINE = tuple(m for m in CINE_MEASURES if m not in ("ED_frame", "ES_frame"))
UNITS = {"LVEF_pct": "points", "RVEF_pct": "points", "myo_mass_g": "g", "ED_wall_mm": "mm"}


def clinical_note(origin: str) -> str:
    """What the figures are: from whose automatic segmenter (``trained on ACDC``: ours), on which grid."""
    return f"an automatic segmenter {origin}, on the 256x256 protocol grid; not a clinical measurement"


@dataclass
class ScansClinical:
    source: str
    segmenter: str
    degradation: Degradation
    origin: str = OURS  # the segmenter's (Segmenter.origin)
    frames: list[dict] = field(default_factory=list)  # one per (scan, frame, method), in the same order per method
    placed: list[str] = field(default_factory=list)  # the scans of a small field of view (``segmenter_grid``)
    images: list[dict] = field(default_factory=list)  # image metrics of every slice and in its heart box, as evaluate's
    boxes: dict[str, tuple[int, int, int, int] | None] = field(default_factory=dict)  # scan -> its heart box

    @property
    def methods(self) -> list[str]:
        return ["hr", *self.degradation.baselines, "model"]

    @property
    def reference(self) -> str:
        """The baseline whose disagreement with full resolution is measured: the one to beat first."""
        return self.degradation.baselines[0]

    def add(self, scan: str, frame: int, segmented: dict[str, np.ndarray], voxel_ml: float, pixel_mm) -> None:
        """One frame's label maps, one per method (``hr`` first): agreement with full resolution's, volumes."""
        full = segmented["hr"]
        for method, labels in segmented.items():
            volumes = volumes_ml(labels, voxel_ml)
            self.frames.append(
                {
                    "scan": scan,
                    "frame": frame,
                    "method": method,
                    **{f"agreement_{k}": v for k, v in dice_scores(labels, full).items()},
                    **{f"{k}_ml": volumes[k] for k in STRUCTURES},
                    "LV_wall_mm": wall_thickness_mm(labels, pixel_mm),
                }
            )

    def cines(self) -> list[dict]:
        """Per scan of several frames and method: the cine's measurements, with full resolution's (``hr_*``)."""
        rows = []
        for scan in dict.fromkeys(r["scan"] for r in self.frames):
            mine = {m: [r for r in self.frames if r["scan"] == scan and r["method"] == m] for m in self.methods}
            if len(mine["hr"]) < 2:
                continue
            full = cine_measurements(mine["hr"])
            for method in self.methods:
                values = cine_measurements(mine[method])
                rows.append({"scan": scan, "method": method, **values, **{f"hr_{k}": full[k] for k in CINE_MEASURES}})
        return rows

    def summary(self) -> dict:
        """method -> agreement with full resolution per structure, the disagreement removed, and the agreement of
        each frame volume and cine measurement with full resolution's."""
        by_method = {m: [r for r in self.frames if r["method"] == m] for m in self.methods}
        full, cines = by_method["hr"], self.cines()
        groups = np.array([r["scan"] for r in full])
        out: dict = {}
        for method, rows in by_method.items():
            mine = [c for c in cines if c["method"] == method]
            out[method] = {
                "frames": len(rows),
                "scans": len({r["scan"] for r in rows}),
                "cines": len(mine),
                "agreement_with_hr": {k: float(np.mean([r[f"agreement_{k}"] for r in rows])) for k in STRUCTURES},
                "frame_volumes": {k: agreement([r[k] for r in rows], [r[k] for r in full]) for k in FRAME_MEASURES},
                "cine": {k: agreement([c[k] for c in mine], [c[f"hr_{k}"] for c in mine]) for k in CINE},
                "same_ed_es": sum(
                    c["ED_frame"] == c["hr_ED_frame"] and c["ES_frame"] == c["hr_ES_frame"] for c in mine
                ),
            }
        for method, rows in by_method.items():
            reference = by_method[self.reference]
            agree, base = out[method]["agreement_with_hr"], out[self.reference]["agreement_with_hr"]
            out[method]["disagreement_removed"] = {k: gap_closed(agree[k], base[k], 1.0) for k in STRUCTURES}
            intervals = {}
            for k in STRUCTURES:
                values = [np.array([r[f"agreement_{k}"] for r in x], float) for x in (rows, reference)]
                intervals[k] = (
                    gap_closed_interval(values[0], values[1], np.ones_like(values[0]), groups)
                    if len(set(groups)) > 1
                    else (float("nan"), float("nan"))  # one scan: nothing to resample
                )
            out[method]["interval_95"] = {"disagreement_removed": intervals}
        return out


def scans_clinical(
    predictor, segmenter, checked: CheckedScans, degradation: Degradation, quiet: bool = False
) -> ScansClinical:
    """Segment every frame of the ``checked`` scans (3D or 4D) at full resolution, through the degradation's
    baselines and through the model, and measure each against full resolution."""
    paths, shapes = checked.paths, checked.shapes
    result = ScansClinical(predictor.source, str(segmenter.folder), degradation, segmenter.origin)
    rng = np.random.default_rng(0)
    total = sum(shape[3] if len(shape) == 4 else 1 for shape in shapes)
    with progress_bar(total, "clinical scans", "frame", disable=quiet) as bar:
        for name, path in zip(scan_names(paths), paths, strict=True):
            for one in frame_passes(segmenter, path, name, degradation, rng):
                result.boxes[name] = one.box
                height, width = one.versions["hr"].shape[1:]
                one.versions["model"] = predictor(one.lr[..., None])[:, :height, :width, 0]
                one.segmented["model"] = segmenter.volume(segmenter_grid(one.versions["model"], one.pixel_mm)[0])
                if one.grid_mm != one.pixel_mm and name not in result.placed:
                    result.placed.append(name)
                result.add(name, one.frame, one.segmented, one.voxel_ml, one.grid_mm)
                result.images += image_rows(name, one.frame, one.versions, one.box)
                bar.update(1)
    return result


@dataclass
class FramePass:
    """One frame of a scan, degraded, with every version but the model's segmented: ``versions`` (``hr`` and the
    baselines, ``[n, H, W]``), ``segmented`` (their label maps on the segmenter's grid, ``hr`` first)."""

    scan: str
    frame: int
    lr: np.ndarray
    versions: dict[str, np.ndarray]
    segmented: dict[str, np.ndarray]
    pixel_mm: tuple[float, float]  # the protocol grid's pixel
    grid_mm: tuple[float, float]  # the segmenter's grid's pixel
    voxel_ml: float
    box: tuple[int, int, int, int] | None  # the scan's heart box (full resolution's segmentation, every frame)


def frame_passes(segmenter, path, name: str, degradation: Degradation, rng, ed_es_only: bool = False):
    """The :class:`FramePass` of every frame of the scan at ``path`` (3D or 4D), or of its ED and ES frames only
    (full resolution's largest and smallest LV). Full resolution's segmentation of every frame comes first: the
    scan's heart box is their union."""
    scan = read_scan(path, ndims=(3, 4))
    zooms, pixel_mm = scan.zooms, protocol_pixel_mm(scan)
    full = {}
    for frame, images in scan_frames(scan.data):
        hr = np.stack([degradation.hr_np(image) for image in images])  # cropped as the degradation crops it
        full[frame] = segmenter.volume(segmenter_grid(hr, pixel_mm)[0])
    box = scan_heart_box(list(full.values()), hr.shape[1:], pixel_mm)
    kept = set(full)
    if ed_es_only and len(full) > 1:
        lv = {frame: int(np.sum(labels == STRUCTURES["LV"])) for frame, labels in full.items()}
        kept = {max(lv, key=lv.get), min(lv, key=lv.get)}
    for frame, images in scan_frames(scan.data):
        if frame not in kept:
            continue
        lr, versions = degrade_frame(images, degradation, rng)
        placed = {method: segmenter_grid(images, pixel_mm) for method, images in versions.items()}
        segmented = {"hr": full[frame]}
        segmented.update({m: segmenter.volume(images) for m, (images, _) in placed.items() if m != "hr"})
        grid_mm = placed["hr"][1]
        voxel_ml = grid_mm[0] * grid_mm[1] * zooms[2] / 1000.0
        yield FramePass(name, frame, lr, versions, segmented, pixel_mm, grid_mm, voxel_ml, box)


def protocol_pixel_mm(scan) -> tuple[float, float]:
    """The in-plane pixel size of ``scan`` on the 256x256 protocol grid, mm."""
    (nx, ny), zooms = scan.data.shape[:2], scan.zooms
    return zooms[0] * nx / HR_SIZE, zooms[1] * ny / HR_SIZE


def segmented_heart_box(segmenter, scan) -> tuple[int, int, int, int] | None:
    """A scan's heart box on the protocol grid from ``segmenter``'s segmentation of every frame (``prepare --scans
    --heart-boxes``: a lab's scans have no labels), as :func:`scan_heart_box` draws it."""
    pixel_mm = protocol_pixel_mm(scan)
    labels = [segmenter.volume(segmenter_grid(images, pixel_mm)[0]) for _, images in scan_frames(scan.data)]
    return scan_heart_box(labels, (HR_SIZE, HR_SIZE), pixel_mm)


def scan_heart_box(labels: list[np.ndarray], shape, pixel_mm) -> tuple[int, int, int, int] | None:
    """The protocol's heart box (``data/slices.heart_box``: the union over every slice, +10 px) of a scan whose
    frames' images of ``shape`` were segmented as ``labels`` ``[n, 256, 256]`` on the segmenter's grid: full
    resolution's automatic segmentation in the place of ground-truth labels, in the images' own coordinates."""
    (gx, ox), (gy, oy) = grid_axis(shape[0], pixel_mm[0]), grid_axis(shape[1], pixel_mm[1])
    inside = [np.transpose(volume[:, ox : ox + gx, oy : oy + gy], (1, 2, 0)) for volume in labels]
    box = heart_box(inside, size=shape[0], margin=HEART_MARGIN)
    return None if box is None else (box[0], min(box[1], shape[0]), box[2], min(box[3], shape[1]))


def image_rows(scan: str, frame: int, versions: dict[str, np.ndarray], box) -> list[dict]:
    """Per slice and method, the image metrics against full resolution as ``evaluate --scans`` gives them (roi
    ``scans``, the whole slice) and inside ``box`` (roi ``heart``, when there is one)."""
    rois = {"scans": (0, None, 0, None), **({"heart": box} if box is not None else {})}
    rows = []
    for roi, (r0, r1, c0, c1) in rois.items():
        hr = versions["hr"][:, r0:r1, c0:c1]
        for z in range(len(hr)):
            for method, images in versions.items():
                if method != "hr":
                    meta = {"roi": roi, "method": method, "patient": scan, "slice": z, "frame": frame}
                    rows.append({**meta, **image_metrics(images[z, r0:r1, c0:c1], hr[z])})
    return rows


def segmenter_grid(images: np.ndarray, pixel_mm: tuple[float, float]) -> tuple[np.ndarray, tuple[float, float]]:
    """``images`` ``[n, h, w]`` (pixels of ``pixel_mm``) as the segmenter gets them, and their pixel size there: as
    they are, or, for a field of view smaller than ACDC's, resized to ACDC's typical pixel in the middle of the
    256x256 grid on background (``data/slices.grid_axis``, as ``upscale --measure`` places such a scan)."""
    n, h, w = images.shape
    (gx, ox), (gy, oy) = grid_axis(h, pixel_mm[0]), grid_axis(w, pixel_mm[1])
    if gx == HR_SIZE and gy == HR_SIZE:
        return images, pixel_mm
    grid = np.zeros((n, HR_SIZE, HR_SIZE), np.float32)
    for z, image in enumerate(images):
        grid[z, ox : ox + gx, oy : oy + gy] = resize_slice(image, (gx, gy))
    return grid, (pixel_mm[0] * h / gx, pixel_mm[1] * w / gy)


SCANS_CLINICAL_FILES = ("clinical.json", "clinical_frames.csv", "clinical_cines.csv")


def write_scans_clinical(result: ScansClinical, out: Path, summary: dict | None = None) -> list[Path]:
    """clinical.json, clinical_frames.csv, clinical_cines.csv; and the tables appended to summary.md (written by the
    image metrics first)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or result.summary()
    files = [out / name for name in SCANS_CLINICAL_FILES]
    payload = {
        "source": result.source,
        "segmenter": result.segmenter,
        "note": clinical_note(result.origin),
        "reference": "the segmentation of the full-resolution scan (no ground-truth labels)",
        "degradation": result.degradation.metadata(),
        "placed_at_acdc_pixel": result.placed,
        "heart_boxes": {
            "note": "row0, row1, col0, col1 (ends exclusive) on the protocol grid: full resolution's segmentation, "
            "every frame and slice, +10 px; the image metrics of roi 'heart' are taken inside",
            **{scan: None if box is None else list(box) for scan, box in result.boxes.items()},
        },
        "summary": summary,
    }
    files[0].write_text(json.dumps(payload, indent=2, default=float))
    write_csv(files[1], result.frames)
    write_csv(files[2], result.cines())
    markdown = out / "summary.md"
    previous = markdown.read_text(**PATH_TEXT) if markdown.is_file() else ""
    markdown.write_text(previous + ("\n" if previous else "") + scans_clinical_markdown(result, summary), **PATH_TEXT)
    return files


def _cell(a: dict, decimals: int = 1, count: int = 2) -> str:
    """``MAE (bias; low to high)`` of an agreement over ``count`` pairs, the one difference of a single pair; ``-``
    where nothing was measured."""
    if not np.isfinite(a["mae"]):
        return "-"
    n = decimals
    if count == 1:
        return f"{a['bias']:+.{n}f}"
    return f"{a['mae']:.{n}f} ({a['bias']:+.{n}f}; {a['loa_low']:+.{n}f} to {a['loa_high']:+.{n}f})"


def scans_clinical_markdown(result: ScansClinical, summary: dict | None = None) -> str:
    summary = summary or result.summary()
    first = summary["hr"]
    reference = NAMES[result.reference]
    others = [m for m in result.methods if m != "hr"]
    lines = [
        f"## Clinical fidelity on the scans ({first['scans']} scans, {first['frames']} frames, {first['cines']} cines)",
        "",
        f"Segmenter: {result.segmenter} ({clinical_note(result.origin)}). Degradation: "
        f"{result.degradation.describe()}. No ground-truth labels: every input is compared with the segmentation "
        "and the measurements of the full-resolution scan itself. Agreement: 3D Dice with full resolution's "
        f"segmentation per frame, averaged; disagreement removed: the share of {reference}'s disagreement with full "
        "resolution that an input removes, with a 95% interval by resampling scans. Volumes per frame: mean "
        "absolute difference from full resolution's (bias; 95% limits of agreement), ml.",
        "",
        "| input to the segmenter | agreement with full resolution LV / myo / RV | disagreement removed LV / myo / "
        "RV | LV volume | myocardium volume | RV volume |",
        "|---|---|---|---|---|---|",
    ]
    for method in others:
        s = summary[method]
        agree = " / ".join(f"{s['agreement_with_hr'][k]:.3f}" for k in ("LV", "myocardium", "RV"))
        removed = share_cells(s, "disagreement_removed", method == result.reference)
        volumes = " | ".join(_cell(s["frame_volumes"][k]) for k in FRAME_MEASURES)
        lines.append(f"| {NAMES[method]} | {agree} | {removed} | {volumes} |")
    if first["cines"]:
        lines += [
            "",
            f"Per cine ({first['cines']}), each input's measurements from its own volume curve (ED the frame of "
            "largest LV, ES of smallest) against full resolution's: "
            + (
                "the difference."
                if first["cines"] == 1
                else "mean absolute difference (bias; 95% limits of agreement)."
            ),
            "",
            "| measure | " + " | ".join(NAMES[m] for m in others) + " |",
            "|---|" + "---|" * len(others),
        ]
        for measure in CINE:
            decimals = 2 if measure == "ED_wall_mm" else 1
            cells = [_cell(summary[m]["cine"][measure], decimals, first["cines"]) for m in others]
            name, unit = measure.rsplit("_", 1)
            lines.append(f"| {name}, {UNITS.get(measure, unit)} | " + " | ".join(cells) + " |")
        same = [f"{summary[m]['same_ed_es']} of {summary[m]['cines']}" for m in others]
        lines.append("| ED and ES frames as full resolution's | " + " | ".join(same) + " |")
    missing = [scan for scan, box in result.boxes.items() if box is None]
    lines += [
        "",
        "Heart boxes (the image metrics' `heart` rows): the protocol's box with full resolution's segmentation in the "
        "place of labels, its union over every frame and slice widened by 10 px."
        + (f" The segmenter found no heart in {', '.join(missing)}: no heart rows there." if missing else ""),
    ]
    if result.placed:
        lines += [
            "",
            f"Field of view smaller than any in ACDC ({', '.join(result.placed)}): every input segmented at ACDC's "
            f"typical {GRID_PIXEL_MM} mm pixel in the middle of the grid, as `upscale --measure` does, so the "
            "segmenter never sees the heart larger than it was trained on.",
        ]
    return "\n".join(lines) + "\n"
