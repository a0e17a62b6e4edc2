"""Image-quality metrics on [0, 1] images with data range 1, per image (then averaged by the caller).

NumPy/scikit-image versions are the reference for reported numbers; the TF versions serve
validation during training and match them to 1e-4.

- NRMSE: scikit-image ``normalized_root_mse(..., normalization="euclidean")``.
- PSNR: ``10 log10(1 / MSE)``.
- SSIM (7x7): scikit-image's default uniform 7x7 window, sample covariance, K1 0.01, K2 0.03.
- SSIM (11x11 Gaussian, sigma 1.5): as ``tf.image.ssim``.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 1.0


def image_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All reported metrics for one 2D image pair in [0, 1]."""
    p = np.asarray(prediction, np.float64)
    t = np.asarray(target, np.float64)
    return {
        "psnr": float(peak_signal_noise_ratio(t, p, data_range=DATA_RANGE)),
        "ssim": float(structural_similarity(t, p, data_range=DATA_RANGE)),
        "ssim_gauss": float(
            structural_similarity(
                t, p, data_range=DATA_RANGE, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
        ),
        "nrmse": float(normalized_root_mse(t, p, normalization="euclidean")),
    }


def psnr_tf(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per-image PSNR of ``[B, H, W, 1]`` batches, data range 1."""
    mse = tf.reduce_mean(tf.square(tf.cast(prediction, tf.float32) - tf.cast(target, tf.float32)), axis=[1, 2, 3])
    return 10.0 * tf.math.log(1.0 / tf.maximum(mse, 1e-12)) / tf.math.log(10.0)


def ssim7_tf(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per-image SSIM with scikit-image's defaults (uniform 7x7 window, sample covariance), data range 1."""
    x = tf.cast(target, tf.float32)
    y = tf.cast(prediction, tf.float32)
    n = 49.0
    cov_norm = n / (n - 1.0)

    def mean(z):
        return tf.nn.avg_pool2d(z, 7, 1, "VALID")

    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * DATA_RANGE) ** 2, (0.03 * DATA_RANGE) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return tf.reduce_mean(s, axis=[1, 2, 3])


def ssim_gauss_tf(prediction: tf.Tensor, target: tf.Tensor) -> tf.Tensor:
    """Per-image SSIM with an 11x11 Gaussian window (sigma 1.5), data range 1."""
    return tf.image.ssim(tf.cast(target, tf.float32), tf.cast(prediction, tf.float32), max_val=DATA_RANGE)
