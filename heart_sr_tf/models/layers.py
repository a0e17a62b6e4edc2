"""Serialisable custom layers (no Lambda anywhere in an exported model)."""

from __future__ import annotations

import keras
import numpy as np
import tensorflow as tf

from heart_sr_tf.data.interpolation import KEYS_A, phase_weights


def in_plane(fn, x):
    """Apply a 2D image op to ``[B, H, W, C]``, or to every depth slice of ``[B, H, W, D, C]``."""
    if x.shape.rank == 4:
        return fn(x)
    shape = tf.shape(x)
    flat = tf.reshape(tf.transpose(x, [0, 3, 1, 2, 4]), [-1, shape[1], shape[2], shape[4]])
    out = fn(flat)
    out_shape = tf.shape(out)
    out = tf.reshape(out, [shape[0], shape[3], out_shape[1], out_shape[2], out_shape[3]])
    return tf.transpose(out, [0, 2, 3, 1, 4])


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: ``[B, h, w, C*s*s] -> [B, s*h, s*w, C]`` (``tf.nn.depth_to_space``).

    On ``[B, h, w, D, C*s*s]`` volumes only the in-plane axes are upsampled.
    """

    def __init__(self, scale: int, **kwargs):
        super().__init__(**kwargs)
        self.scale = int(scale)

    def call(self, x):
        return in_plane(lambda y: tf.nn.depth_to_space(y, self.scale), x)

    def compute_output_shape(self, shape):
        up = [None if d is None else d * self.scale for d in shape[1:3]]
        return (shape[0], *up, *shape[3:-1], shape[-1] // (self.scale * self.scale))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class AlignedBicubicUpsample(keras.layers.Layer):
    """Bicubic upsampling x s of a one-channel LR grid whose sample ``(i, j)`` sits at HR pixel ``(s*i, s*j)``.

    The same interpolation as :func:`heart_sr_tf.data.interpolation.aligned_bicubic` (edge
    replication, Keys kernel), as a fixed 4x4 convolution into ``s*s`` phases and a pixel shuffle.
    The generator adds its learned residual to this.
    """

    def __init__(self, scale: int, a: float = KEYS_A, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.scale, self.a = int(scale), float(a)
        w = phase_weights(self.scale, self.a)  # (s, 4)
        kernel = np.einsum("pu,qv->uvpq", w, w).reshape(4, 4, 1, self.scale * self.scale)
        self._kernel = tf.constant(kernel, dtype=tf.float32)

    def call(self, x):
        return in_plane(self._upsample, x)

    def _upsample(self, x):
        x = tf.cast(x, tf.float32)
        x = tf.concat([x[:, :1], x, x[:, -1:], x[:, -1:]], axis=1)
        x = tf.concat([x[:, :, :1], x, x[:, :, -1:], x[:, :, -1:]], axis=2)
        phases = tf.nn.conv2d(x, self._kernel, strides=1, padding="VALID")
        return tf.cast(tf.nn.depth_to_space(phases, self.scale), self.compute_dtype)

    def compute_output_shape(self, shape):
        up = [None if d is None else d * self.scale for d in shape[1:3]]
        return (shape[0], *up, *shape[3:-1], 1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "a": self.a}
