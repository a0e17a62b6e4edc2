"""The k-space degradation: what a scanner measures when it acquires 1/s of the matrix.

A scan with a third of the matrix measures the central third of k-space; the scanner shows the
inverse FFT's magnitude. Here, for an HR slice cropped to a multiple of s (``H = s*h``, ``W = s*w``):

- keep the central ``h x w`` of its centred 2D spectrum (DC at ``H//2`` before, ``h//2`` after),
- optionally weight it with a separable window (Hamming or Tukey, as scanners apply),
- inverse FFT, times ``h*w / (H*W)`` so the mean intensity is kept,
- optionally add complex Gaussian noise (the magnitude is then Rician),
- take the magnitude.

LR sample ``(i, j)`` then sits at HR pixel ``(s*i, s*j)``: a band-limited HR image is reproduced
exactly there, the same alignment as decimation. The scanner's own interpolation of such a scan,
zero-filling, pads the LR spectrum back to ``H x W``: :func:`zero_fill_np` is that baseline.

NumPy functions are the reference; the TensorFlow op (``tf.signal``) degrades in tf.data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # TensorFlow is imported where an op runs: reading metadata needs none
    import tensorflow as tf

WINDOWS = ("none", "hamming", "tukey")


def crop_to_multiple(hr, scale: int):
    """The top-left ``s*floor(H/s) x s*floor(W/s)`` of an image ``[H, W, ...]`` (NumPy or TF)."""
    if isinstance(hr, np.ndarray):
        height, width = hr.shape[:2]
    else:
        import tensorflow as tf

        shape = tf.shape(hr)
        height, width = shape[0], shape[1]
    return hr[: height - height % scale, : width - width % scale]


def window_np(n: int, kind: str = "none", tukey_alpha: float = 0.5) -> np.ndarray:
    """A length-``n`` window centred on index ``n // 2`` (the DC of a centred spectrum), peak 1."""
    k = np.arange(n) - n // 2
    if kind == "none" or n < 2:
        return np.ones(n)
    x = k / (n / 2)  # -1 .. 1 across the kept band
    if kind == "hamming":
        return 0.54 + 0.46 * np.cos(np.pi * x)
    if kind == "tukey":
        if tukey_alpha <= 0:
            return np.ones(n)
        edge = 1 - tukey_alpha
        out = np.ones(n)
        taper = np.abs(x) > edge
        out[taper] = 0.5 * (1 + np.cos(np.pi * (np.abs(x[taper]) - edge) / tukey_alpha))
        return out
    raise ValueError(f"unknown k-space window {kind!r}, expected one of {', '.join(WINDOWS)}")


def _window_tf(n, kind: str, tukey_alpha: float) -> tf.Tensor:
    """TF twin of :func:`window_np` for a dynamic length ``n`` (float32)."""
    import tensorflow as tf

    k = tf.cast(tf.range(n) - n // 2, tf.float32)
    if kind == "none":
        return tf.ones([n], tf.float32)
    x = k / (tf.cast(n, tf.float32) / 2.0)
    if kind == "hamming":
        return 0.54 + 0.46 * tf.cos(np.pi * x)
    if kind == "tukey":
        if tukey_alpha <= 0:
            return tf.ones([n], tf.float32)
        edge = 1.0 - tukey_alpha
        taper = 0.5 * (1.0 + tf.cos(np.pi * (tf.abs(x) - edge) / tukey_alpha))
        return tf.where(tf.abs(x) > edge, taper, tf.ones_like(x))
    raise ValueError(f"unknown k-space window {kind!r}, expected one of {', '.join(WINDOWS)}")


def kspace_lr_np(
    hr: np.ndarray,
    scale: int,
    window: str = "none",
    tukey_alpha: float = 0.5,
    sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """NumPy reference: a 2D HR slice -> its ``floor(H/s) x floor(W/s)`` k-space LR image (float32)."""
    hr = crop_to_multiple(np.asarray(hr, dtype=np.float64), scale)
    height, width = hr.shape
    return _central_np(hr, height // scale, width // scale, window, tukey_alpha, sigma, rng)


def _central_np(hr, h: int, w: int, window: str, tukey_alpha: float, sigma: float, rng) -> np.ndarray:
    """The ``h x w`` magnitude image of the central ``h x w`` of ``hr``'s centred spectrum (windowed, mean
    intensity kept, complex noise of ``sigma`` added before the magnitude)."""
    height, width = hr.shape
    spectrum = np.fft.fftshift(np.fft.fft2(hr))
    r0, c0 = height // 2 - h // 2, width // 2 - w // 2
    block = spectrum[r0 : r0 + h, c0 : c0 + w]
    block = block * np.outer(window_np(h, window, tukey_alpha), window_np(w, window, tukey_alpha))
    lr = np.fft.ifft2(np.fft.ifftshift(block)) * (h * w) / (height * width)
    if sigma > 0:
        rng = rng or np.random.default_rng()
        lr = lr + sigma * (rng.standard_normal(lr.shape) + 1j * rng.standard_normal(lr.shape))
    return np.abs(lr).astype(np.float32)


def zero_fill_np(lr: np.ndarray, scale: int, clip: bool = True) -> np.ndarray:
    """The scanner's interpolation: the LR spectrum zero-padded to ``s*h x s*w``, inverse FFT, magnitude."""
    h, w = np.shape(lr)
    return _zero_fill_to(lr, scale * h, scale * w, clip)


def _zero_fill_to(lr: np.ndarray, height: int, width: int, clip: bool) -> np.ndarray:
    lr = np.asarray(lr, dtype=np.float64)
    h, w = lr.shape
    padded = np.zeros((height, width), np.complex128)
    r0, c0 = height // 2 - h // 2, width // 2 - w // 2
    padded[r0 : r0 + h, c0 : c0 + w] = np.fft.fftshift(np.fft.fft2(lr))
    out = np.abs(np.fft.ifft2(np.fft.ifftshift(padded))) * (height * width) / (h * w)
    out = out.astype(np.float32)
    return np.clip(out, 0.0, 1.0) if clip else out


def acquired_np(
    hr: np.ndarray,
    factor: float,
    window: str = "none",
    tukey_alpha: float = 0.5,
    sigma: float = 0.0,
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """What the scanner shows on ``hr``'s own ``H x W`` grid for an acquisition of the central
    ``round(H/f) x round(W/f)`` of the spectrum, for any real ``f >= 1``: that LR image zero-filled back to
    ``H x W`` (in [0, 1]). For an integer ``f`` dividing ``H`` and ``W`` it is
    ``zero_fill_np(kspace_lr_np(hr, f), f)``: the ladder of milder acquisitions a model is placed on."""
    if not factor >= 1:
        raise ValueError(f"an acquisition factor is at least 1, got {factor}")
    hr = np.asarray(hr, dtype=np.float64)
    height, width = hr.shape
    h, w = max(1, round(height / factor)), max(1, round(width / factor))
    return _zero_fill_to(_central_np(hr, h, w, window, tukey_alpha, sigma, rng), height, width, clip=True)


def kspace_lr(
    hr: tf.Tensor,
    scale: int,
    window: str = "none",
    tukey_alpha: float = 0.5,
    noise: tuple[float, float] = (0.0, 0.0),
) -> tuple[tf.Tensor, tf.Tensor]:
    """TF op for one slice ``[H, W, 1]``: ``(lr [h, w, 1], hr cropped to [s*h, s*w, 1])``.

    ``noise = (lo, hi)``: complex Gaussian noise of a sigma drawn uniformly in [lo, hi] per image
    (intensities on [0, 1]), added before the magnitude; ``(0, 0)`` adds none.
    """
    import tensorflow as tf

    hr = crop_to_multiple(tf.convert_to_tensor(hr, tf.float32), scale)
    shape = tf.shape(hr)
    height, width = shape[0], shape[1]
    h, w = height // scale, width // scale
    spectrum = tf.signal.fftshift(tf.signal.fft2d(tf.complex(hr[:, :, 0], 0.0)))
    r0, c0 = height // 2 - h // 2, width // 2 - w // 2
    block = spectrum[r0 : r0 + h, c0 : c0 + w]
    if window != "none":
        weights = _window_tf(h, window, tukey_alpha)[:, None] * _window_tf(w, window, tukey_alpha)[None, :]
        block = block * tf.complex(weights, 0.0)
    factor = tf.cast(h * w, tf.float32) / tf.cast(height * width, tf.float32)
    lr = tf.signal.ifft2d(tf.signal.ifftshift(block)) * tf.complex(factor, 0.0)
    lo, hi = float(noise[0]), float(noise[1])
    if hi > 0:
        sigma = tf.random.uniform([], lo, hi) if hi > lo else tf.constant(hi)
        real = tf.random.normal(tf.shape(lr, out_type=tf.int32), stddev=sigma)
        imag = tf.random.normal(tf.shape(lr, out_type=tf.int32), stddev=sigma)
        lr = lr + tf.complex(real, imag)
    return tf.abs(lr)[:, :, None], hr
