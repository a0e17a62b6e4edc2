"""Geometric self-ensemble of a through-plane generator: the average of its outputs over the flips that commute
with the thick-slice degradation (Lim et al., EDSR+, CVPR-W 2017, restricted to the exact symmetries).

Flipping the columns (the in-plane axis) commutes with the degradation outright. Flipping the rows (the slice
axis) does too, up to a shift: the box of t rows sits at offsets ``-floor((t-1)/2) .. floor(t/2)`` around row
``g*r``, half a row below it when t is even, so on the flipped grid the LR rows land ``shift = 1 - t % 2`` rows
off the HR rows of the original, and the flipped output, flipped back, is read ``g - 1 - shift`` rows further
on. Its last ``g - 1 - shift`` rows lie beyond it and take the column pair alone. Serialisable layers, so the
ensemble can be part of an export (``python cli.py export --self-ensemble``); four times the work.
"""

from __future__ import annotations

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class Flip(keras.layers.Layer):
    """Reverse ``axes`` of a ``[B, H, W, C]`` tensor (1: rows, 2: columns), one at a time (OpenVINO converts
    only single-axis reversals)."""

    def __init__(self, axes=(1,), **kwargs):
        super().__init__(**kwargs)
        self.axes = tuple(int(a) for a in axes)

    def call(self, x):
        for axis in self.axes:
            x = ops.flip(x, axis=axis)
        return x

    def compute_output_shape(self, shape):
        return shape

    def get_config(self):
        return {**super().get_config(), "axes": list(self.axes)}


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class FlipEnsembleMerge(keras.layers.Layer):
    """``[G(x), G(flip_cols x), G(flip_rows x), G(flip_both x)]`` -> their average on the grid of ``G(x)``."""

    def __init__(self, g: int, thickness: int, **kwargs):
        super().__init__(**kwargs)
        self.g, self.thickness = int(g), int(thickness)
        self.offset = self.g - 1 - (1 - self.thickness % 2)  # flipped-back row y + offset is original row y

    def call(self, outputs):
        same, cols, rows, both = outputs
        pair = (same + ops.flip(cols, axis=2)) / 2
        flipped = ops.flip((rows + ops.flip(both, axis=2)) / 2, axis=1)[:, self.offset :]
        covered = ops.shape(flipped)[1]
        return ops.concatenate([(pair[:, :covered] + flipped) / 2, pair[:, covered:]], axis=1)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "g": self.g, "thickness": self.thickness}


def with_flip_ensemble(generator: keras.Model, g: int, thickness: int) -> keras.Model:
    """The through-plane ``generator`` averaged over its four exact flips (same input and output names)."""
    lr = keras.Input(generator.inputs[0].shape[1:], name="lr_image")
    outputs = [generator(lr)]
    for axes, name in (((2,), "cols"), ((1,), "rows"), ((1, 2), "both")):
        outputs.append(generator(Flip(axes, name=f"flip_{name}")(lr)))
    out = FlipEnsembleMerge(g, thickness, name="flip_ensemble", dtype="float32")(outputs)
    return keras.Model(lr, out, name=f"{generator.name}_ensemble")
