"""SRGAN as a ``keras.Model`` with its own ``compile``, ``train_step`` and ``test_step``.

Generator loss = pixel (MSE or L1) + VGG feature + adversarial terms, each weighted. With
``adversarial = False`` only the generator trains, on pixel (+ feature) loss: the pre-training stage.
Losses are averaged over the global batch (``tf.nn.compute_average_loss``), so gradients summed
over replicas equal the single-device gradients.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from heart_sr_tf.metrics import psnr_tf, ssim7_tf
from heart_sr_tf.training.losses import discriminator_loss, feature_loss, generator_adversarial_loss, pixel_loss

LOSS_TERMS = ("pixel", "feature", "adversarial")


class SRGAN(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, feature_extractor=None, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.feature_extractor = feature_extractor
        self.adversarial = True
        self.trackers = {
            name: keras.metrics.Mean(name=name) for name in ("g_loss", "d_loss", *LOSS_TERMS, "psnr", "ssim")
        }

    def compile(
        self,
        g_optimizer,
        d_optimizer,
        pixel: str = "mse",
        pixel_weight: float = 1.0,
        feature_weight: float = 0.0,
        adversarial_weight: float = 1e-3,
        **kwargs,
    ):
        super().compile(**kwargs)
        if feature_weight and self.feature_extractor is None:
            raise ValueError("feature_weight > 0 needs a feature_extractor")
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.pixel = pixel
        self.weights_ = {"pixel": pixel_weight, "feature": feature_weight, "adversarial": adversarial_weight}

    @property
    def metrics(self):
        return list(self.trackers.values())

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    def set_adversarial(self, adversarial: bool) -> None:
        """Switch between generator pre-training and adversarial training (retraces the step)."""
        if adversarial != self.adversarial:
            self.adversarial = adversarial
            self.train_function = None

    def _generator_terms(self, sr, hr):
        terms = {"pixel": pixel_loss(sr, hr, self.pixel)}
        if self.weights_["feature"]:
            terms["feature"] = feature_loss(self.feature_extractor(sr), self.feature_extractor(hr))
        return terms

    def train_step(self, data):
        lr, hr = data
        with tf.GradientTape() as g_tape, tf.GradientTape() as d_tape:
            sr = self.generator(lr, training=True)[:, : tf.shape(hr)[1], : tf.shape(hr)[2]]
            terms = self._generator_terms(sr, hr)
            if self.adversarial:
                real_logits = self.discriminator(hr, training=True)
                fake_logits = self.discriminator(sr, training=True)
                terms["adversarial"] = generator_adversarial_loss(fake_logits)
                d_loss = tf.nn.compute_average_loss(discriminator_loss(real_logits, fake_logits))
            per_sample = tf.add_n([self.weights_[k] * v for k, v in terms.items()])
            g_loss = tf.nn.compute_average_loss(per_sample)
            g_scaled = self.g_optimizer.scale_loss(g_loss)
            if self.adversarial:
                d_scaled = self.d_optimizer.scale_loss(d_loss)
        g_vars = self.generator.trainable_variables
        self.g_optimizer.apply(g_tape.gradient(g_scaled, g_vars), g_vars)
        if self.adversarial:
            d_vars = self.discriminator.trainable_variables
            self.d_optimizer.apply(d_tape.gradient(d_scaled, d_vars), d_vars)
            self.trackers["d_loss"].update_state(d_loss * _replicas())
        self.trackers["g_loss"].update_state(g_loss * _replicas())
        for name, value in terms.items():
            self.trackers[name].update_state(tf.reduce_mean(value))
        return self._results()

    def test_step(self, data):
        lr, hr = data
        sr = tf.clip_by_value(self.generator(lr, training=False)[:, : tf.shape(hr)[1], : tf.shape(hr)[2]], 0.0, 1.0)
        self.trackers["psnr"].update_state(psnr_tf(sr, hr))
        self.trackers["ssim"].update_state(ssim7_tf(sr, hr))
        return {"psnr": self.trackers["psnr"].result(), "ssim": self.trackers["ssim"].result()}

    def _results(self):
        names = ["g_loss", "pixel"] + (["feature"] if self.weights_["feature"] else [])
        names += ["d_loss", "adversarial"] if self.adversarial else []
        return {n: self.trackers[n].result() for n in names}


def _replicas() -> float:
    """compute_average_loss divides by the global batch; undo the replica share for logging."""
    return float(tf.distribute.get_strategy().num_replicas_in_sync)
