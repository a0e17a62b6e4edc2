"""Per-sample losses. Every function returns ``[B]`` for 4D ``[B, H, W, C]`` and 5D ``[B, H, W, D, C]`` batches
alike; the train step averages with the global batch size."""

from __future__ import annotations

import tensorflow as tf

from heart_sr_tf.cardiac_metrics import UNSURE


def pixel_loss(sr: tf.Tensor, hr: tf.Tensor, kind: str = "mse") -> tf.Tensor:
    """Mean squared (``"mse"``) or absolute (``"l1"``) error per sample."""
    diff = tf.cast(sr, tf.float32) - tf.cast(hr, tf.float32)
    if kind == "mse":
        return _per_sample_mean(tf.square(diff))
    if kind == "l1":
        return _per_sample_mean(tf.abs(diff))
    raise ValueError(f"unknown pixel loss {kind!r}, expected 'mse' or 'l1'")


SSIM_WINDOW = 7  # scikit-image's default, the SSIM every published number uses


def ssim_loss(sr: tf.Tensor, hr: tf.Tensor) -> tf.Tensor:
    """``1 - SSIM`` per sample of ``[B, H, W, 1]`` images on [0, 1], as :mod:`heart_sr_tf.metrics` computes it
    (scikit-image's defaults: a uniform 7x7 window, sample covariances, data range 1, the border cropped)."""
    x, y = tf.cast(sr, tf.float32), tf.cast(hr, tf.float32)
    n = SSIM_WINDOW * SSIM_WINDOW
    c1, c2, norm = 0.01**2, 0.03**2, n / (n - 1)

    def mean(image):
        return tf.nn.avg_pool2d(image, SSIM_WINDOW, strides=1, padding="VALID")

    ux, uy = mean(x), mean(y)
    vx = norm * (mean(x * x) - ux * ux)
    vy = norm * (mean(y * y) - uy * uy)
    vxy = norm * (mean(x * y) - ux * uy)
    ssim = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return 1.0 - _per_sample_mean(ssim)


def feature_loss(sr_features: tf.Tensor, hr_features: tf.Tensor) -> tf.Tensor:
    """Mean squared distance of VGG feature maps per sample."""
    diff = tf.cast(sr_features, tf.float32) - tf.cast(hr_features, tf.float32)
    return _per_sample_mean(tf.square(diff))


def segmentation_loss(
    sr_logits: tf.Tensor, hr_logits: tf.Tensor, class_weights, border_weight: float = 0.0
) -> tf.Tensor:
    """KL divergence of a frozen segmenter's class probabilities on SR from those on HR, per pixel, weighted by
    the class the segmenter finds in HR (``class_weights[label]``): 0 when the segmenter sees the same anatomy.
    ``border_weight``: pixels on the segmenter's own border in HR (its largest class probability under
    ``UNSURE[1]``, where its decisions flip for small changes) weigh ``1 + border_weight`` times more."""
    target_log = tf.stop_gradient(tf.nn.log_softmax(tf.cast(hr_logits, tf.float32)))
    kl = tf.reduce_sum(tf.exp(target_log) * (target_log - tf.nn.log_softmax(tf.cast(sr_logits, tf.float32))), -1)
    weights = tf.gather(tf.constant(class_weights, tf.float32), tf.argmax(target_log, axis=-1))
    if border_weight:
        border = tf.cast(tf.reduce_max(target_log, axis=-1) < tf.math.log(UNSURE[1]), tf.float32)
        weights *= 1.0 + border_weight * border
    return _per_sample_mean(kl * weights)


def segmentation_volume_loss(sr_logits: tf.Tensor, hr_logits: tf.Tensor, floor: float = 64.0) -> tf.Tensor:
    """Each structure's soft area (the sum of its class probability over the image: RV, myocardium, LV) on SR
    against HR's, as the absolute relative difference, summed over the structures: ``[B]``. A per-pixel term
    averages a border moved outwards by a fraction of a pixel away; summed over the slice that shift is the
    volume and the mass. ``floor`` pixels are added to HR's area, so a structure that is absent or tiny does
    not make the ratio explode."""
    p_sr = tf.nn.softmax(tf.cast(sr_logits, tf.float32))[..., 1:]
    p_hr = tf.stop_gradient(tf.nn.softmax(tf.cast(hr_logits, tf.float32)))[..., 1:]
    area_sr, area_hr = tf.reduce_sum(p_sr, axis=[1, 2]), tf.reduce_sum(p_hr, axis=[1, 2])
    return tf.reduce_sum(tf.abs(area_sr - area_hr) / (area_hr + floor), axis=-1)


def segmenter_feature_loss(sr_features, hr_features) -> tf.Tensor:
    """A frozen segmenter's encoder features on SR against those on HR, level by level (lists of ``[B, h, w, c]``):
    the mean squared distance per sample, divided by HR's mean squared feature so that every level weighs alike,
    then averaged over the levels: ``[B]``, 0 when the segmenter's encoder sees the same image. Unlike the KL of
    its output, it asks for every edge and texture the encoder responds to, not only for its decision."""
    per_level = []
    for sr, hr in zip(sr_features, hr_features, strict=True):
        hr = tf.stop_gradient(tf.cast(hr, tf.float32))
        distance = _per_sample_mean(tf.square(tf.cast(sr, tf.float32) - hr))
        per_level.append(distance / (_per_sample_mean(tf.square(hr)) + 1e-6))
    return tf.add_n(per_level) / len(per_level)


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
