"""Builds the SRGAN model, its optimizers and precision policy from a config, inside a strategy scope."""

from __future__ import annotations

import keras

from heart_sr_tf.config import SRGANConfig
from heart_sr_tf.errors import ConfigError
from heart_sr_tf.models.discriminator import vgg_discriminator
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.models.vgg import vgg_feature_extractor
from heart_sr_tf.training.srgan import SRGAN

POLICIES = {"no": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def learning_rate(base: float, steps: int, schedule: str, final_fraction: float):
    if schedule == "constant" or steps <= 0:
        return base
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(base, decay_steps=steps, alpha=final_fraction)
    raise ConfigError(f"optim.schedule: unknown schedule {schedule!r}, expected 'constant' or 'cosine'")


def make_generator(config: SRGANConfig) -> keras.Model:
    g = config.generator
    return rrdb_generator(config.data.scale, g.blocks, g.features, g.growth, g.residual_scale, g.bicubic_skip)


def build_srgan(config: SRGANConfig, strategy, vgg_weights: str | None = None) -> SRGAN:
    """The compiled model; both optimizers are built explicitly, as MirroredStrategy requires."""
    if config.train.mixed_precision not in POLICIES:
        raise ConfigError(f"train.mixed_precision: expected one of {', '.join(POLICIES)}")
    keras.mixed_precision.set_global_policy(POLICIES[config.train.mixed_precision])
    stages = config.train.stages
    g_steps = sum(s.steps for s in stages)
    d_steps = sum(s.steps for s in stages if s.adversarial)
    o = config.optim
    with strategy.scope():
        generator = make_generator(config)
        discriminator = vgg_discriminator(config.discriminator.features, config.discriminator.stages)
        features = None
        if config.loss.feature_weight:
            features = vgg_feature_extractor(config.loss.vgg_layer, vgg_weights or config.loss.vgg_weights)
        g_opt = keras.optimizers.Adam(
            learning_rate(o.g_lr, g_steps, o.schedule, o.final_lr_fraction), beta_1=o.beta_1, beta_2=o.beta_2
        )
        d_opt = keras.optimizers.Adam(
            learning_rate(o.d_lr, d_steps, o.schedule, o.final_lr_fraction), beta_1=o.beta_1, beta_2=o.beta_2
        )
        if config.train.mixed_precision == "float16":
            g_opt, d_opt = keras.optimizers.LossScaleOptimizer(g_opt), keras.optimizers.LossScaleOptimizer(d_opt)
        model = SRGAN(generator, discriminator, features)
        model.compile(
            g_opt,
            d_opt,
            pixel=config.loss.pixel,
            pixel_weight=config.loss.pixel_weight,
            feature_weight=config.loss.feature_weight,
            adversarial_weight=config.loss.adversarial_weight,
            jit_compile=config.train.jit_compile,
        )
        g_opt.build(generator.trainable_variables)
        d_opt.build(discriminator.trainable_variables)
    return model
