"""Clinical figures during training: how much of the zero-filling-to-full-resolution gap in segmentation and in
the measurements the generator closes on the validation patients, next to the image metrics.

Every version of a frame that does not depend on the model (full resolution, the baselines) is segmented once,
when training starts; each validation then runs the generator on the frames' LR slices and segments its output
only. The figures are those of ``evaluate --clinical``, on the validation split instead of the test split.
"""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np

from heart_sr_tf.data.degradation import BASELINE_NAMES, Degradation
from heart_sr_tf.data.segmentation import split_of
from heart_sr_tf.evaluation.clinical import ClinicalResult, degraded_frames
from heart_sr_tf.progress import progress_bar

# metrics.csv columns (each prefixed val_ there): the model's figures that a clinical choice rests on
# (where in ClinicalResult.summary()'s entry for a method: a gap closed, or a measure's statistic)
FIGURES = {
    "clinical_gap_lv": ("gap_closed", "LV", None),
    "clinical_gap_myo": ("gap_closed", "myocardium", None),
    "clinical_gap_rv": ("gap_closed", "RV", None),
    "clinical_removed_lv": ("disagreement_removed", "LV", None),
    "clinical_removed_myo": ("disagreement_removed", "myocardium", None),
    "clinical_removed_rv": ("disagreement_removed", "RV", None),
    "clinical_lvef_mae": ("measures", "LVEF", "mae"),
    "clinical_lvedv_mae": ("measures", "LVEDV", "mae"),
    "clinical_mass_bias": ("measures", "myo_mass", "bias"),
}


class ClinicalValidation:
    """``validation(generator)`` -> the figures of ``FIGURES`` for a 2D in-plane Keras generator."""

    def __init__(
        self, segmenter, acdc_dir: Path, seed: int, degradation: Degradation, patients: int = 0,
        batch_size: int = 8, quiet: bool = False,
    ):  # fmt: skip
        self.segmenter, self.degradation, self.batch_size = segmenter, degradation, batch_size
        chosen = split_of(acdc_dir, "validation", seed)
        chosen = chosen[:patients] if patients else chosen
        rng = np.random.default_rng(0)
        self.frames = []  # (frame without its images, the fixed methods' label maps)
        # the fixed methods' rows, measured once: each validation adds the model's rows to a copy
        self._fixed = ClinicalResult("validation", "training", str(segmenter.folder), degradation)
        with progress_bar(len(chosen), "clinical validation set-up", "patient", disable=quiet) as bar:
            for patient in chosen:
                for frame in degraded_frames(patient, degradation, rng):
                    fixed = {method: segmenter.volume(images) for method, images in frame.images.items()}
                    frame.images = {}  # only the LR input is needed again
                    self.frames.append((frame, fixed))
                    self._fixed.add(frame, fixed)
                bar.update(1)
        self.patients = len(chosen)

    def __call__(self, generator) -> dict[str, float]:
        segmented = {}
        for index, (frame, _) in enumerate(self.frames):
            segmented[index] = self.segmenter.volume(self._predict(generator, frame.lr, frame.shape))
        return self.figures(self.result(segmented))

    def result(self, model_labels: dict[int, np.ndarray]) -> ClinicalResult:
        """The clinical result with the model's label maps (frame index -> labels); without them the model
        column repeats the first baseline, so the figures are those of doing nothing."""
        result = copy.deepcopy(self._fixed)
        reference = self.degradation.baselines[0]
        for index, (frame, fixed) in enumerate(self.frames):
            result.add(frame, {"model": model_labels.get(index, fixed[reference])}, full=fixed["hr"])
        return result

    @staticmethod
    def figures(result: ClinicalResult, method: str = "model") -> dict[str, float]:
        return picked_figures(result.summary()[method], FIGURES)

    def reference_figures(self) -> dict[str, dict[str, float]]:
        """Full resolution's and each baseline's figures on the same frames (gaps: 100% and 0% by definition)."""
        result = self.result({})
        return {method: self.figures(result, method) for method in result.methods if method != "model"}

    def _predict(self, generator, lr: np.ndarray, shape) -> np.ndarray:
        return generator_output(generator, lr, shape, self.batch_size)

    def line(self, figures: dict[str, float]) -> str:
        return clinical_line(figures, self)

    def describe(self) -> str:
        frames = len(self.frames)
        return f"{self.patients} validation patients, {frames} ED/ES frames, segmenter {self.segmenter.folder}"


def picked_figures(summary: dict, figures: dict) -> dict[str, float]:
    """The named figures of one method's clinical summary: name -> (part, key, statistic or None)."""
    out = {}
    for name, (part, key, statistic) in figures.items():
        value = summary[part][key]
        out[name] = float(value[statistic] if statistic else value)
    return out


def generator_output(generator, lr: np.ndarray, shape, batch_size: int) -> np.ndarray:
    """A Keras generator's ``[n, H, W]`` output for ``[n, h, w]`` LR slices, cut to ``shape`` and clipped to
    [0, 1], float32 whatever the generator's precision."""
    outs = []
    for start in range(0, len(lr), batch_size):
        batch = lr[start : start + batch_size, ..., None]
        outs.append(np.asarray(generator(batch, training=False), dtype=np.float32))
    out = np.concatenate(outs)[:, : shape[0], : shape[1], 0]
    return np.clip(out, 0.0, 1.0)


def clinical_line(figures: dict[str, float], validation: ClinicalValidation) -> str:
    """One line: the share of each Dice gap the model closes, and its measurement errors next to full
    resolution's and the first baseline's on the same frames."""
    reference = validation.degradation.baselines[0]
    others = validation.reference_figures()
    hr, low = others["hr"], others[reference]
    name = BASELINE_NAMES[reference]
    gaps, removed = (
        " / ".join(f"{figures[f'clinical_{part}_{k}']:.0f}%" for k in ("lv", "myo", "rv"))
        for part in ("gap", "removed")
    )
    parts = [
        f"validation, clinical ({validation.describe()}): model closes {gaps} of the LV / myocardium / RV Dice "
        f"gap from {name} to full resolution, and removes {removed} of {name}'s disagreement with full "
        "resolution's segmentation",
    ]
    for key, label, unit in (
        ("clinical_lvef_mae", "LVEF MAE", "points"),
        ("clinical_lvedv_mae", "LVEDV MAE", "ml"),
        ("clinical_mass_bias", "mass bias", "g"),
    ):
        parts.append(f"{label} {figures[key]:.1f} {unit} (full resolution {hr[key]:.1f}, {name} {low[key]:.1f})")
    return " | ".join(parts)
