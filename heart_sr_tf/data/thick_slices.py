"""The through-plane degradation: thick slices g rows apart, made from in-plane rows.

A short-axis stack samples the slice axis coarsely (5-10 mm against 0.7-2 mm in-plane), and each slice
averages the anatomy over its thickness. In-plane images hold that anatomy finely along every direction, so
a thick-slice stack is simulated along the rows of an in-plane slice (SMORE, Zhao et al., IEEE TMI 2021):

    LR[r, :] = mean(HR[g*r + k, :] for k in -floor((t-1)/2) .. floor(t/2)),   r = 0 .. ceil(H/g) - 1

a box slice profile of ``t`` rows centred on row ``g*r``, rows outside the image replicating the edge.
LR row r sits at HR row g*r (the in-plane alignment convention). ``t = g`` models contiguous slices,
``t < g`` gaps between them. The columns are untouched.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # TensorFlow is imported where an op runs: reading metadata needs none
    import tensorflow as tf


def profile_offsets(thickness: int) -> np.ndarray:
    """The row offsets a slice of ``thickness`` rows averages: ``-floor((t-1)/2) .. floor(t/2)``."""
    return np.arange(-((thickness - 1) // 2), thickness // 2 + 1)


def source_rows(height: int, factor: int, thickness: int) -> np.ndarray:
    """``(ceil(H/g), t)`` HR row indices averaged into each LR row, edge-replicated."""
    centres = np.arange(-(-height // factor)) * factor
    return np.clip(centres[:, None] + profile_offsets(thickness)[None, :], 0, height - 1)


def thick_slices_np(hr: np.ndarray, factor: int, thickness: int) -> np.ndarray:
    """NumPy reference on ``[H, W, ...]``: the ``[ceil(H/g), W, ...]`` thick-slice grid (float64 means)."""
    hr = np.asarray(hr, dtype=np.float64)
    rows = source_rows(hr.shape[0], factor, thickness)
    return np.stack([hr[r].mean(axis=0) for r in rows]).astype(np.float32)


def thick_slices(hr: tf.Tensor, factor: int, thickness: int) -> tf.Tensor:
    """TF op on one image ``[H, W, C]`` (any H, W): the ``[ceil(H/g), W, C]`` thick-slice grid."""
    import tensorflow as tf

    height = tf.shape(hr)[0]
    centres = tf.range(0, height, factor)
    offsets = tf.constant(profile_offsets(thickness), tf.int32)
    rows = tf.clip_by_value(centres[:, None] + offsets[None, :], 0, height - 1)  # [R, t]
    return tf.reduce_mean(tf.gather(tf.cast(hr, tf.float32), rows, axis=0), axis=1)
