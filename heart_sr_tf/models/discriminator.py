"""VGG-style discriminator: conv / stride-2 conv pairs with LeakyReLU, global pooling for any patch size."""

from __future__ import annotations

import keras
from keras import layers


def vgg_discriminator(features: int = 32, stages: int = 4, name: str = "discriminator") -> keras.Model:
    """``[B, H, W, 1]`` HR image -> ``[B, 1]`` logit (real > 0). No batch norm, so replicas agree exactly."""
    hr = keras.Input((None, None, 1), name="hr_image")
    x = hr
    for i in range(stages):
        width = features * 2**i
        x = layers.Conv2D(width, 3, padding="same", name=f"conv{i}a")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i}a")(x)
        x = layers.Conv2D(width, 3, strides=2, padding="same", name=f"conv{i}b")(x)
        x = layers.LeakyReLU(0.2, name=f"act{i}b")(x)
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    x = layers.LeakyReLU(0.2, name="dense_act")(layers.Dense(features * 4, name="dense")(x))
    out = layers.Dense(1, dtype="float32", name="logit")(x)
    return keras.Model(hr, out, name=name)
