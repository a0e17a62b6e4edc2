"""Builds the SRGAN and WGAN models, their optimizers and precision policy from a config, in a strategy scope."""

from __future__ import annotations

from pathlib import Path

import keras

from heart_sr_tf.config import SRGANConfig, WGANConfig
from heart_sr_tf.errors import ConfigError
from heart_sr_tf.hardware import cpu_model, native_bfloat16
from heart_sr_tf.models.critic import wgan_critic
from heart_sr_tf.models.discriminator import vgg_discriminator
from heart_sr_tf.models.registry import make_generator
from heart_sr_tf.models.vgg import vgg_feature_extractor
from heart_sr_tf.training.srgan import SRGAN
from heart_sr_tf.training.wgan import WGAN

POLICIES = {"no": "float32", "float16": "mixed_float16", "bfloat16": "mixed_bfloat16"}


def learning_rate(base: float, steps: int, schedule: str, final_fraction: float):
    if schedule == "constant" or steps <= 0:
        return base
    if schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(base, decay_steps=steps, alpha=final_fraction)
    raise ConfigError(f"optim.schedule: unknown schedule {schedule!r}, expected 'constant' or 'cosine'")


def make_optimizers(config, generator_steps: int, critic_steps: int):
    o = config.optim
    opts = [
        keras.optimizers.Adam(learning_rate(lr, n, o.schedule, o.final_lr_fraction), beta_1=o.beta_1, beta_2=o.beta_2)
        for lr, n in ((o.g_lr, generator_steps), (o.d_lr, critic_steps))
    ]
    if config.train.mixed_precision == "float16":
        opts = [keras.optimizers.LossScaleOptimizer(opt) for opt in opts]
    return opts


def training_precision(setting: str) -> str:
    """``train.mixed_precision`` for this machine: ``auto`` is ``bfloat16`` where the hardware computes it natively
    (``heart_sr_tf.hardware``), else ``no`` (float32); the others as given."""
    if setting == "auto":
        return "bfloat16" if native_bfloat16() else "no"
    if setting not in POLICIES:
        raise ConfigError(f"train.mixed_precision: expected one of auto, {', '.join(POLICIES)}")
    return setting


def precision_note(config) -> str | None:
    """The line a training run starts with when its precision depends on the machine: what ``auto`` chose, or a
    warning that ``bfloat16`` asked for explicitly is emulated here (many times slower than float32)."""
    setting = config.train.mixed_precision
    chosen = training_precision(setting)
    if setting == "auto":
        name = "mixed bfloat16" if chosen == "bfloat16" else "float32"
        return f"precision: {name} (train.mixed_precision = auto on {cpu_model()})"
    if chosen == "bfloat16" and not native_bfloat16():
        return (
            f"warning: train.mixed_precision = bfloat16 on {cpu_model()}, which emulates it: training is many "
            'times slower than in float32; "auto" uses bfloat16 only where the hardware computes it'
        )
    return None


def set_precision(config) -> None:
    keras.mixed_precision.set_global_policy(POLICIES[training_precision(config.train.mixed_precision)])


def frozen_segmenter(name: str):
    """``(network, multiple)``: the named exported segmenter, frozen, in float32 (its input must be padded to a
    multiple of ``multiple``)."""
    from heart_sr_tf.export.discovery import find_model
    from heart_sr_tf.export.layout import read_metadata, resolve_model_dir
    from heart_sr_tf.export.reader import load_segmenter_network

    folder = resolve_model_dir(find_model(Path(name)))
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("float32")
    try:
        network = load_segmenter_network(folder)
    finally:
        keras.mixed_precision.set_global_policy(previous)
    return network, 2 ** int(read_metadata(folder)["depth"])


def build_wgan(config: WGANConfig, strategy) -> WGAN:
    set_precision(config)
    with strategy.scope():
        generator = make_generator(config)
        critic = wgan_critic(config.data.dims, config.critic.features, config.critic.stages)
        g_opt, d_opt = make_optimizers(config, config.train.steps, config.train.steps)
        model = WGAN(generator, critic)
        loss = config.loss
        model.compile(g_opt, d_opt, loss.content, loss.lambda_gp, loss.lambda_adv, jit_compile=config.train.jit_compile)
        g_opt.build(generator.trainable_variables)
        d_opt.build(critic.trainable_variables)
    return model


def build_srgan(config: SRGANConfig, strategy, vgg_weights: str | None = None) -> SRGAN:
    """The compiled model; both optimizers are built explicitly, as MirroredStrategy requires."""
    set_precision(config)
    stages = config.train.stages
    g_steps = sum(s.steps for s in stages)
    d_steps = sum(s.steps for s in stages if s.adversarial)
    with strategy.scope():
        generator = make_generator(config)
        discriminator = vgg_discriminator(config.discriminator.features, config.discriminator.stages)
        loss = config.loss
        features = None
        if loss.feature_weight:
            features = vgg_feature_extractor(loss.vgg_layer, vgg_weights or loss.vgg_weights)
        through = loss.segmentation_weight or loss.segmentation_volume_weight or loss.segmentation_feature_weight
        names = [loss.segmenter, *loss.extra_segmenters] if through else []
        segmenters = [frozen_segmenter(name) for name in names]
        g_opt, d_opt = make_optimizers(config, g_steps, d_steps)
        model = SRGAN(generator, discriminator, features, segmenters)
        model.compile(
            g_opt,
            d_opt,
            pixel=loss.pixel,
            pixel_weight=loss.pixel_weight,
            feature_weight=loss.feature_weight,
            ssim_weight=loss.ssim_weight,
            adversarial_weight=loss.adversarial_weight,
            segmentation_weight=loss.segmentation_weight,
            segmentation_class_weights=loss.segmentation_class_weights,
            segmentation_volume_weight=loss.segmentation_volume_weight,
            segmentation_feature_weight=loss.segmentation_feature_weight,
            segmentation_border_weight=loss.segmentation_border_weight,
            jit_compile=config.train.jit_compile,
        )
        g_opt.build(generator.trainable_variables)
        d_opt.build(discriminator.trainable_variables)
    return model
