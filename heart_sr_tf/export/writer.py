"""Export a generator as a SavedModel in TensorFlow Serving's layout: ``<out>/<name>/<version>/``.

Signatures (a 3D generator takes and returns volumes ``[batch, h, w, D, 1]`` instead):
- ``serving_default``: ``lr_image`` float32 ``[batch, h, w, 1]`` in [0, 1] (the LR grid) ->
  ``sr_image`` float32 ``[batch, s*h, s*w, 1]`` clipped to [0, 1];
- ``serving_uint8``: the same in uint8 (0..255).

The metadata (scale, degradation, intensity protocol, training run and metrics) travels in
``assets.extra/heart_sr_metadata.json`` beside the model, where TF Serving ignores it.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import keras
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError, os_reason
from heart_sr_tf.export.layout import METADATA_FILE, versions
from heart_sr_tf.outputs import check_place
from heart_sr_tf.processes import process_alive

PROTOCOL = {
    "intensity": "per volume (one 3D frame): clip to [min, 99.5th percentile], scale to [0, 1]",
    "slices": "training slices were resized to 256x256 with cv2 bicubic",
    "input": "lr_image: float32 [batch, h, w, 1] in [0, 1], any h and w",
    "output": "sr_image: float32 [batch, s*h, s*w, 1] clipped to [0, 1]; HR pixel s*i sits on LR sample i",
}


def export_generator(
    generator: keras.Model,
    out: Path,
    name: str,
    version: int | None = None,
    metadata: dict | None = None,
    degradation: Degradation | None = None,
) -> Path:
    """Write ``out/name/version``; the next integer when ``version`` is None. Never overwrites.

    The metadata always records the scale and the degradation the generator was trained on (decimation
    at x3 unless told otherwise), in machine-readable fields.
    """
    degradation = degradation or Degradation()
    metadata = {**(metadata or {}), "scale": degradation.factor, "degradation": degradation.metadata()}
    if degradation.kind == "through_plane":
        g = degradation.factor
        metadata["output"] = (
            f"sr_image: float32 [batch, {g}*h, w, 1] clipped to [0, 1]: the first axis (the slice axis) upsampled "
            f"by {g}; HR row {g}*r sits on LR row r"
        )
    return write_version(out, name, version, {**PROTOCOL, **metadata}, lambda path: _write(generator, path))


def write_version(out: Path, name: str, version: int | None, metadata: dict, write) -> Path:
    """``write(folder)`` a SavedModel into a temporary folder beside ``out/name/version`` (the next integer when
    ``version`` is None), add the metadata, and rename it into place: never overwrites, never leaves half an
    export (temporary folders of killed exports are removed by the next one)."""
    base = Path(out) / name
    chosen = version is None
    version = version if version is not None else (max(versions(base), default=0) + 1)
    target = base / str(version)
    if target.exists():
        raise HeartSRError(f"{target}: version {version} already exists; exports are never overwritten")
    check_place(base)
    try:
        base.mkdir(parents=True, exist_ok=True)
        _remove_stale_tmp(base)
    except OSError as exc:
        raise HeartSRError(f"{base}: cannot write the export there ({os_reason(exc)})") from None
    tmp = base / f".tmp-{version}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        write(tmp)
        extra = tmp / "assets.extra"
        extra.mkdir(exist_ok=True)
        (extra / METADATA_FILE).write_text(json.dumps(metadata, indent=2, default=str))
        target = _place(tmp, base, target, chosen)
    except OSError as exc:
        raise HeartSRError(f"{target}: cannot write the export ({os_reason(exc)})") from None
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _place(tmp: Path, base: Path, target: Path, chosen: bool) -> Path:
    """Rename ``tmp`` to ``target``. When another export took that version while this one was written (two
    exports at once, each choosing the next version), the next free version when it was chosen here, else the
    same refusal as before the work; the other export is left as it is."""
    while True:
        try:
            tmp.rename(target)
            return target
        except OSError as exc:
            if not target.exists():  # (not a collision: the outer handler names the reason)
                raise
            if not chosen:
                raise HeartSRError(
                    f"{target}: version {target.name} appeared while this export was written (another export?); "
                    "exports are never overwritten"
                ) from exc
            target = base / str(max(versions(base), default=0) + 1)


def _remove_stale_tmp(base: Path) -> None:
    """Temporary folders of exports whose process is gone (a SIGKILLed export)."""
    for tmp in base.glob(".tmp-*"):
        parts = tmp.name.split("-")
        pid = parts[2] if len(parts) > 3 else ""
        if not pid.isdigit() or not process_alive(int(pid)):
            shutil.rmtree(tmp, ignore_errors=True)


def _write(generator: keras.Model, path: Path) -> None:
    # No ``archive.track(generator)``: the endpoints capture the variables themselves, and tracking the model as
    # well writes every weight twice (keras-team/keras#23553), doubling the export's size and its memory in TF Serving.
    archive = keras.export.ExportArchive()
    shape = [None] * (len(generator.inputs[0].shape) - 1) + [1]  # [B, h, w, 1] or, for 3D, [B, h, w, D, 1]

    def run(lr):
        return tf.clip_by_value(tf.cast(generator(lr, training=False), tf.float32), 0.0, 1.0)

    archive.add_endpoint(
        "serving_default",
        lambda lr_image: {"sr_image": run(lr_image)},
        input_signature=[tf.TensorSpec(shape, tf.float32, name="lr_image")],
    )
    archive.add_endpoint(
        "serving_uint8",
        lambda lr_image: {"sr_image": tf.cast(tf.round(run(tf.cast(lr_image, tf.float32) / 255.0) * 255.0), tf.uint8)},
        input_signature=[tf.TensorSpec(shape, tf.uint8, name="lr_image")],
    )
    archive.write_out(str(path), verbose=False)
