"""The paper's 3x3 block degradation (section 2.4), in NumPy (reference) and TensorFlow (tf.data).

The low-resolution grid keeps the first element of every ``s x s`` block along both array
axes: ``LR[i, j] = HR[s*i, s*j]``. In the NIfTI display convention the paper used, that is the
block's lower-left corner. A 256x256 slice gives an 86x86 grid. The paper's same-size "blocky"
image is that grid repeated over each block and cut back to the HR size.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

DEFAULT_SCALE = 3


def lr_size(hr_size: int, scale: int = DEFAULT_SCALE) -> int:
    """Length of the LR grid along an axis of ``hr_size`` pixels: ceil(hr_size / scale)."""
    return -(-hr_size // scale)


def lr_grid_np(hr: np.ndarray, scale: int = DEFAULT_SCALE) -> np.ndarray:
    """NumPy reference: ``hr[::s, ::s]`` over the first two axes."""
    return np.asarray(hr)[::scale, ::scale]


def blocky_np(lr: np.ndarray, scale: int, hr_shape: tuple[int, int]) -> np.ndarray:
    """NumPy reference: repeat each LR sample over its block, cut to ``hr_shape``."""
    out = np.repeat(np.repeat(lr, scale, axis=0), scale, axis=1)
    return out[: hr_shape[0], : hr_shape[1]]


def lr_grid(hr: tf.Tensor, scale: int = DEFAULT_SCALE) -> tf.Tensor:
    """TF op for images ``[..., H, W, C]``: the LR grid ``[..., ceil(H/s), ceil(W/s), C]``."""
    return hr[..., ::scale, ::scale, :]


def blocky(lr: tf.Tensor, scale: int, hr_height, hr_width) -> tf.Tensor:
    """TF op for images ``[..., h, w, C]``: each sample repeated over its block, cut to the HR size."""
    out = tf.repeat(tf.repeat(lr, scale, axis=-3), scale, axis=-2)
    return out[..., :hr_height, :hr_width, :]
