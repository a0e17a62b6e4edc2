"""Geometric self-ensemble of an in-plane generator: the average of its outputs over the eight symmetries of the
square (transpose, row flip, column flip), Lim et al.'s EDSR+ (CVPR-W 2017), kept aligned to our LR grid.

Both in-plane degradations put LR sample ``(i, j)`` on HR pixel ``(s*i, s*j)``. Transposing keeps that. Flipping
an axis does not: on the flipped grid, LR sample ``i`` lands ``s - 1`` HR pixels off, so a flipped pass, flipped
back, is read ``s - 1`` pixels further on along that axis. The last ``s - 1`` rows (columns) lie beyond that pass
and take the average of the passes that reach them, the untransformed one always among them. Serialisable layers,
so the ensemble is part of an export (``python cli.py export --self-ensemble``); eight times the work.
"""

from __future__ import annotations

import itertools

import keras
from keras import ops

from heart_sr_tf.models.through_plane_ensemble import Flip

TRANSFORMS = tuple(itertools.product((False, True), repeat=3))  # (transpose, flip rows, flip columns)


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class Transpose(keras.layers.Layer):
    """``[B, H, W, C] -> [B, W, H, C]``."""

    def call(self, x):
        return ops.transpose(x, (0, 2, 1, 3))

    def compute_output_shape(self, shape):
        return (shape[0], shape[2], shape[1], shape[3])


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class DihedralMerge(keras.layers.Layer):
    """The eight passes' outputs, in the order of ``TRANSFORMS``, each clipped to [0, 1] (as a lone export's output
    is, so that averaging an export's eight outputs gives this same model: ``evaluate --self-ensemble``), taken
    back to the grid of the first and averaged where it reaches."""

    def __init__(self, factor: int, **kwargs):
        super().__init__(**kwargs)
        self.factor = int(factor)

    def call(self, outputs):
        total, count = 0.0, 0.0
        for (transpose, rows, cols), out in zip(TRANSFORMS, outputs, strict=True):
            out = ops.clip(ops.cast(out, "float32"), 0.0, 1.0)
            valid = ops.ones_like(out[:1])
            for axis, flipped in ((1, rows), (2, cols)):
                if flipped:
                    out, valid = self._back(out, axis), self._back(valid, axis)
            if transpose:
                out, valid = ops.transpose(out, (0, 2, 1, 3)), ops.transpose(valid, (0, 2, 1, 3))
            total, count = total + out * valid, count + valid
        return total / count

    def _back(self, x, axis: int):
        """Flipped back along ``axis`` and read ``s - 1`` pixels on; zeros where the pass does not reach."""
        x = ops.flip(x, axis=axis)
        shift = self.factor - 1  # at least 1: a degradation's factor is at least 2
        inside = x[:, shift:] if axis == 1 else x[:, :, shift:]
        beyond = ops.zeros_like(x[:, :shift] if axis == 1 else x[:, :, :shift])
        return ops.concatenate([inside, beyond], axis=axis)

    def compute_output_shape(self, shapes):
        return shapes[0]

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


def with_dihedral_ensemble(generator: keras.Model, factor: int) -> keras.Model:
    """The in-plane ``generator`` averaged over its eight aligned symmetries (same input and output names)."""
    lr = keras.Input(generator.inputs[0].shape[1:], name="lr_image")
    outputs = []
    for transpose, rows, cols in TRANSFORMS:
        x = Transpose()(lr) if transpose else lr
        axes = tuple(axis for axis, flipped in ((1, rows), (2, cols)) if flipped)
        x = Flip(axes)(x) if axes else x
        outputs.append(generator(x))
    out = DihedralMerge(factor, name="dihedral_ensemble", dtype="float32")(outputs)
    return keras.Model(lr, out, name=f"{generator.name}_ensemble")
