"""ESRGAN-style generator: residual-in-residual dense blocks on the LR grid, sub-pixel upsampling x s.

Input: the LR grid ``[B, h, w, 1]`` in [0, 1], any h and w. Output: ``[B, s*h, s*w, 1]``, or with an
anisotropic ``scale = (g, 1)`` (across slices) ``[B, g*h, w, 1]``. With ``bicubic_skip`` the network learns the
residual over aligned bicubic interpolation (cubic along the first axis only for ``(g, 1)``).
"""

from __future__ import annotations

import re

import keras
import numpy as np
from keras import layers

from heart_sr_tf.models.layers import PixelShuffle, factors_of, image_output

# The only layers whose weight shapes depend on the scale: a generator for another factor can start from
# every other weight of a trained one (``--init-from`` across factors), with these re-laid by ``adapt_head``.
SCALE_DEPENDENT_LAYERS = ("conv_up",)


def adapt_head(value: np.ndarray, source: tuple[int, int], target: tuple[int, int]) -> np.ndarray:
    """``conv_up``'s kernel ``[..., r*c*F]`` or bias, trained for factors ``source = (r, c)``, re-laid for ``target``.

    Each target sub-pixel offset takes the channels of the source offset nearest in relative position (the
    pixel-shuffle layout, channel ``(dy*cols + dx)*F + f``), so the network starts close to a working one.
    ``ValueError`` between kinds (``(g, 1)`` across slices, ``(s, s)`` in-plane), which share nothing.
    """
    (rows, cols), (new_rows, new_cols) = source, target
    if (rows == cols) != (new_rows == new_cols):
        raise ValueError(f"an upsampling head for {source} does not transfer to {target}")
    features = value.shape[-1] // (rows * cols)
    pick_rows = np.minimum(np.floor(np.arange(new_rows) * rows / new_rows + 0.5).astype(int), rows - 1)
    pick_cols = np.minimum(np.floor(np.arange(new_cols) * cols / new_cols + 0.5).astype(int), cols - 1)
    v = value.reshape(*value.shape[:-1], rows, cols, features)[..., pick_rows, :, :][..., pick_cols, :]
    return v.reshape(*value.shape[:-1], new_rows * new_cols * features)


def trunk_blocks(paths) -> int:
    """The number of RRDB blocks among weight paths (``rrdb<b>_...``)."""
    found = {int(m.group(1)) for p in paths if (m := re.match(r"rrdb(\d+)_", p))}
    return max(found) + 1 if found else 0


def deepened(values: dict[str, np.ndarray], generator: keras.Model) -> tuple[dict[str, np.ndarray], int]:
    """``(values, added)``: the weights by path of a trained generator completed for ``generator``, which has
    ``added`` more RRDB blocks of the same width, so that it computes exactly what the trained one did.

    The added blocks follow the trained ones. Each keeps ``generator``'s fresh initialisation except the last
    convolution of its dense blocks, set to zero: a dense block then passes its input through and the RRDB returns
    ``(1 + residual_scale) x``. ``conv_body`` (linear) has its kernel divided by ``(1 + residual_scale)^added``,
    so its output is unchanged. Training then grows the new blocks from there (the zero-started residual of
    ``conv_last``, here one level down). ``values`` come back unchanged (``added`` 0) unless ``generator`` has
    more blocks than they hold.
    """
    have = trunk_blocks(values)
    want = trunk_blocks(w.path for w in generator.weights)
    if not have or want <= have:
        return values, 0
    scale = 1.0 + float(generator.get_layer("rrdb0_scale").scale)
    grown = dict(values)
    for w in generator.weights:
        if trunk_blocks([w.path]) > have:
            zero = re.match(r"rrdb\d+_db\d+_conv4/", w.path) is not None
            grown[w.path] = np.zeros(w.shape, np.float32) if zero else np.asarray(w.numpy())
    added = want - have
    grown["conv_body/kernel"] = values["conv_body/kernel"] / scale**added
    return grown, added


def _conv(filters: int, name: str, kernel: int = 3, **kwargs):
    return layers.Conv2D(filters, kernel, padding="same", name=name, **kwargs)


def dense_block(x, features: int, growth: int, residual_scale: float, name: str):
    """Five 3x3 convolutions, each seeing all earlier outputs; LeakyReLU 0.2; scaled residual."""
    inputs = [x]
    for i in range(4):
        h = inputs[0] if len(inputs) == 1 else layers.Concatenate(name=f"{name}_cat{i}")(inputs)
        h = _conv(growth, f"{name}_conv{i}")(h)
        inputs.append(layers.LeakyReLU(0.2, name=f"{name}_act{i}")(h))
    h = _conv(features, f"{name}_conv4")(layers.Concatenate(name=f"{name}_cat4")(inputs))
    return layers.Add(name=f"{name}_add")([x, layers.Rescaling(residual_scale, name=f"{name}_scale")(h)])


def rrdb(x, features: int, growth: int, residual_scale: float, name: str):
    """Three dense blocks inside a scaled residual."""
    h = x
    for i in range(3):
        h = dense_block(h, features, growth, residual_scale, f"{name}_db{i}")
    return layers.Add(name=f"{name}_add")([x, layers.Rescaling(residual_scale, name=f"{name}_scale")(h)])


def rrdb_generator(
    scale: int | tuple[int, int] = 3,
    blocks: int = 4,
    features: int = 32,
    growth: int = 16,
    residual_scale: float = 0.2,
    bicubic_skip: bool = True,
    name: str = "rrdb_generator",
) -> keras.Model:
    """Build the generator. ``blocks x features`` is 23 x 64 (growth 32) in ESRGAN, about 4 x 32 on a CPU."""
    lr = keras.Input((None, None, 1), name="lr_image")
    first = _conv(features, "conv_first")(lr)
    x = first
    for b in range(blocks):
        x = rrdb(x, features, growth, residual_scale, f"rrdb{b}")
    x = layers.Add(name="trunk_add")([first, _conv(features, "conv_body")(x)])
    rows, cols = factors_of(scale)
    x = _conv(features * rows * cols, "conv_up")(x)
    x = layers.LeakyReLU(0.2, name="up_act")(PixelShuffle(scale, name="pixel_shuffle")(x))
    x = layers.LeakyReLU(0.2, name="hr_act")(_conv(features, "conv_hr")(x))
    # With the bicubic skip the last convolution starts at zero: the untrained network is exactly the baseline,
    # and training can only move away from it where that lowers the loss.
    out = _conv(1, "conv_last", kernel_initializer="zeros" if bicubic_skip else "glorot_uniform")(x)
    return keras.Model(lr, image_output(out, lr, scale, bicubic_skip), name=name)
