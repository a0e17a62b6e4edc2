"""WGAN-GP as a ``keras.Model`` with one step per phase mode (generator, critic, both).

Critic loss = E[D(fake)] - E[D(real)] + lambda_gp * GP, with GP = E[(||grad D(x_hat)|| - 1)^2] at
x_hat = alpha * real + (1 - alpha) * fake, alpha uniform per sample, the norm over all non-batch axes.
Generator loss = content (L1 or MSE) - lambda_adv * E[D(fake)].
"""

from __future__ import annotations

import keras
import tensorflow as tf

from heart_sr_tf.training.adversarial import GeneratorAndJudge
from heart_sr_tf.training.losses import pixel_loss


def gradient_penalty(critic, real: tf.Tensor, fake: tf.Tensor, alpha: tf.Tensor | None = None) -> tf.Tensor:
    """Per-sample ``(||grad critic(x_hat)|| - 1)^2``."""
    real = tf.cast(real, tf.float32)
    fake = tf.cast(fake, tf.float32)
    if alpha is None:
        shape = tf.concat([tf.shape(real)[:1], tf.ones([tf.rank(real) - 1], tf.int32)], 0)
        alpha = tf.random.uniform(shape)
    mixed = alpha * real + (1.0 - alpha) * fake
    with tf.GradientTape() as tape:
        tape.watch(mixed)
        score = critic(mixed, training=True)
    grads = tape.gradient(score, mixed)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=tf.range(1, tf.rank(grads))) + 1e-12)
    return tf.square(norm - 1.0)


class WGAN(GeneratorAndJudge):
    MODES = ("generator", "critic", "both")

    def __init__(self, generator: keras.Model, critic: keras.Model, **kwargs):
        super().__init__(generator, critic, **kwargs)

    @property
    def critic(self) -> keras.Model:
        """The WGAN's name for its judge (saved as ``discriminator``, as in SRGAN runs)."""
        return self.discriminator

    def compile(self, g_optimizer, d_optimizer, content="l1", lambda_gp=10.0, lambda_adv=1e-3, **kwargs):
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.content, self.lambda_gp, self.lambda_adv = content, lambda_gp, lambda_adv

    def _fake(self, lr, hr, training):
        sr = self.generator(lr, training=training)
        return sr[:, : tf.shape(hr)[1], : tf.shape(hr)[2]]

    def critic_step(self, data):
        lr, hr = data
        sr = self._fake(lr, hr, training=True)
        with tf.GradientTape() as tape:
            real = tf.reshape(self.critic(hr, training=True), [-1])
            fake = tf.reshape(self.critic(sr, training=True), [-1])
            gp = gradient_penalty(self.critic, hr, sr)
            per_sample = fake - real + self.lambda_gp * gp
            loss = tf.nn.compute_average_loss(per_sample)
            scaled = self.d_optimizer.scale_loss(loss)
        variables = self.critic.trainable_variables
        self.d_optimizer.apply(tape.gradient(scaled, variables), variables)
        return {
            "d_loss": tf.reduce_mean(per_sample),
            "gp": tf.reduce_mean(gp),
            "w_distance": tf.reduce_mean(real - fake),
        }

    def generator_step(self, data):
        lr, hr = data
        with tf.GradientTape() as tape:
            sr = self._fake(lr, hr, training=True)
            content = pixel_loss(sr, hr, self.content)
            adversarial = -tf.reshape(self.critic(sr, training=False), [-1])
            per_sample = content + self.lambda_adv * adversarial
            loss = tf.nn.compute_average_loss(per_sample)
            scaled = self.g_optimizer.scale_loss(loss)
        variables = self.generator.trainable_variables
        self.g_optimizer.apply(tape.gradient(scaled, variables), variables)
        return {"g_loss": tf.reduce_mean(per_sample), "content": tf.reduce_mean(content)}

    def joint_step(self, data):
        return {**self.critic_step(data), **self.generator_step(data)}

    def train_step(self, data, mode: str = "both"):
        """One step of the phase controller's ``mode``: the generator, the critic, or both."""
        return {"generator": self.generator_step, "critic": self.critic_step, "both": self.joint_step}[mode](data)

    def step_for(self, mode: str):
        if mode not in self.MODES:
            raise ValueError(f"unknown WGAN mode {mode!r}, expected one of {', '.join(self.MODES)}")
        return lambda data: self.train_step(data, mode)
