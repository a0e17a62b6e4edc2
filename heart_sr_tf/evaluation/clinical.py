"""Clinical fidelity: does a super-resolved scan give the measurements of a full-resolution one?

On the split's patients, every labelled (ED and ES) frame goes through the protocol (256x256 slices in [0, 1]),
is degraded slice by slice with the model's degradation, and is rebuilt by the model and by the degradation's
baselines. The segmenter then segments every version of the frame, full resolution included, and each is
measured against the ground-truth labels: 3D Dice per structure per frame, and per patient LVEDV, LVESV, LVEF,
RVEDV, RVESV, RVEF and the myocardial mass at ED (1.05 g/ml), each against the ground truth's own values (mean
absolute error, bias, 95% limits of agreement). The share of the gap from the first baseline (zero-filling for
k-space) to full resolution that a method closes says how much of the lost measurement it brings back.

Each version is also compared with the segmentation of full resolution itself (3D Dice per structure, no ground
truth needed): "disagreement removed" is the share of the first baseline's disagreement with full resolution that
a method removes. It asks the issue's question directly (does the low-resolution scan segment as the
full-resolution one does?), and it stays defined where zero-filling's Dice against the ground truth is already
close to full resolution's: there the gap closed is a ratio of two small differences and swings wildly.
Shares carry 95% intervals by resampling patients; each measurement also carries its absolute error minus full
resolution's, patient by patient, with an interval: whether it is worse than from the full-resolution scan.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heart_sr_tf.cardiac_metrics import (
    KEPT_WARNING,
    STRUCTURES,
    UNSURE,
    agreement,
    dice_scores,
    disagreement_voxels,
    gap_closed,
    gap_closed_interval,
    kept_percent,
    paired_difference,
    patient_measurements,
    volumes_ml,
    wall_thickness_mm,
)
from heart_sr_tf.data.degradation import BASELINE_NAMES, Degradation
from heart_sr_tf.data.segmentation import labelled_frames, split_of
from heart_sr_tf.errors import DataError
from heart_sr_tf.evaluation.acquisition_ladder import ladder_equivalents, ladder_lines, rung_images, rung_name
from heart_sr_tf.evaluation.report import write_csv
from heart_sr_tf.metrics import psnr
from heart_sr_tf.progress import progress_bar

MEASURES = ("LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "myo_mass", "ED_wall_mm")
UNITS = {"LVEF": "points", "RVEF": "points", "myo_mass": "g", "ED_wall_mm": "mm"}
DECIMALS = {"ED_wall_mm": 2}  # sub-millimetre differences matter for the wall; one decimal for the rest
NAMES = {"hr": "full resolution", "model": "model", **BASELINE_NAMES}


@dataclass
class DegradedFrame:
    """One labelled (ED or ES) frame on the protocol grid, degraded slice by slice: the model's input ``lr``
    ``[n, h, w]``, the ground truth ``labels`` on the output grid, and every version of the frame that does not
    depend on the model (``images``: full resolution, cropped as the degradation crops, and the degradation's
    baselines, each ``[n, H, W]`` in [0, 1])."""

    patient: str
    group: str
    phase: str
    voxel_ml: float
    pixel_mm: tuple[float, float]  # in-plane, on the protocol grid (rows, columns)
    lr: np.ndarray
    labels: np.ndarray
    images: dict[str, np.ndarray]

    @property
    def shape(self) -> tuple[int, int]:
        return self.labels.shape[1:]


def degrade_frame(slices: np.ndarray, degradation: Degradation, rng) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """One frame's protocol slices ``[n, h, w]`` degraded slice by slice: ``(lr [n, h', w'] float32, images)``,
    ``images`` the full resolution (cropped as the degradation crops, ``hr``) and every baseline, ``[n, H, W]``."""
    pairs = [degradation.pair_np(image, rng) for image in slices]
    lr = np.stack([p[0] for p in pairs]).astype(np.float32)
    hr = np.stack([p[1] for p in pairs])
    baselines = [degradation.baseline_images(x, hr.shape[1:]) for x in lr]
    return lr, {"hr": hr, **{name: np.stack([b[name] for b in baselines]) for name in degradation.baselines}}


def degraded_frames(patient, degradation: Degradation, rng) -> list[DegradedFrame]:
    """The ED and ES frames of ``patient``, each degraded with ``degradation`` and rebuilt by its baselines."""
    out = []
    for frame in labelled_frames(patient):
        lr, images = degrade_frame(frame.image, degradation, rng)
        hr = images["hr"]
        labels = frame.labels[:, : hr.shape[1], : hr.shape[2]]
        out.append(
            DegradedFrame(
                patient.id,
                patient.info.group,
                frame.phase,
                frame.grid_voxel_ml,
                frame.grid_pixel_mm,
                lr,
                labels,
                images,
            )
        )
    return out


@dataclass
class ClinicalResult:
    split: str
    source: str
    segmenter: str
    degradation: Degradation
    frames: list[dict] = field(default_factory=list)  # (patient, phase, method): Dice and volumes
    _volumes: dict = field(default_factory=dict)  # (patient, group) -> method -> phase -> volumes ("truth" too)
    ladder: tuple[float, ...] = ()  # milder acquisition factors also measured (acquisition_ladder), if any

    @property
    def methods(self) -> list[str]:
        return ["hr", *self.degradation.baselines, "model"]

    @property
    def rungs(self) -> list[str]:
        """The acquisition ladder's inputs (none unless asked for)."""
        return [rung_name(f) for f in self.ladder]

    @property
    def reference(self) -> str:
        """The baseline whose gap to full resolution is measured: the one to beat first."""
        return self.degradation.baselines[0]

    def add(
        self,
        frame: DegradedFrame,
        segmented: dict[str, np.ndarray],
        full: np.ndarray | None = None,
        kept: dict[str, dict[str, float]] | None = None,
        unsure: dict[str, np.ndarray] | None = None,
        psnrs: dict[str, float] | None = None,
    ) -> None:
        """One frame's label maps, one per method: its Dice, volumes and wall thickness against the ground truth,
        and its agreement with full resolution's label map (``segmented["hr"]``, or ``full`` when the frame's
        full resolution was added before). ``kept``: per method, each structure's share of its labelled voxels
        that the post-processing kept (``Segmenter.volume_and_kept``), where known. ``unsure``: where the
        segmenter was unsure of each structure at full resolution (``Segmenter.volume_and_kept``), where known: the
        disagreement with full resolution is then also counted in voxels, there and elsewhere. ``psnrs``: per
        method, the mean PSNR of the frame's slices against full resolution, where known."""
        measured = self._volumes.setdefault((frame.patient, frame.group), {})
        truths = measured.setdefault("truth", {})
        if frame.phase not in truths:
            truths[frame.phase] = self._measured(frame, frame.labels)
        truth = truths[frame.phase]
        full = segmented.get("hr", full)
        for method, labels in segmented.items():
            volumes = self._measured(frame, labels)
            agreement_with_hr = dice_scores(labels, full) if full is not None else {}
            voxels = disagreement_voxels(labels, full, unsure) if full is not None and unsure else {}
            measured.setdefault(method, {})[frame.phase] = volumes
            self.frames.append(
                {
                    "patient": frame.patient,
                    "phase": frame.phase,
                    "method": method,
                    **{f"dice_{k}": v for k, v in dice_scores(labels, frame.labels).items()},
                    **{f"agreement_{k}": v for k, v in agreement_with_hr.items()},
                    **{f"volume_{k}_ml": volumes[k] for k in STRUCTURES},
                    **{f"truth_volume_{k}_ml": truth[k] for k in STRUCTURES},
                    "wall_mm": volumes["wall_mm"],
                    "truth_wall_mm": truth["wall_mm"],
                    **{f"kept_{k}": (kept or {}).get(method, {}).get(k, np.nan) for k in STRUCTURES},
                    **{f"disagree_{k}_voxels": v for k, v in voxels.items()},
                    **({"psnr": psnrs.get(method, np.nan), "slices": len(labels)} if psnrs is not None else {}),
                }
            )

    @staticmethod
    def _measured(frame: DegradedFrame, labels: np.ndarray) -> dict[str, float]:
        """The structures' volumes (ml) and the mean LV wall thickness (``wall_mm``) of one frame's label map."""
        return {**volumes_ml(labels, frame.voxel_ml), "wall_mm": wall_thickness_mm(labels, frame.pixel_mm)}

    @property
    def patients(self) -> list[dict]:
        """(patient, method): the measurements from ED and ES, and the ground truth's own; patients with both."""
        rows = []
        for (patient, group), measured in self._volumes.items():
            truth = measured["truth"]
            if not {"ED", "ES"} <= set(truth):
                continue
            reference = patient_measurements(truth["ED"], truth["ES"])
            for method, phases in measured.items():
                if method == "truth":
                    continue
                values = patient_measurements(phases["ED"], phases["ES"])
                rows.append(
                    {
                        "patient": patient,
                        "group": group,
                        "method": method,
                        **values,
                        **{f"truth_{k}": v for k, v in reference.items()},
                    }
                )
        return rows

    def summary(self) -> dict:
        """method -> Dice per structure (mean over frames), the gap closed, and each measure's agreement."""
        out: dict = {}
        patients = self.patients
        everything = self.methods + self.rungs
        for method in everything:
            rows = [r for r in self.frames if r["method"] == method]
            dice = {name: float(np.mean([r[f"dice_{name}"] for r in rows])) for name in STRUCTURES}
            agree = {name: float(np.mean([r.get(f"agreement_{name}", np.nan) for r in rows])) for name in STRUCTURES}
            values = [r for r in patients if r["method"] == method]
            measures = {m: agreement([r[m] for r in values], [r[f"truth_{m}"] for r in values]) for m in MEASURES}
            out[method] = {
                "frames": len(rows),
                "patients": len(values),
                "dice": dice,
                "agreement_with_hr": agree,
                "measures": measures,
            }
            if rows and "psnr" in rows[0]:  # mean over slices: each frame's mean weighted by its slices
                weights = [r["slices"] for r in rows]
                out[method]["psnr"] = float(np.average([r["psnr"] for r in rows], weights=weights))
        for method in everything:
            out[method]["gap_closed"] = {
                name: gap_closed(out[method]["dice"][name], out[self.reference]["dice"][name], out["hr"]["dice"][name])
                for name in STRUCTURES
            }
            out[method]["disagreement_removed"] = {
                name: gap_closed(
                    out[method]["agreement_with_hr"][name], out[self.reference]["agreement_with_hr"][name], 1.0
                )
                for name in STRUCTURES
            }
        where = self._disagreement_where()
        for method in everything:
            if method in where:
                out[method]["disagreement_voxels"] = where[method]
                out[method]["disagreement_removed_where"] = {
                    name: {
                        part: removed_share(where[method][name][part], where[self.reference][name][part])
                        for part in ("sure", "unsure")
                    }
                    for name in STRUCTURES
                }
            out[method]["interval_95"] = self._intervals(method)
            out[method]["error_minus_hr"] = self._errors_minus_hr(patients, method)
        if self.ladder:
            out["model"]["equivalent_acquisition"] = ladder_equivalents(
                self.frames, self.ladder, self.degradation.factor, self.reference, "model"
            )
        return out

    def _disagreement_where(self) -> dict:
        """method -> structure -> disagreeing voxels with full resolution, summed over the frames, where the
        segmenter was sure of the structure at full resolution and where it was unsure; {} unless known for
        every frame."""
        if not self.frames or any("disagree_LV_voxels" not in r for r in self.frames):
            return {}
        out = {}
        for method in self.methods:
            rows = [r for r in self.frames if r["method"] == method]
            out[method] = {}
            for name in STRUCTURES:
                unsure = sum(r[f"disagree_{name}_unsure_voxels"] for r in rows)
                out[method][name] = {"sure": sum(r[f"disagree_{name}_voxels"] for r in rows) - unsure, "unsure": unsure}
        return out

    @staticmethod
    def _errors_minus_hr(patients: list[dict], method: str) -> dict:
        """Per measure: the method's absolute error minus full resolution's, patient by patient (mean, 95%
        interval): is the measurement from this input worse than from the full-resolution scan?"""
        rows, common = paired_patients(patients, method)

        def errors(m: str, measure: str) -> list[float]:
            return [abs(rows[m][p][measure] - rows[m][p][f"truth_{measure}"]) for p in common]

        return {measure: paired_difference(errors(method, measure), errors("hr", measure)) for measure in MEASURES}

    def _intervals(self, method: str) -> dict:
        """95% intervals of the gap closed and the disagreement removed, by resampling patients."""
        by_method = {m: [r for r in self.frames if r["method"] == m] for m in (method, self.reference, "hr")}
        groups = np.array([r["patient"] for r in by_method[method]])
        intervals = {}
        for part, column, full in (("gap_closed", "dice", "hr"), ("disagreement_removed", "agreement", None)):
            intervals[part] = {}
            for name in STRUCTURES:
                key = f"{column}_{name}"
                values = [np.array([r.get(key, np.nan) for r in by_method[m]], float) for m in (method, self.reference)]
                top = np.array([r[key] for r in by_method[full]], float) if full else np.ones_like(values[0])
                intervals[part][name] = gap_closed_interval(values[0], values[1], top, groups)
        return intervals


def paired_patients(patients: list[dict], method: str, reference: str = "hr") -> tuple[dict, list]:
    """``(rows, common)``: a ``ClinicalResult``'s patient rows of ``method`` and ``reference`` by method and
    patient, and the patients both have, sorted: the pairs that a paired difference between the two runs over."""
    rows = {m: {r["patient"]: r for r in patients if r["method"] == m} for m in (method, reference)}
    return rows, sorted(set(rows[method]) & set(rows[reference]))


def labelled_patients(acdc_dir: Path, split: str, seed: int, limit: int | None = None) -> list:
    """The split's patients (the first ``limit``) that have labels, which the clinical figures are measured
    against; none is one line (an ACDC folder may hold patients without them, as the challenge's test set was
    released), not tables of NaN."""
    patients = [p for p in split_of(acdc_dir, split, seed)[:limit] if p.label_paths]
    if not patients:
        raise DataError(
            acdc_dir,
            f"no patient of the {split} split has labels (*_gt.nii.gz), which --clinical measures against; on "
            "scans without labels, `evaluate MODEL --scans PATH --clinical` measures against full resolution's "
            "own segmentation",
        )
    return patients


def clinical_evaluation(
    predictor, segmenters, acdc_dir: Path, split: str, seed: int, degradation: Degradation,
    limit: int | None = None, quiet: bool = False, ladder: tuple[float, ...] = (),
) -> list[ClinicalResult]:  # fmt: skip
    """Measure the split's patients (the first ``limit``) at full resolution, through the baselines and the model
    (and, with ``ladder``, milder acquisitions of the same frames): one result per segmenter, each segmenting the
    same images (the model runs once per frame)."""
    patients = labelled_patients(acdc_dir, split, seed, limit)
    results = [ClinicalResult(split, predictor.source, str(s.folder), degradation, ladder=ladder) for s in segmenters]
    rng = np.random.default_rng(0)
    ladder_rng = np.random.default_rng(1)  # its own noise draws: the ladder never changes the other inputs' noise
    with progress_bar(len(patients), f"clinical {split}", "patient", disable=quiet) as bar:
        for patient in patients:
            for frame in degraded_frames(patient, degradation, rng):
                height, width = frame.shape
                images = {**frame.images, "model": predictor(frame.lr[..., None])[:, :height, :width, 0]}
                images.update(rung_images(frame.images["hr"], degradation, ladder, ladder_rng))
                psnrs = {
                    method: float(np.mean([psnr(a, b) for a, b in zip(x, frame.images["hr"], strict=True)]))
                    for method, x in images.items()
                    if method != "hr"
                }
                for segmenter, result in zip(segmenters, results, strict=True):
                    outputs = {method: segmenter.volume_and_kept(x) for method, x in images.items()}
                    segmented = {method: labels for method, (labels, _, _) in outputs.items()}
                    kept = {method: shares for method, (_, shares, _) in outputs.items()}
                    result.add(frame, segmented, kept=kept, unsure=outputs["hr"][2], psnrs=psnrs)
            bar.update(1)
    return results


CLINICAL_FILES = ("clinical.json", "clinical_frames.csv", "clinical_patients.csv", "clinical_bland_altman.png")


def write_clinical(result: ClinicalResult, out: Path, summary: dict | None = None) -> list[Path]:
    """clinical.json, clinical_frames.csv, clinical_patients.csv, clinical_bland_altman.png; and the clinical
    tables appended to summary.md (written by the image metrics first)."""
    out.mkdir(parents=True, exist_ok=True)
    summary = summary or result.summary()
    files = [out / name for name in CLINICAL_FILES[:3]]
    files[0].write_text(
        json.dumps(
            {
                "split": result.split,
                "source": result.source,
                "segmenter": result.segmenter,
                "degradation": result.degradation.metadata(),
                "summary": summary,
            },
            indent=2,
        )
    )
    write_csv(files[1], result.frames)
    write_csv(files[2], result.patients)
    markdown = out / "summary.md"
    previous = markdown.read_text() if markdown.is_file() else ""
    markdown.write_text(previous + ("\n" if previous else "") + clinical_markdown(result, summary))
    files.append(bland_altman_figure(result, out / CLINICAL_FILES[3]))
    return files


def clinical_markdown(result: ClinicalResult, summary: dict | None = None) -> str:
    summary = summary or result.summary()
    first = summary["hr"]
    reference = NAMES[result.reference]
    lines = [
        f"## Clinical fidelity ({result.split}: {first['patients']} patients, {first['frames']} ED/ES frames)",
        "",
        f"Segmenter: {result.segmenter}. Degradation: {result.degradation.describe()}. 3D Dice per frame against "
        "the ground-truth labels, averaged; measurements per patient against the ground truth's own (MAE; bias "
        f"and 95% limits of agreement); gap closed: the share of the {reference}-to-full-resolution Dice gap; "
        "agreement with full resolution: 3D Dice against the segmentation of the full-resolution frame, and the "
        f"share of {reference}'s disagreement removed. In brackets: 95% intervals by resampling patients.",
        "",
        "| input to the segmenter | Dice LV | Dice myocardium | Dice RV | LVEF MAE (points) | LVEDV MAE (ml) | "
        "myo mass bias (g) | gap closed LV / myo / RV | agreement with full resolution LV / myo / RV | "
        "disagreement removed LV / myo / RV |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for method in result.methods:
        s = summary[method]
        d, m = s["dice"], s["measures"]
        gaps, removed = (
            share_cells(s, part, method in ("hr", result.reference)) for part in ("gap_closed", "disagreement_removed")
        )
        agree = " / ".join(f"{s['agreement_with_hr'][k]:.3f}" for k in ("LV", "myocardium", "RV"))
        lines.append(
            f"| {NAMES[method]} | {d['LV']:.3f} | {d['myocardium']:.3f} | {d['RV']:.3f} | {m['LVEF']['mae']:.1f} | "
            f"{m['LVEDV']['mae']:.1f} | {m['myo_mass']['bias']:+.1f} | {gaps} | {agree} | {removed} |"
        )
    lines += ["", "| measure | " + " | ".join(NAMES[m] for m in result.methods) + " |"]
    lines.append("|---|" + "---|" * len(result.methods))
    for measure in MEASURES:
        cells = []
        for method in result.methods:
            a = summary[method]["measures"][measure]
            n = DECIMALS.get(measure, 1)
            cells.append(f"{a['mae']:.{n}f} ({a['bias']:+.{n}f}; {a['loa_low']:+.{n}f} to {a['loa_high']:+.{n}f})")
        unit = UNITS.get(measure, "ml")
        lines.append(f"| {measure} MAE (bias; LoA), {unit} | " + " | ".join(cells) + " |")
    others = [m for m in result.methods if m != "hr"]
    lines += [
        "",
        "Each input's absolute error minus full resolution's, patient by patient: mean [95% interval by resampling "
        "patients]; an interval below 0 says the measurement is better than from full resolution, above 0 worse.",
        "",
        "| measure | " + " | ".join(NAMES[m] for m in others) + " |",
        "|---|" + "---|" * len(others),
    ]
    for measure in MEASURES:
        cells = []
        for method in others:
            d = summary[method]["error_minus_hr"][measure]
            n = DECIMALS.get(measure, 1)
            cells.append(f"{d['mean']:+.{n}f} [{d['low']:+.{n}f}, {d['high']:+.{n}f}]")
        lines.append(f"| {measure}, {UNITS.get(measure, 'ml')} | " + " | ".join(cells) + " |")
    lines += where_lines(result, summary)
    lines += ladder_lines(result, summary)
    lines += pieces_lines(result)
    return "\n".join(lines) + "\n"


def pieces_lines(result: ClinicalResult) -> list[str]:
    """The frames whose segmentation came in pieces, per input: a structure whose largest 3D component (all the
    post-processing keeps) holds under ``KEPT_WARNING`` of the voxels the segmenter labelled it. There the kept
    piece may not be the heart's, and a Dice of 0 follows; nothing when the shares are not known."""
    flagged = {method: [] for method in result.methods}
    known = False
    for row in result.frames:
        if row["method"] not in flagged:  # the acquisition ladder's rungs are not listed
            continue
        for name in STRUCTURES:
            share = row.get(f"kept_{name}", np.nan)
            known = known or bool(np.isfinite(share))
            if share < KEPT_WARNING:
                flagged[row["method"]].append(f"{row['patient']} {row['phase']} {name} {kept_percent(share)}")
    if not known:
        return []
    measured = [m for m in result.methods if any(row["method"] == m for row in result.frames)]
    cells = [f"{NAMES[m]}: {', '.join(flagged[m]) if flagged[m] else 'none'}" for m in measured]
    return [
        "",
        f"Segmentations in pieces (a structure's largest 3D component, all the post-processing keeps, holds under "
        f"{KEPT_WARNING:.0%} of the voxels labelled it; check these frames): " + "; ".join(cells) + ".",
    ]


def removed_share(voxels: int, reference: int) -> float:
    """The share (%) of the reference's disagreeing voxels that an input no longer disagrees on; NaN with none."""
    return float("nan") if reference == 0 else 100.0 * (reference - voxels) / reference


def where_lines(result: ClinicalResult, summary: dict) -> list[str]:
    """Where the disagreement with full resolution lies: on the segmenter's own border of each structure (its
    probability at full resolution within ``UNSURE``) or where it was sure; nothing when not known."""
    if "disagreement_voxels" not in summary["hr"]:
        return []
    reference = result.reference
    low, high = UNSURE
    lines = [
        "",
        f"Where each input disagrees with full resolution's segmentation, in voxels summed over the frames: where the "
        f"segmenter was sure of the structure at full resolution (probability outside {low}-{high}) and where it "
        f"was unsure (its own border of the structure, where any change of the image flips some decisions); and "
        f"the share of {NAMES[reference]}'s disagreement removed in each.",
        "",
        "| input | LV sure / unsure | myocardium sure / unsure | RV sure / unsure |",
        "|---|---|---|---|",
    ]
    for method in result.methods:
        if method == "hr":
            continue
        cells = []
        for name in ("LV", "myocardium", "RV"):
            voxels, removed = (
                summary[method]["disagreement_voxels"][name],
                summary[method]["disagreement_removed_where"][name],
            )
            cell = f"{voxels['sure']:,} / {voxels['unsure']:,}"
            if method != reference:
                shares = (f"{removed[part]:.0f}%" if np.isfinite(removed[part]) else "-" for part in ("sure", "unsure"))
                cell += f" ({' / '.join(shares)} removed)"  # "-": the baseline had none there to remove
            cells.append(cell)
        lines.append(f"| {NAMES[method]} | " + " | ".join(cells) + " |")
    return lines


def share_cells(summary: dict, part: str, trivial: bool = False) -> str:
    """``89% [67, 105] / ...`` for LV, myocardium and RV; without the interval where the share is 0 or 100% by
    definition (full resolution, the reference baseline)."""
    cells = []
    for name in ("LV", "myocardium", "RV"):
        cell = f"{summary[part][name]:.0f}%"
        low, high = summary["interval_95"][part][name] if not trivial else (np.nan, np.nan)
        if np.isfinite(low) and np.isfinite(high):  # (none from a single patient or scan)
            cell += f" [{low:.0f}, {high:.0f}]"
        cells.append(cell)
    return " / ".join(cells)


def bland_altman_figure(result: ClinicalResult, path: Path) -> Path:
    """LVEF and myocardial mass: difference from the ground truth against the mean, model next to the first
    baseline, with each one's bias and 95% limits of agreement."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for ax, measure in zip(axes, ("LVEF", "myo_mass"), strict=True):
        for method, colour in ((result.reference, "tab:orange"), ("model", "tab:blue")):
            rows = [r for r in result.patients if r["method"] == method]
            measured = np.array([r[measure] for r in rows])
            truth = np.array([r[f"truth_{measure}"] for r in rows])
            a = agreement(measured, truth)
            ax.scatter((measured + truth) / 2, measured - truth, s=14, color=colour, label=NAMES[method])
            for value, style in ((a["bias"], "-"), (a["loa_low"], "--"), (a["loa_high"], "--")):
                ax.axhline(value, color=colour, linestyle=style, linewidth=1)
        unit = "points" if measure == "LVEF" else "g"
        ax.set_title(f"{measure}: segmenter on each input vs ground truth")
        ax.set_xlabel(f"mean of the two ({'%' if measure == 'LVEF' else 'g'})")
        ax.set_ylabel(f"difference ({unit})")
        ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
