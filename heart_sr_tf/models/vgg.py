"""VGG19 feature extractor for the perceptual loss (grayscale in [0, 1] in, features out).

ImageNet weights are never downloaded at run time: they are read from ``--vgg-weights FILE`` or
from the Keras cache (``$KERAS_HOME/models/`` or ``~/.keras/models/``).
"""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from heart_sr_tf.errors import HeartSRError

WEIGHTS_FILE = "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5"
WEIGHTS_URL = "https://storage.googleapis.com/tensorflow/keras-applications/vgg19/" + WEIGHTS_FILE
IMAGENET_BGR_MEAN = (103.939, 116.779, 123.68)


class VGGWeightsMissing(HeartSRError):
    """The ImageNet VGG19 weights are not on this machine."""


def cached_weights_path() -> Path:
    home = Path(os.environ.get("KERAS_HOME") or Path.home() / ".keras")
    return home / "models" / WEIGHTS_FILE


def resolve_weights(weights: str | os.PathLike) -> str | None:
    """``"imagenet"`` -> the cached file, ``"random"`` -> None, a path -> that file. Raises when missing."""
    if weights == "random":
        return None
    path = cached_weights_path() if weights == "imagenet" else Path(weights)
    if not path.is_file():
        raise VGGWeightsMissing(
            f"{path}: VGG19 ImageNet weights not found. Download {WEIGHTS_URL} on a machine with internet "
            f"and put it at {cached_weights_path()} (or pass --vgg-weights FILE); "
            "set the feature-loss weight to 0 to train without it"
        )
    return str(path)


@keras.saving.register_keras_serializable(package="heart_sr_tf")
class ImageNetPreprocess(keras.layers.Layer):
    """Grayscale [0, 1] -> 3-channel caffe-style ImageNet input (x255, BGR mean subtracted)."""

    def call(self, x):
        x = tf.tile(tf.cast(x, tf.float32) * 255.0, [1, 1, 1, 3])
        return x - tf.constant(IMAGENET_BGR_MEAN, tf.float32)


def vgg_feature_extractor(layer: str = "block5_conv4", weights: str = "imagenet") -> keras.Model:
    """Features of ``layer`` taken before its activation (Keras fuses ReLU into VGG's convolutions)."""
    path = resolve_weights(weights)
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    if path is not None:
        vgg.load_weights(path)
    vgg.trainable = False
    target = vgg.get_layer(layer)
    linear = keras.layers.Conv2D.from_config({**target.get_config(), "activation": "linear", "name": f"{layer}_pre"})
    inputs = keras.Input((None, None, 1), name="gray")
    x = ImageNetPreprocess(name="imagenet_preprocess")(inputs)
    for vgg_layer in vgg.layers[1:]:
        if vgg_layer is target:
            break
        x = vgg_layer(x)
    out = linear(x)
    linear.set_weights(target.get_weights())
    linear.trainable = False
    model = keras.Model(inputs, out, name=f"vgg19_{layer}")
    model.trainable = False
    return model
