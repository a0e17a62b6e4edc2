"""Validation during training: a fixed set of whole validation slices, scored next to the degradation's baselines."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation, blocky_np
from heart_sr_tf.data.pipeline import eval_pairs, num_slices, slice_dataset
from heart_sr_tf.errors import DataError
from heart_sr_tf.metrics import image_metrics


class Validator:
    """The first ``count`` full validation slices (e.g. 86x86 LR -> 256x256 HR), degraded and loaded once.

    ``baselines`` holds the scores of the degradation's classical baselines on the same slices.
    """

    def __init__(self, data_dir: Path, degradation: Degradation, count: int, roi: str = "full", batch_size: int = 8):
        if num_slices(data_dir, roi, "validation") == 0:
            raise DataError(data_dir, "the validation split is empty: training needs validation patients")
        ds = eval_pairs(slice_dataset(data_dir, roi, "validation"), batch_size=1, degradation=degradation)
        pairs = list(ds.take(count))
        self.lr = np.concatenate([p[0].numpy() for p in pairs])
        self.hr = np.concatenate([p[1].numpy() for p in pairs])
        self.factors, self.batch_size = degradation.factors, batch_size
        shape = self.hr.shape[1:3]
        images = [degradation.baseline_images(x[..., 0], shape) for x in self.lr]  # each slice's baselines, once
        self.baselines = {
            name: self._score(np.stack([image[name][..., None] for image in images])) for name in degradation.baselines
        }

    def predict(self, generator) -> np.ndarray:
        out = [self._run(generator, self.lr[i : i + self.batch_size]) for i in range(0, len(self.lr), self.batch_size)]
        return np.clip(np.concatenate(out), 0.0, 1.0)

    def _run(self, generator, lr: np.ndarray) -> np.ndarray:
        """A 3D generator sees each slice as a volume of depth 1."""
        height, width = self.hr.shape[1:3]
        volumetric = len(generator.inputs[0].shape) == 5
        x = tf.constant(lr[:, :, :, None] if volumetric else lr)
        out = generator(x, training=False).numpy()
        return (out[:, :, :, 0] if volumetric else out)[:, :height, :width]

    def _score(self, prediction: np.ndarray) -> dict[str, float]:
        """Per-slice scikit-image metrics (PSNR, SSIM 7x7, NRMSE), averaged."""
        scores = [image_metrics(p[..., 0], t[..., 0]) for p, t in zip(prediction, self.hr, strict=False)]
        return {k: float(np.mean([s[k] for s in scores])) for k in ("psnr", "ssim", "nrmse")}

    def __len__(self) -> int:
        return len(self.hr)

    def evaluate(self, generator) -> dict[str, float]:
        return self._score(self.predict(generator))

    def triplet(self, generator, index: int = 0) -> np.ndarray:
        """``[1, H, 3W, 1]`` image: blocky LR | SR | HR, for TensorBoard."""
        hr = self.hr[index]
        lr = blocky_np(self.lr[index], self.factors, hr.shape[:2])
        sr = self.predict_one(generator, index)
        return np.concatenate([lr, sr, hr], axis=1)[None]

    def predict_one(self, generator, index: int) -> np.ndarray:
        return np.clip(self._run(generator, self.lr[index : index + 1])[0], 0.0, 1.0)
