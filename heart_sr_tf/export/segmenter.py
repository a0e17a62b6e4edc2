"""Export the segmenter as a SavedModel in TF Serving's layout: ``<out>/<name>/<version>/``.

``serving_default``: ``image`` float32 ``[batch, h, w, 1]`` in [0, 1] (the intensity protocol, any h and w) ->
``labels`` int32 ``[batch, h, w]`` (0 background, 1 RV, 2 myocardium, 3 LV) and ``probabilities`` float32
``[batch, h, w, 4]``. Images are edge-padded to a multiple of the network's stride inside the graph.
"""

from __future__ import annotations

from pathlib import Path

import keras
import tensorflow as tf

from heart_sr_tf.export.writer import write_version
from heart_sr_tf.models.unet import segment_logits

SEGMENTER_PROTOCOL = {
    "kind": "segmenter",
    "labels": {"0": "background", "1": "RV", "2": "myocardium", "3": "LV"},
    "intensity": "per volume (one 3D frame): clip to [min, 99.5th percentile], scale to [0, 1]",
    "slices": "trained on full-resolution 256x256 slices (cv2 bicubic) of ACDC's training patients",
    "input": "image: float32 [batch, h, w, 1] in [0, 1], any h and w",
    "output": "labels: int32 [batch, h, w]; probabilities: float32 [batch, h, w, 4] (softmax)",
}


def export_segmenter(
    network: keras.Model, depth: int, out: Path, name: str, version: int | None = None, metadata: dict | None = None
) -> Path:
    """Write the network at ``out/name/version`` (the next version when None); never overwrites."""

    def write(path: Path) -> None:
        archive = keras.export.ExportArchive()

        def run(image):
            probabilities = tf.nn.softmax(segment_logits(network, image, 2**depth))
            return {"labels": tf.argmax(probabilities, axis=-1, output_type=tf.int32), "probabilities": probabilities}

        archive.add_endpoint(
            "serving_default", run, input_signature=[tf.TensorSpec([None, None, None, 1], tf.float32, name="image")]
        )
        archive.write_out(str(path), verbose=False)

    return write_version(out, name, version, {**SEGMENTER_PROTOCOL, **(metadata or {}), "depth": depth}, write)
