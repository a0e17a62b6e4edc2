"""The network registry: which network a config describes, built under a chosen precision. Training builds
its models from here, and inference rebuilds exported generators from here, so neither imports the other."""

from __future__ import annotations

import keras

from heart_sr_tf.config import WGANConfig
from heart_sr_tf.models.mdcsrn import mdcsrn_generator
from heart_sr_tf.models.rrdb import rrdb_generator


def make_generator(config) -> keras.Model:
    """The generator a config describes: RRDB for an SRGAN config, mDCSRN (2D or 3D) for a WGAN config."""
    g = config.generator
    if isinstance(config, WGANConfig):
        return mdcsrn_generator(
            config.data.dims, config.degradation.factor, g.blocks, g.units, g.growth, g.bicubic_skip
        )
    factors = config.degradation.factors  # (s, s) in-plane, (g, 1) across slices
    return rrdb_generator(factors, g.blocks, g.features, g.growth, g.residual_scale, g.bicubic_skip)


def build_generator(config, precision: str):
    """The config's generator under ``precision``'s Keras policy (the global policy is restored afterwards)."""
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        return make_generator(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def make_segmenter(config) -> keras.Model:
    """The U-Net a segmenter config describes, for ACDC's four labels."""
    from heart_sr_tf.models.unet import unet_segmenter

    n = config.network
    return unet_segmenter(4, n.features, n.depth, n.dropout)
