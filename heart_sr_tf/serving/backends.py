"""Where an exported generator runs, and in which precision: TensorFlow or OpenVINO, float32 or bfloat16.

- **precision** ``auto`` is bfloat16 where the hardware computes it natively (a CPU with AVX512_BF16 or AMX,
  a GPU of compute capability 8 or more) and float32 elsewhere: emulated bfloat16 on an older CPU is slower.
- **TensorFlow, bfloat16**: the generator is rebuilt from the run config in the export's metadata under Keras'
  ``mixed_bfloat16`` policy, with the exported weights. Convolutions run in bfloat16 (oneDNN, on AMX where
  present); the interpolation skip and the output stay float32, so the image itself is never rounded.
- **OpenVINO** (the optional extra ``pip install -e '.[openvino]'``): the SavedModel is checked by TensorFlow and
  converted once, and the IR cached beside it (``<version>/openvino/``), or under ``$HEART_SR_CACHE`` when that
  folder is read-only, keyed by a hash of the SavedModel's files; ``INFERENCE_PRECISION_HINT`` picks the
  precision. With the IR cached, OpenVINO runs without importing TensorFlow.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
from pathlib import Path

import tomllib

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.quiet import import_tensorflow_quietly

BACKENDS = ("tensorflow", "openvino")  # and "auto", resolved by resolve_backend
PRECISIONS = ("auto", "float32", "bfloat16")
BF16_FLAGS = {"avx512_bf16", "amx_bf16"}
OPENVINO_HINTS = {"float32": "f32", "bfloat16": "bf16"}


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    line = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return set(line.partition(":")[2].split())


def native_bfloat16() -> bool:
    """Whether this machine computes bfloat16 natively: CPU flags, or a GPU of compute capability >= 8. GPUs are
    asked only when TensorFlow is already loaded (the OpenVINO path runs on the CPU and never imports it)."""
    if cpu_flags() & BF16_FLAGS:
        return True
    if "tensorflow" not in sys.modules:
        return False
    import tensorflow as tf

    for gpu in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(gpu).get("compute_capability", (0, 0))
        if capability[0] >= 8:
            return True
    return False


def resolve_backend(backend: str) -> str:
    """``auto`` -> ``openvino`` when the optional extra is installed, else ``tensorflow``."""
    if backend == "auto":
        import importlib.util

        return "openvino" if importlib.util.find_spec("openvino") is not None else "tensorflow"
    if backend not in BACKENDS:
        raise HeartSRError(f"--backend: {backend!r} is not one of auto, {', '.join(BACKENDS)}")
    return backend


def resolve_precision(precision: str) -> str:
    """``auto`` -> ``bfloat16`` or ``float32`` for this machine; the others as given."""
    if precision not in PRECISIONS:
        raise HeartSRError(f"--precision: {precision!r} is not one of {', '.join(PRECISIONS)}")
    if precision == "auto":
        return "bfloat16" if native_bfloat16() else "float32"
    return precision


def export_config(meta: dict, folder: Path):
    """The training config an export's metadata carries (needed to rebuild its generator)."""
    from heart_sr_tf.config import SRGANConfig, WGANConfig, check, from_dict

    text = meta.get("config")
    if not text:
        raise HeartSRError(f"{folder}: its metadata holds no training config, so it cannot be rebuilt in bfloat16")
    values = tomllib.loads(text)
    config = from_dict(WGANConfig if "phases" in values else SRGANConfig, values, f"{folder} metadata")
    check(config)
    return config


def build_generator(config, precision: str):
    """The config's generator under ``precision``'s Keras policy (the global policy is restored afterwards)."""
    import keras

    from heart_sr_tf.training.build import make_generator

    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy("mixed_bfloat16" if precision == "bfloat16" else "float32")
    try:
        return make_generator(config)
    finally:
        keras.mixed_precision.set_global_policy(previous)


def tensorflow_bfloat16(folder: Path, meta: dict):
    """The exported generator rebuilt in mixed bfloat16 with its weights: ``(fn, generator)``."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.serving.wrappers import recorded, wrap
    from heart_sr_tf.training.runs import load_exported_weights

    generator = build_generator(export_config(meta, folder), "bfloat16")
    load_exported_weights(folder, generator)
    generator = wrap(generator, Degradation.from_metadata(meta), str(folder), **recorded(meta))
    return keras_fn(generator), generator


def keras_fn(generator):
    """A NumPy-in, NumPy-out function running a Keras generator in inference mode, compiled once per shape."""
    import tensorflow as tf

    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    return lambda lr: call(tf.constant(lr)).numpy()


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
    from heart_sr_tf.serving.export import load_exported

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
