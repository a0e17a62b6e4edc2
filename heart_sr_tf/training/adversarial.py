"""What the SRGAN and the WGAN share: a generator (the network the training loop validates and exports) beside a
second network that judges it, and one checkpoint layout for both (the judge is saved as ``discriminator``)."""

from __future__ import annotations

import keras


class GeneratorAndJudge(keras.Model):
    def __init__(self, generator: keras.Model, discriminator: keras.Model, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator

    @property
    def network(self) -> keras.Model:
        """The network the training loop validates."""
        return self.generator

    def call(self, lr, training=False):
        return self.generator(lr, training=training)

    def trackables(self) -> dict:
        """What a checkpoint holds (Keras 3 models are not tracked by tf.train.Checkpoint: their weight lists)."""
        return {
            "generator": list(self.generator.weights),
            "discriminator": list(self.discriminator.weights),
            "g_optimizer": self.g_optimizer,
            "d_optimizer": self.d_optimizer,
        }
