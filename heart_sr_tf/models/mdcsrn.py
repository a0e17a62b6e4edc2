"""Multi-level densely connected super-resolution network (mDCSRN, Chen et al., MICCAI 2018), in 2D or 3D.

A first convolution to 2k features; b dense blocks of u units (BN, ELU, convolution with growth k),
each followed by a 1x1 compressor back to 2k features; the outputs of every block feed the
reconstruction ("multi-level"). Upsampling x s is in-plane only (pixel shuffle per depth slice),
added to aligned bicubic upsampling of the input. 3D works on ``[B, h, w, D, 1]`` patches where D
runs along slices or cine frames; D is never resampled and may be any size.
"""

from __future__ import annotations

import keras
import numpy as np
from keras import layers

from heart_sr_tf.models.layers import PixelShuffle, image_output


def mdcsrn_generator(
    dims: int = 2,
    scale: int = 3,
    blocks: int = 4,
    units: int = 4,
    growth: int = 16,
    bicubic_skip: bool = True,
    name: str | None = None,
) -> keras.Model:
    if dims not in (2, 3):
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    conv = layers.Conv2D if dims == 2 else layers.Conv3D
    shape = (None,) * dims + (1,)
    lr = keras.Input(shape, name="lr_image")
    x = conv(2 * growth, 3, padding="same", name="conv_first")(lr)
    levels = []
    for b in range(blocks):
        features = [x]
        for u in range(units):
            h = features[0] if len(features) == 1 else layers.Concatenate(name=f"b{b}_cat{u}")(features)
            h = layers.BatchNormalization(momentum=0.9, synchronized=True, name=f"b{b}_bn{u}")(h)
            h = layers.ELU(name=f"b{b}_elu{u}")(h)
            features.append(conv(growth, 3, padding="same", name=f"b{b}_conv{u}")(h))
        x = conv(2 * growth, 1, name=f"b{b}_compress")(layers.Concatenate(name=f"b{b}_cat")(features))
        levels.append(x)
    x = conv(2 * growth, 1, name="reconstruct")(layers.Concatenate(name="levels")(levels))
    x = conv(growth * scale * scale, 3, padding="same", name="conv_up")(x)
    x = layers.ELU(name="up_elu")(PixelShuffle(scale, name="pixel_shuffle")(x))
    # zero-initialised, so the untrained network is exactly aligned bicubic and learns the residual
    out = conv(1, 3, padding="same", kernel_initializer="zeros", name="conv_last")(x)
    return keras.Model(lr, image_output(out, lr, scale, bicubic_skip), name=name or f"mdcsrn{dims}d")


def inflate_kernel(kernel: np.ndarray, depth: int) -> np.ndarray:
    """A 2D kernel ``[kh, kw, in, out]`` as a 3D one ``[kh, kw, depth, in, out]`` that is zero except on its middle
    depth tap: the 3D network then computes exactly what the 2D one computes on every depth slice, and learns
    what neighbouring slices (or cine frames) add from there."""
    out = np.zeros((*kernel.shape[:2], depth, *kernel.shape[2:]), kernel.dtype)
    out[:, :, depth // 2] = kernel
    return out
