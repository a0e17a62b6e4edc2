"""Image-quality metrics on [0, 1] images with data range 1, per image (then averaged by the caller).

Every reported number, in evaluation and in the validation during training, comes from these
scikit-image functions.

- NRMSE: scikit-image ``normalized_root_mse(..., normalization="euclidean")``.
- PSNR: ``10 log10(1 / MSE)``.
- SSIM (7x7): scikit-image's default uniform 7x7 window, sample covariance, K1 0.01, K2 0.03.
- SSIM (11x11 Gaussian, sigma 1.5): as ``tf.image.ssim``.
"""

from __future__ import annotations

import numpy as np
from skimage.metrics import normalized_root_mse, peak_signal_noise_ratio, structural_similarity

DATA_RANGE = 1.0


def psnr(prediction: np.ndarray, target: np.ndarray) -> float:
    """PSNR (dB) of one 2D image pair in [0, 1], data range 1."""
    return float(
        peak_signal_noise_ratio(
            np.asarray(target, np.float64), np.asarray(prediction, np.float64), data_range=DATA_RANGE
        )
    )


def image_metrics(prediction: np.ndarray, target: np.ndarray) -> dict[str, float]:
    """All reported metrics for one 2D image pair in [0, 1]."""
    p = np.asarray(prediction, np.float64)
    t = np.asarray(target, np.float64)
    return {
        "psnr": psnr(p, t),
        "ssim": float(structural_similarity(t, p, data_range=DATA_RANGE)),
        "ssim_gauss": float(
            structural_similarity(
                t, p, data_range=DATA_RANGE, gaussian_weights=True, sigma=1.5, use_sample_covariance=False
            )
        ),
        "nrmse": float(normalized_root_mse(t, p, normalization="euclidean")),
    }


def gain(model: dict[str, float], baseline: dict[str, float]) -> tuple[float, float]:
    """The model's PSNR (dB) and SSIM minus a baseline's, on the same slices."""
    return model["psnr"] - baseline["psnr"], model["ssim"] - baseline["ssim"]


def ahead(model: dict[str, float], baseline: dict[str, float]) -> bool:
    """Whether the model is ahead of ``baseline`` in PSNR and SSIM by gains :func:`gain_text` shows as positive
    (0.01 dB, 0.0001 SSIM): a model 0.004 dB ahead was called ahead, next to "+0.00 dB PSNR"."""
    dp, ds = gain(model, baseline)
    return round(dp, 2) > 0 and round(ds, 4) > 0


def gain_text(model: dict[str, float], baseline: dict[str, float], name: str) -> str:
    """``model - NAME: +x.xx dB PSNR, +y.yyyy SSIM``: how every command states a gain over a baseline."""
    dp, ds = gain(model, baseline)
    return f"model - {name}: {dp:+.2f} dB PSNR, {ds:+.4f} SSIM"
