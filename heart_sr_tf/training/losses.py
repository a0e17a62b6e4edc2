"""Per-sample losses. Every function returns ``[B]`` for 4D ``[B, H, W, C]`` and 5D ``[B, H, W, D, C]`` batches
alike; the train step averages with the global batch size."""

from __future__ import annotations

import tensorflow as tf


def pixel_loss(sr: tf.Tensor, hr: tf.Tensor, kind: str = "mse") -> tf.Tensor:
    """Mean squared (``"mse"``) or absolute (``"l1"``) error per sample."""
    diff = tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32)
    if kind == "mse":
        return _per_sample_mean(tf.square(diff))
    if kind == "l1":
        return _per_sample_mean(tf.abs(diff))
    raise ValueError(f"unknown pixel loss {kind!r}, expected 'mse' or 'l1'")


def feature_loss(sr_features: tf.Tensor, hr_features: tf.Tensor) -> tf.Tensor:
    """Mean squared distance of VGG feature maps per sample."""
    diff = tf.cast(sr_features, tf.float32) - tf.cast(hr_features, tf.float32)
    return _per_sample_mean(tf.square(diff))


def _per_sample_mean(x: tf.Tensor) -> tf.Tensor:
    """Mean over every axis but the batch: ``[B, ...] -> [B]``."""
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def _bce(logits: tf.Tensor, label: float) -> tf.Tensor:
    logits = tf.reshape(tf.cast(logits, tf.float32), [-1])
    return tf.nn.sigmoid_cross_entropy_with_logits(labels=tf.fill(tf.shape(logits), label), logits=logits)


def discriminator_loss(real_logits: tf.Tensor, fake_logits: tf.Tensor) -> tf.Tensor:
    """Binary cross-entropy: real -> 1, generated -> 0."""
    return _bce(real_logits, 1.0) + _bce(fake_logits, 0.0)


def generator_adversarial_loss(fake_logits: tf.Tensor) -> tf.Tensor:
    """Non-saturating generator loss: generated -> 1."""
    return _bce(fake_logits, 1.0)
