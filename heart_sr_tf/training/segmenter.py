"""The segmenter's training step: a ``keras.Model`` around the U-Net, cross-entropy plus soft Dice.

Soft Dice is taken per image and per foreground structure (RV, myocardium, LV) so the thin myocardium weighs
as much as the large cavities; cross-entropy keeps the boundaries sharp. Losses are averaged over the global
batch (``tf.nn.compute_average_loss``), as in the SR models, so every strategy computes the same gradients.
"""

from __future__ import annotations

import keras
import tensorflow as tf


def soft_dice_loss(logits, labels, classes: int, smooth: float = 1.0):
    """Per image: 1 - mean over the foreground classes of the soft Dice of softmax(logits) and one-hot labels."""
    probabilities = tf.nn.softmax(tf.cast(logits, tf.float32))[..., 1:]
    truth = tf.one_hot(labels, classes)[..., 1:]
    intersection = tf.reduce_sum(probabilities * truth, axis=[1, 2])
    total = tf.reduce_sum(probabilities + truth, axis=[1, 2])
    return 1.0 - tf.reduce_mean((2.0 * intersection + smooth) / (total + smooth), axis=-1)


def cross_entropy(logits, labels):
    """Per image: the mean pixel cross-entropy."""
    ce = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=labels, logits=tf.cast(logits, tf.float32))
    return tf.reduce_mean(ce, axis=[1, 2])


class SegmenterTrainer(keras.Model):
    def __init__(self, network: keras.Model, classes: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.network = network
        self.classes = classes

    def compile(self, optimizer, ce_weight: float = 1.0, dice_weight: float = 1.0, **kwargs):
        super().compile(**kwargs)
        self.s_optimizer = optimizer
        self.weights_ = {"ce": ce_weight, "dice": dice_weight}

    def call(self, images, training=False):
        return self.network(images, training=training)

    def trackables(self) -> dict:
        return {"network": list(self.network.weights), "optimizer": self.s_optimizer}

    def step_for(self, mode: str):
        if mode != "segment":
            raise ValueError(f"unknown segmenter mode {mode!r}, expected 'segment'")
        return self.train_step

    def train_step(self, data):
        images, labels = data
        with tf.GradientTape() as tape:
            logits = self.network(images, training=True)
            terms = {"ce": cross_entropy(logits, labels), "dice": soft_dice_loss(logits, labels, self.classes)}
            per_sample = tf.add_n([self.weights_[k] * v for k, v in terms.items()])
            scaled = self.s_optimizer.scale_loss(tf.nn.compute_average_loss(per_sample))
        variables = self.network.trainable_variables
        self.s_optimizer.apply(tape.gradient(scaled, variables), variables)
        return {"seg_loss": tf.reduce_mean(per_sample), **{k: tf.reduce_mean(v) for k, v in terms.items()}}
