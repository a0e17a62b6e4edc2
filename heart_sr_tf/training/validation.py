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


class CineValidator(Validator):
    """Held-out whole cines (every frame of each slice), degraded once; scored per frame, then averaged, next to
    the degradation's baselines on the same frames. A 3D model along frames sees, for each frame, the ``depth``
    frames centred on it (the depth it trained on, wrapping around the cycle) and gives that frame; a 2D model
    sees the frames one by one."""

    def __init__(self, cines, degradation: Degradation, depth: int, batch_size: int = 8):
        from heart_sr_tf.data.cine import degraded_cines

        self.cines = degraded_cines(cines, degradation)
        if not self.cines:
            raise DataError("data.cine_validation", "no validation cines: a temporal model needs held-out cines")
        self.factors, self.batch_size, self.depth = degradation.factors, batch_size, depth
        self.hr = [hr[:, :, t, None] for _, _, hr in self.cines for t in range(hr.shape[2])]  # [H, W, 1] each
        self.baselines = {}
        per_frame = [
            degradation.baseline_images(lr[:, :, t], hr.shape[:2])
            for _, lr, hr in self.cines
            for t in range(hr.shape[2])
        ]
        for name in degradation.baselines:
            self.baselines[name] = self._score([images[name][..., None] for images in per_frame])

    def predict(self, generator) -> list[np.ndarray]:
        return [frame for _, lr, hr in self.cines for frame in self._cine(generator, lr, hr.shape)]

    def _cine(self, generator, lr: np.ndarray, shape) -> np.ndarray:
        """``[T, H, W, 1]`` in [0, 1] for one slice's cine ``lr [h, w, T]``."""
        from heart_sr_tf.data.cine import frame_windows

        height, width = shape[:2]
        volumetric = len(generator.inputs[0].shape) == 5
        inputs = frame_windows(lr, self.depth)[..., None] if volumetric else np.moveaxis(lr, 2, 0)[..., None]
        outs = [
            generator(tf.constant(inputs[i : i + self.batch_size]), training=False).numpy()
            for i in range(0, len(inputs), self.batch_size)
        ]
        out = np.concatenate(outs).astype(np.float32)
        out = out[:, :, :, self.depth // 2] if volumetric else out  # each window's centre frame
        return np.clip(out[:, :height, :width], 0.0, 1.0)

    def triplet(self, generator, index: int = 0) -> np.ndarray:
        """``[1, H, 3W, 1]``: blocky LR | SR | HR of the first cine's middle frame."""
        _, lr, hr = self.cines[0]
        t = hr.shape[2] // 2
        sr = self._cine(generator, lr, hr.shape)[t]
        blocky = blocky_np(lr[:, :, t, None], self.factors, hr.shape[:2])
        return np.concatenate([blocky, sr, hr[:, :, t, None]], axis=1)[None]
