"""Data consistency: project a super-resolved image so that degrading it gives back its LR input exactly.

- ``kspace``: the output's central ``h x w`` spectrum is replaced by the input's (scaled by ``H*W / (h*w)``),
  and the real part is kept. For odd LR sides (85x85 from 255x255) the result degrades back to the
  input to float precision. An even LR side has an unpaired Nyquist row or column, whose share the real
  part halves: there the projection is exact except for that one frequency.
- ``decimation``: ``out[s*i, s*j] = in[i, j]``.

A serialisable layer, so it can be part of an export (``python cli.py export --data-consistency``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from heart_sr_tf.data.degradation import KINDS


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class DataConsistency(keras.layers.Layer):
    """``[sr [B, H, W, 1], lr [B, h, w, 1]] -> sr'`` with ``degrade(sr') == lr``; float32 throughout."""

    def __init__(self, kind: str, scale: int, **kwargs):
        kwargs.setdefault("dtype", "float32")
        super().__init__(**kwargs)
        if kind not in KINDS:
            raise ValueError(f"unknown degradation {kind!r}, expected one of {', '.join(KINDS)}")
        if kind == "through_plane":
            raise ValueError("data consistency is for the in-plane degradations, not through_plane")
        self.kind, self.scale = kind, int(scale)

    def call(self, inputs):
        sr, lr = (tf.cast(x, tf.float32) for x in inputs)
        if self.kind == "kspace":
            return self._kspace(sr, lr)
        return self._decimation(sr, lr)

    def _decimation(self, sr, lr):
        s = self.scale
        shape = tf.shape(sr)
        zeros = tf.zeros_like(lr)
        placed = tf.nn.depth_to_space(tf.concat([lr] + [zeros] * (s * s - 1), axis=-1), s)
        mask = tf.nn.depth_to_space(tf.concat([tf.ones_like(lr)] + [zeros] * (s * s - 1), axis=-1), s)
        placed, mask = placed[:, : shape[1], : shape[2]], mask[:, : shape[1], : shape[2]]
        return sr * (1.0 - mask) + placed

    def _kspace(self, sr, lr):
        shape, small = tf.shape(sr), tf.shape(lr)
        height, width, h, w = shape[1], shape[2], small[1], small[2]
        r0, c0 = height // 2 - h // 2, width // 2 - w // 2
        paddings = [[0, 0], [r0, height - r0 - h], [c0, width - c0 - w]]
        sr_spec = tf.signal.fftshift(tf.signal.fft2d(tf.complex(sr[..., 0], 0.0)), axes=(1, 2))
        factor = tf.cast(height * width, tf.float32) / tf.cast(h * w, tf.float32)
        lr_spec = tf.signal.fftshift(tf.signal.fft2d(tf.complex(lr[..., 0], 0.0)), axes=(1, 2))
        lr_spec = lr_spec * tf.complex(factor, 0.0)
        mask = tf.pad(tf.ones_like(lr[..., 0]), paddings)
        real = tf.pad(tf.math.real(lr_spec), paddings) + tf.math.real(sr_spec) * (1.0 - mask)
        imag = tf.pad(tf.math.imag(lr_spec), paddings) + tf.math.imag(sr_spec) * (1.0 - mask)
        out = tf.signal.ifft2d(tf.signal.ifftshift(tf.complex(real, imag), axes=(1, 2)))
        return tf.math.real(out)[..., None]

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "kind": self.kind, "scale": self.scale}


def with_consistency(generator: keras.Model, kind: str, scale: int) -> keras.Model:
    """The generator followed by :class:`DataConsistency` against its own input (same input, same output name)."""
    lr = keras.Input(generator.inputs[0].shape[1:], name="lr_image")
    out = DataConsistency(kind, scale, name="data_consistency")([generator(lr), lr])
    return keras.Model(lr, out, name=f"{generator.name}_dc")
