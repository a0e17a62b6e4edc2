"""SRGAN as a ``keras.Model`` with its own ``compile`` and ``train_step``.

Generator loss = pixel (MSE or L1) + SSIM + VGG feature + segmentation + adversarial terms, each weighted. The
segmentation term runs SR and HR through one or more frozen segmenters (``segmenters``: ``(network, multiple)``
pairs) and averages over them, so the generator learns what changes the segmentation, not what one segmenter's
quirks reward; the segmentation-volume term, through the same segmenters, compares each structure's soft area on SR
with HR's, the systematic border shift that sets volumes and mass; the segmentation-feature term compares their
encoder features on SR with those on HR, every edge the segmenters respond to. With
``adversarial = False`` only the generator trains, on pixel (+ feature) loss: the pre-training stage.
Losses are averaged over the global batch (``tf.nn.compute_average_loss``), so gradients summed
over replicas equal the single-device gradients. The training loop (``loop.py``) runs
``step_for(mode)``: ``"generator"`` (pre-training) or ``"both"`` (adversarial).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from heart_sr_tf.models.unet import segment_logits, segment_logits_and_features, with_encoder_features
from heart_sr_tf.training.adversarial import GeneratorAndJudge
from heart_sr_tf.training.losses import (
    discriminator_loss,
    feature_loss,
    generator_adversarial_loss,
    pixel_loss,
    segmentation_loss,
    segmentation_volume_loss,
    segmenter_feature_loss,
    ssim_loss,
)

MODES = ("generator", "both")


class SRGAN(GeneratorAndJudge):
    def __init__(
        self, generator: keras.Model, discriminator: keras.Model, feature_extractor=None, segmenters=(), **kwargs
    ):
        super().__init__(generator, discriminator, **kwargs)
        self.feature_extractor = feature_extractor
        self.segmenters = tuple(segmenters)

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        pixel: str = "mse",
        pixel_weight: float = 1.0,
        feature_weight: float = 0.0,
        ssim_weight: float = 0.0,
        adversarial_weight: float = 1e-3,
        segmentation_weight: float = 0.0,
        segmentation_class_weights=(1.0, 1.0, 1.0, 1.0),
        segmentation_volume_weight: float = 0.0,
        segmentation_feature_weight: float = 0.0,
        segmentation_border_weight: float = 0.0,
        **kwargs,
    ):
        super().compile(**kwargs)
        if feature_weight and self.feature_extractor is None:
            raise ValueError("feature_weight > 0 needs a feature_extractor")
        if (segmentation_weight or segmentation_volume_weight or segmentation_feature_weight) and not self.segmenters:
            raise ValueError("a segmentation, segmentation-volume or segmentation-feature weight > 0 needs a segmenter")
        # each segmenter also giving its encoder features, only where the feature term asks for them
        self.probes = [with_encoder_features(net) for net, _ in self.segmenters] if segmentation_feature_weight else []
        self.segmentation_class_weights = tuple(segmentation_class_weights)
        self.segmentation_border_weight = float(segmentation_border_weight)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.pixel = pixel
        self.loss_weights_ = {
            "pixel": pixel_weight,
            "ssim": ssim_weight,
            "feature": feature_weight,
            "segmentation": segmentation_weight,
            "segmentation_volume": segmentation_volume_weight,
            "segmentation_feature": segmentation_feature_weight,
            "adversarial": adversarial_weight,
        }

    def step_for(self, mode: str):
        if mode not in MODES:
            raise ValueError(f"unknown SRGAN mode {mode!r}, expected one of {', '.join(MODES)}")
        return lambda data: self.train_step(data, adversarial=mode == "both")

    def _generator_terms(self, sr, hr):
        terms = {"pixel": pixel_loss(sr, hr, self.pixel)}
        if self.loss_weights_["ssim"]:
            terms["ssim"] = ssim_loss(sr, hr)
        if self.loss_weights_["feature"]:
            terms["feature"] = feature_loss(self.feature_extractor(sr), self.feature_extractor(hr))
        if self.probes:
            outputs = [
                (segment_logits_and_features(probe, sr, multiple), segment_logits_and_features(probe, hr, multiple))
                for probe, (_, multiple) in zip(self.probes, self.segmenters, strict=True)
            ]
            logits = [(s_logits, h_logits) for (s_logits, _), (h_logits, _) in outputs]
            terms["segmentation_feature"] = self._mean(
                [segmenter_feature_loss(s_features, h_features) for (_, s_features), (_, h_features) in outputs]
            )
        elif self.loss_weights_["segmentation"] or self.loss_weights_["segmentation_volume"]:
            logits = [
                (segment_logits(network, sr, multiple), segment_logits(network, hr, multiple))
                for network, multiple in self.segmenters
            ]
        if self.loss_weights_["segmentation"]:
            terms["segmentation"] = self._mean(
                [
                    segmentation_loss(s, h, self.segmentation_class_weights, self.segmentation_border_weight)
                    for s, h in logits
                ]
            )
        if self.loss_weights_["segmentation_volume"]:
            terms["segmentation_volume"] = self._mean([segmentation_volume_loss(s, h) for s, h in logits])
        return terms

    @staticmethod
    def _mean(per_segmenter):
        """A term averaged over the segmenters it ran through."""
        return tf.add_n(per_segmenter) / len(per_segmenter)

    def train_step(self, data, adversarial: bool = True):
        """One step on ``(lr, hr)``; the logs are this step's losses (replica means)."""
        lr, hr = data
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = self.generator(lr, training=True)[:, : tf.shape(hr)[1], : tf.shape(hr)[2]]
            terms = self._generator_terms(sr, hr)
            if adversarial:
                real_logits = self.discriminator(hr, training=True)
                fake_logits = self.discriminator(sr, training=True)
                terms["adversarial"] = generator_adversarial_loss(fake_logits)
                d_per_sample = discriminator_loss(real_logits, fake_logits)
                d_scaled = self.d_optimizer.scale_loss(tf.nn.compute_average_loss(d_per_sample))
            per_sample = tf.add_n([self.loss_weights_[k] * v for k, v in terms.items()])
            g_scaled = self.g_optimizer.scale_loss(tf.nn.compute_average_loss(per_sample))
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        logs = {"g_loss": tf.reduce_mean(per_sample)}
        if adversarial:
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
            logs["d_loss"] = tf.reduce_mean(d_per_sample)
        return {**logs, **{name: tf.reduce_mean(value) for name, value in terms.items()}}
