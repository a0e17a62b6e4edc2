"""A 2D U-Net for ACDC's labels (0 background, 1 RV, 2 myocardium, 3 LV): the segmenter behind the clinical
measurements. A pure network: logits ``[B, h, w, classes]`` (float32 under mixed precision) for images
``[B, h, w, 1]`` in [0, 1]; h and w must be multiples of ``2 ** depth`` (``segment`` pads to that)."""

from __future__ import annotations

import re

import keras
from keras import layers

from heart_sr_tf.models.layers import BilinearUpsample2x


def _block(x, features: int, name: str):
    for i in (1, 2):
        x = layers.Conv2D(features, 3, padding="same", use_bias=False, name=f"{name}_conv{i}")(x)
        x = layers.BatchNormalization(name=f"{name}_bn{i}")(x)
        x = layers.Activation("relu", name=f"{name}_relu{i}")(x)
    return x


def unet_segmenter(classes: int = 4, features: int = 32, depth: int = 4, dropout: float = 0.1) -> keras.Model:
    """Encoder of ``depth`` poolings (features doubling to ``features * 2**depth``), decoder with skips."""
    image = keras.Input((None, None, 1), name="image")
    x, skips = image, []
    for level in range(depth):
        x = _block(x, features * 2**level, f"down{level}")
        skips.append(x)
        x = layers.MaxPooling2D(name=f"pool{level}")(x)
    x = _block(x, features * 2**depth, "bottom")
    if dropout:
        x = layers.SpatialDropout2D(dropout, name="bottom_dropout")(x)
    for level in reversed(range(depth)):
        x = BilinearUpsample2x(name=f"up{level}")(x)
        x = layers.Concatenate(name=f"skip{level}")([x, skips[level]])
        x = _block(x, features * 2**level, f"dec{level}")
    logits = layers.Conv2D(classes, 1, dtype="float32", name="logits")(x)
    return keras.Model(image, logits, name="unet_segmenter")


def with_encoder_features(network: keras.Model) -> keras.Model:
    """The same network (its weights shared) returning ``[logits, f0, f1, ...]``: besides the logits, the output of
    each encoder level's block (``down{level}``), from full resolution down, the features the segmenter's decision
    is built from."""
    names = sorted(layer.name for layer in network.layers if re.fullmatch(r"down\d+_relu2", layer.name))
    if not names:
        raise ValueError(f"{network.name}: no encoder block (down<level>_relu2) to take features from")
    outputs = [network.get_layer(name).output for name in names]
    return keras.Model(network.inputs, [network.outputs[0], *outputs], name=f"{network.name}_with_features")


def _pad_to_multiple(images, multiple: int):
    """``images`` edge-padded up to a multiple of ``multiple``, and the box ``(top, left, h, w)`` that crops a map
    back to their size."""
    import tensorflow as tf

    h, w = tf.shape(images)[1], tf.shape(images)[2]
    ph, pw = (-h) % multiple, (-w) % multiple
    padded = tf.pad(images, [[0, 0], [ph // 2, ph - ph // 2], [pw // 2, pw - pw // 2], [0, 0]], mode="SYMMETRIC")
    return padded, (ph // 2, pw // 2, h, w)


def _crop(maps, box):
    top, left, h, w = box
    return maps[:, top : top + h, left : left + w]


def segment_logits(network: keras.Model, images, multiple: int):
    """``network`` on ``images`` ``[B, h, w, 1]`` of any size: edge-padded up to a multiple of ``multiple``,
    and the logits cropped back to ``[B, h, w, classes]`` (a TensorFlow op, also inside an export)."""
    import tensorflow as tf

    padded, box = _pad_to_multiple(images, multiple)
    return _crop(tf.cast(network(padded, training=False), tf.float32), box)


def segment_logits_and_features(probe: keras.Model, images, multiple: int):
    """As :func:`segment_logits` through ``probe`` (:func:`with_encoder_features`): the cropped logits and the
    encoder features of the padded images."""
    import tensorflow as tf

    padded, box = _pad_to_multiple(images, multiple)
    logits, *features = probe(padded, training=False)
    return _crop(tf.cast(logits, tf.float32), box), features
