"""OpenVINO as the runtime of an exported generator (the optional extra ``pip install -e '.[openvino]'``).

The SavedModel is checked by TensorFlow and converted once; the IR is cached beside it (``<version>/openvino/``),
or under ``$HEART_SR_CACHE`` when that folder is read-only, keyed by a hash of the SavedModel's files.
``INFERENCE_PRECISION_HINT`` picks the precision. With the IR cached, OpenVINO runs without importing TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.startup import import_tensorflow_quietly

OPENVINO_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def _openvino():
    try:
        import openvino
    except ImportError:
        raise HeartSRError("--backend openvino: OpenVINO is not installed (pip install -e '.[openvino]')") from None
    return openvino


def openvino_ir(folder: Path) -> Path:
    """The cached OpenVINO IR of a SavedModel, converted on first use (``model.xml`` + ``model.bin``)."""
    folder = Path(folder)
    digest = hashlib.sha256()
    for file in [folder / "saved_model.pb", *sorted((folder / "variables").glob("*"))]:
        digest.update(file.name.encode() + file.read_bytes())
    fingerprint = digest.hexdigest()[:16]
    candidates = [folder / "openvino"]
    cache = Path(os.environ.get("HEART_SR_CACHE", Path.home() / ".cache" / "heart-sr-tf"))
    candidates.append(cache / "openvino" / f"{folder.parent.name}-{folder.name}-{fingerprint}")
    for place in candidates:
        if (place / "model.xml").is_file() and (place / "fingerprint").is_file():
            if (place / "fingerprint").read_text() == fingerprint:
                return place / "model.xml"
    ov = _openvino()
    # Once per model: TensorFlow checks the SavedModel first (OpenVINO converts a truncated one without a word).
    import_tensorflow_quietly()
    from heart_sr_tf.export.reader import load_exported

    load_exported(folder)
    try:
        model = ov.convert_model(str(folder))
    except Exception as exc:  # whatever a damaged SavedModel makes the converter raise: one line
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise HeartSRError(f"{folder}: not a loadable heart-sr SavedModel (OpenVINO: {message[:200]})") from None
    for place in candidates:
        tmp = place.with_name(f".{place.name}.tmp-{os.getpid()}")
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "fingerprint").write_text(fingerprint)
            if place.exists():
                shutil.rmtree(place)
            tmp.rename(place)
            return place / "model.xml"
        except OSError:
            continue
        finally:  # an error, SIGINT or SIGTERM never leaves a half-written cache inside a model's folder
            shutil.rmtree(tmp, ignore_errors=True)
    raise HeartSRError(f"{folder}: cannot cache the OpenVINO conversion beside it or under {cache}")


def openvino_fn(folder: Path, precision: str):
    """``(fn, input rank)``: ``fn(lr)`` runs the SavedModel's serving_default in OpenVINO on the CPU."""
    ov = _openvino()
    core = ov.Core()
    compiled = core.compile_model(
        core.read_model(str(openvino_ir(folder))),
        "CPU",
        {"INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"},
    )
    request = compiled.create_infer_request()

    def fn(lr):
        return request.infer({0: lr}, share_inputs=False)[0].copy()

    return fn, compiled.inputs[0].get_partial_shape().rank.get_length()
