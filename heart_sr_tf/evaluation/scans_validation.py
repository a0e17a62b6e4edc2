"""Clinical figures during training on a lab's own scans (a dataset from ``prepare --scans``), where there are no
ground-truth labels: how far the generator brings the segmentation and the measurements of the validation
patients' scans back to those of their full-resolution scans.

As ``evaluate --scans --clinical`` measures them (``scans_clinical.py``), on each validation scan's ED and ES
frames (full resolution's largest and smallest LV; the one frame of a 3D scan). Every version that does not
depend on the model (full resolution, the baselines) is segmented once, when training starts; each validation
runs the generator on the frames' LR slices and segments its output only.
"""

from __future__ import annotations

import numpy as np

from heart_sr_tf.data.degradation import BASELINE_NAMES, Degradation
from heart_sr_tf.evaluation.clinical_validation import generator_output, picked_figures
from heart_sr_tf.evaluation.scans import check_scans, scan_names
from heart_sr_tf.evaluation.scans_clinical import ScansClinical, frame_passes, segmenter_grid
from heart_sr_tf.progress import progress_bar

# metrics.csv columns (each prefixed val_ there): where in ScansClinical.summary()'s entry for the model
FIGURES = {
    "clinical_removed_lv": ("disagreement_removed", "LV", None),
    "clinical_removed_myo": ("disagreement_removed", "myocardium", None),
    "clinical_removed_rv": ("disagreement_removed", "RV", None),
    "clinical_hr_lvef_mae": ("cine", "LVEF_pct", "mae"),
    "clinical_hr_lvedv_mae": ("cine", "LVEDV_ml", "mae"),
    "clinical_hr_mass_bias": ("cine", "myo_mass_g", "bias"),
}


class ScansClinicalValidation:
    """``validation(generator)`` -> the figures of ``FIGURES`` for a 2D in-plane Keras generator, against full
    resolution's segmentation of the validation scans (no labels)."""

    def __init__(
        self, segmenter, scans: list, degradation: Degradation, batch_size: int = 8, quiet: bool = False
    ):  # fmt: skip
        self.segmenter, self.degradation, self.batch_size = segmenter, degradation, batch_size
        checked = check_scans(scans, ndims=(3, 4), stacks_only=True)
        self.left_out = checked.left_out
        rng = np.random.default_rng(0)
        self.passes = []  # each frame's pass, its images dropped but the LR input
        with progress_bar(len(checked.paths), "clinical validation set-up", "scan", disable=quiet) as bar:
            for name, path in zip(scan_names(checked.paths), checked.paths, strict=True):
                for one in frame_passes(segmenter, path, name, degradation, rng, ed_es_only=True):
                    shape = one.versions["hr"].shape[1:]  # the output is cut to the (cropped) full resolution's
                    one.versions = {}  # only the LR input is needed again
                    self.passes.append((one, shape))
                bar.update(1)
        self.scans = len(checked.paths)

    def __call__(self, generator) -> dict[str, float]:
        labels = [self.segmenter.volume(self._predict(generator, one, shape)) for one, shape in self.passes]
        return self.figures(self.result(labels))

    def result(self, model_labels: list[np.ndarray] | None) -> ScansClinical:
        """Every frame measured, the model's from ``model_labels`` (one per frame); without them the model column
        repeats the first baseline, so the figures are those of doing nothing."""
        result = ScansClinical("training", str(self.segmenter.folder), self.degradation, self.segmenter.origin)
        reference = self.degradation.baselines[0]
        for index, (one, _) in enumerate(self.passes):
            model = model_labels[index] if model_labels else one.segmented[reference]
            result.add(one.scan, one.frame, {**one.segmented, "model": model}, one.voxel_ml, one.grid_mm)
        return result

    @staticmethod
    def figures(result: ScansClinical, method: str = "model") -> dict[str, float]:
        return picked_figures(result.summary()[method], FIGURES)

    def reference_figures(self) -> dict[str, dict[str, float]]:
        """Each baseline's figures on the same frames (full resolution's are 0 by definition)."""
        result = self.result(None)
        return {method: self.figures(result, method) for method in self.degradation.baselines}

    def _predict(self, generator, one, shape) -> np.ndarray:
        """The generator's output for one frame's LR slices, in [0, 1] float32, on the segmenter's grid."""
        return segmenter_grid(generator_output(generator, one.lr, shape, self.batch_size), one.pixel_mm)[0]

    def describe(self) -> str:
        left = f", {len(self.left_out)} left out" if self.left_out else ""
        return (
            f"{self.scans} validation scans{left}, {len(self.passes)} ED/ES frames against full resolution's "
            f"segmentation, segmenter {self.segmenter.folder}"
        )

    def line(self, figures: dict[str, float]) -> str:
        """One line: the share of the first baseline's disagreement with full resolution's segmentation that the
        model removes, and its measurements' differences from full resolution's next to that baseline's."""
        reference = self.degradation.baselines[0]
        low, name = self.reference_figures()[reference], BASELINE_NAMES[reference]
        removed = " / ".join(f"{figures[f'clinical_removed_{k}']:.0f}%" for k in ("lv", "myo", "rv"))
        parts = [
            f"validation, clinical ({self.describe()}): model removes {removed} of {name}'s LV / myocardium / RV "
            "disagreement with full resolution's segmentation"
        ]
        for key, label, unit in (
            ("clinical_hr_lvef_mae", "LVEF MAE", "points"),
            ("clinical_hr_lvedv_mae", "LVEDV MAE", "ml"),
            ("clinical_hr_mass_bias", "mass bias", "g"),
        ):
            parts.append(f"{label} from full resolution's {figures[key]:.1f} {unit} ({name} {low[key]:.1f})")
        return " | ".join(parts)
