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


def factors_of(scale) -> tuple[int, int]:
    """``s`` or ``(rows, cols)`` as ``(rows, cols)``."""
    rows, cols = (scale, scale) if isinstance(scale, int | np.integer) else scale
    return int(rows), int(cols)


def shuffle(x: tf.Tensor, rows: int, cols: int) -> tf.Tensor:
    """``[B, h, w, rows*cols*C] -> [B, rows*h, cols*w, C]``, channel ``(dy*cols + dx)*C + c`` going to offset
    ``(dy, dx)``: ``tf.nn.depth_to_space`` when ``rows == cols``, its anisotropic generalisation otherwise."""
    if rows == cols:
        return tf.nn.depth_to_space(x, rows)
    shape = tf.shape(x)
    b, h, w = shape[0], shape[1], shape[2]
    x = tf.reshape(x, [b, h, w, rows, cols, -1])
    x = tf.transpose(x, [0, 1, 3, 2, 4, 5])
    return tf.reshape(x, [b, h * rows, w * cols, tf.shape(x)[-1]])


def _serial(rows: int, cols: int):
    return rows if rows == cols else [rows, cols]


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class PixelShuffle(keras.layers.Layer):
    """Sub-pixel upsampling: ``[B, h, w, C*s*s] -> [B, s*h, s*w, C]`` (``tf.nn.depth_to_space``), or by
    ``(rows, cols)`` along each axis, e.g. ``(g, 1)`` across slices.

    On ``[B, h, w, D, C*s*s]`` volumes only the in-plane axes are upsampled.
    """

    def __init__(self, scale, **kwargs):
        super().__init__(**kwargs)
        self.rows, self.cols = factors_of(scale)
        self.scale = _serial(self.rows, self.cols)

    def call(self, x):
        return in_plane(lambda y: shuffle(y, self.rows, self.cols), x)

    def compute_output_shape(self, shape):
        up = [None if d is None else d * f for d, f in zip(shape[1:3], (self.rows, self.cols), strict=True)]
        return (shape[0], *up, *shape[3:-1], shape[-1] // (self.rows * self.cols))

    def get_config(self):
        return {**super().get_config(), "scale": self.scale}


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class AlignedBicubicUpsample(keras.layers.Layer):
    """Bicubic upsampling x s of a one-channel LR grid whose sample ``(i, j)`` sits at HR pixel ``(s*i, s*j)``;
    with ``scale = (g, 1)`` cubic along the first axis only (the Keys kernel at offset 0 is the identity).

    The same interpolation as :func:`heart_sr_tf.data.interpolation.aligned_bicubic` (edge
    replication, Keys kernel), as a fixed 4x4 convolution into ``s*s`` phases and a pixel shuffle.
    The generator adds its learned residual to this.
    """

    def __init__(self, scale, a: float = KEYS_A, **kwargs):
        kwargs["trainable"] = False
        super().__init__(**kwargs)
        self.rows, self.cols = factors_of(scale)
        self.scale, self.a = _serial(self.rows, self.cols), float(a)
        wy, wx = phase_weights(self.rows, self.a), phase_weights(self.cols, self.a)  # (s, 4) each
        kernel = np.einsum("pu,qv->uvpq", wy, wx).reshape(4, 4, 1, self.rows * self.cols)
        self._kernel = tf.constant(kernel, dtype=tf.float32)

    def call(self, x):
        return in_plane(self._upsample, x)

    def _upsample(self, x):
        x = tf.cast(x, tf.float32)
        x = tf.concat([x[:, :1], x, x[:, -1:], x[:, -1:]], axis=1)
        x = tf.concat([x[:, :, :1], x, x[:, :, -1:], x[:, :, -1:]], axis=2)
        phases = tf.nn.conv2d(x, self._kernel, strides=1, padding="VALID")
        return tf.cast(shuffle(phases, self.rows, self.cols), self.compute_dtype)

    def compute_output_shape(self, shape):
        up = [None if d is None else d * f for d, f in zip(shape[1:3], (self.rows, self.cols), strict=True)]
        return (shape[0], *up, *shape[3:-1], 1)

    def get_config(self):
        return {**super().get_config(), "scale": self.scale, "a": self.a}


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class BilinearUpsample2x(keras.layers.Layer):
    """Keras' ``UpSampling2D(interpolation="bilinear")`` (half-pixel centres, no antialiasing), written so that it
    also traces with unknown height and width, as an export's ``[None, None, None, 1]`` signature needs."""

    def call(self, x):
        shape = tf.shape(x)
        out = tf.image.resize(x, [2 * shape[1], 2 * shape[2]], method="bilinear")
        return tf.cast(out, x.dtype)


def image_output(residual, lr, scale, bicubic_skip: bool):
    """The generators' common tail: the residual plus aligned bicubic of the LR input (with ``bicubic_skip``),
    as the float32 ``sr_image`` output. The skip and the sum stay float32 under mixed precision, so the image
    itself is never rounded to 8 mantissa bits."""
    out = residual
    if bicubic_skip:
        bicubic = AlignedBicubicUpsample(scale, name="bicubic", dtype="float32")(lr)
        out = keras.layers.Add(name="bicubic_add", dtype="float32")([residual, bicubic])
    return keras.layers.Activation("linear", dtype="float32", name="sr_image")(out)
