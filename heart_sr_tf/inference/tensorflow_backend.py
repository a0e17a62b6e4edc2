"""TensorFlow as the runtime of an exported generator: a compiled NumPy-in, NumPy-out function, and the
bfloat16 path (the generator rebuilt from the export's config under ``mixed_bfloat16``, with its weights and
its recorded wrappers; the interpolation skip and the output stay float32)."""

from __future__ import annotations

from pathlib import Path


def tensorflow_bfloat16(folder: Path, meta: dict):
    """The exported generator rebuilt in mixed bfloat16 with its weights: ``(fn, generator)``."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.export.reader import export_config, load_exported_weights
    from heart_sr_tf.export.wrappers import recorded, wrap
    from heart_sr_tf.models.registry import build_generator

    generator = build_generator(export_config(meta, folder), "bfloat16")
    load_exported_weights(folder, generator)
    generator = wrap(generator, Degradation.from_metadata(meta, str(folder)), str(folder), **recorded(meta))
    return keras_fn(generator), generator


def keras_fn(generator):
    """A NumPy-in, NumPy-out function running a Keras generator in inference mode, compiled once per shape."""
    import tensorflow as tf

    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return lambda lr: call(tf.constant(lr)).numpy()
