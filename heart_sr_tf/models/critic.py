"""WGAN critic in 2D or 3D: stride-2 blocks with layer norm (no batch norm, which breaks the gradient
penalty's per-sample independence), LeakyReLU, global pooling and a linear output."""

from __future__ import annotations

import keras
from keras import layers


def wgan_critic(dims: int = 2, features: int = 32, stages: int = 3, name: str | None = None) -> keras.Model:
    conv = layers.Conv2D if dims == 2 else layers.Conv3D
    pool = layers.GlobalAveragePooling2D if dims == 2 else layers.GlobalAveragePooling3D
    hr = keras.Input((None,) * dims + (1,), name="hr_image")
    x = layers.LeakyReLU(0.2, name="act_first")(conv(features, 3, padding="same", name="conv_first")(hr))
    for i in range(stages):
        width = features * 2 ** (i + 1)
        strides = 2 if dims == 2 else (2, 2, 1)  # never stride along D, which may be short
        x = conv(width, 3, strides=strides, padding="same", name=f"conv{i}")(x)
        x = layers.LayerNormalization(name=f"ln{i}")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i}")(x)
    x = pool(name="pool")(x)
    out = layers.Dense(1, dtype="float32", name="score")(x)
    return keras.Model(hr, out, name=name or f"critic{dims}d")
