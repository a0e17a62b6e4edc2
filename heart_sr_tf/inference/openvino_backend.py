"""OpenVINO as the runtime of an exported generator (the optional extra ``pip install -e '.[openvino]'``).

The SavedModel is checked by TensorFlow and converted once; the IR is cached beside it (``<version>/openvino/``),
or under ``$HEART_SR_CACHE`` when that folder is read-only, keyed by a hash of the SavedModel's files.
``INFERENCE_PRECISION_HINT`` picks the precision. With the IR cached, OpenVINO runs without importing TensorFlow.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from heart_sr_tf.cache import building, cache_root, compiled_limit, prune_oldest
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.extras import import_extra
from heart_sr_tf.startup import import_tensorflow_quietly

OPENVINO_HINTS = {"float32": "f32", "bfloat16": "bf16", "int8": "f32"}
INT8_KIND = "openvino-int8"  # the quantised IR's cache folder, beside the float one
INT8_CHECK = "check.json"  # in that folder: `quantize`'s check of the twin against float32


def _openvino():
    return import_extra("openvino", "--backend openvino: OpenVINO", "pip install -e '.[openvino]'")


def fingerprint(folder: Path) -> str:
    """A hash of a SavedModel's files: a cached conversion is used only for the exact model it came from."""
    digest = hashlib.sha256()
    for file in [folder / "saved_model.pb", *sorted((folder / "variables").glob("*"))]:
        digest.update(file.name.encode() + file.read_bytes())
    return digest.hexdigest()[:16]


def cache_places(folder: Path, kind: str = "openvino") -> tuple[list[Path], str]:
    """Where a conversion of the SavedModel ``folder`` is cached: beside it (``<version>/<kind>/``), else under
    ``$HEART_SR_CACHE``; and the fingerprint it must carry."""
    folder = Path(folder)
    key = fingerprint(folder)
    return [folder / kind, cache_root() / kind / f"{folder.parent.name}-{folder.name}-{key}"], key


def cached_ir(folder: Path, kind: str = "openvino") -> Path | None:
    """The cached IR of this exact SavedModel, if any."""
    places, key = cache_places(folder, kind)
    for place in places:
        if (place / "model.xml").is_file() and (place / "fingerprint").is_file():
            if (place / "fingerprint").read_text() == key:
                return place / "model.xml"
    return None


def save_ir(model, folder: Path, kind: str = "openvino") -> Path:
    """Cache ``model`` for the SavedModel ``folder``: written under a temporary name and renamed, so an error,
    SIGINT or SIGTERM never leaves a half-written cache inside a model's folder."""
    ov = _openvino()
    places, key = cache_places(folder, kind)
    for place in places:
        tmp = place.with_name(f".{place.name}.tmp-{os.getpid()}")
        try:
            tmp.mkdir(parents=True, exist_ok=True)
            ov.save_model(model, str(tmp / "model.xml"), compress_to_fp16=False)
            (tmp / "fingerprint").write_text(key)
            if place.exists():
                shutil.rmtree(place)
            tmp.rename(place)
            return place / "model.xml"
        except OSError:
            continue
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    raise HeartSRError(f"{folder}: cannot cache the OpenVINO model beside it or under {places[-1].parent}")


def save_int8_check(ir: Path, check: dict) -> None:
    """Keep `quantize`'s check of the int8 twin ``ir`` beside it (written whole, then renamed). The twin's folder
    is replaced whole when the model is quantised again, so a check never outlives the twin it was made on."""
    tmp = Path(ir).parent / f".{INT8_CHECK}.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(check, indent=1) + "\n")
    tmp.replace(Path(ir).parent / INT8_CHECK)


def checked_int8(folder: Path) -> dict | None:
    """`quantize`'s check of this SavedModel's cached int8 twin, when it found the twin within its limits on a CPU
    with this one's int8 instructions."""
    from heart_sr_tf.hardware import int8_isa

    ir = cached_ir(Path(folder), INT8_KIND)
    if ir is None:
        return None
    try:
        check = json.loads((ir.parent / INT8_CHECK).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(check, dict) or check.get("within") is not True or check.get("int8_isa") != int8_isa():
        return None
    return check


def openvino_ir(folder: Path) -> Path:
    """The cached OpenVINO IR of a SavedModel, converted on first use (``model.xml`` + ``model.bin``)."""
    folder = Path(folder)
    cached = cached_ir(folder)
    if cached is not None:
        return cached
    with building(folder / "openvino"):  # another process converting it: wait, then use its conversion
        cached = cached_ir(folder)
        if cached is not None:
            return cached
        ov = _openvino()
        # Once per model: TensorFlow checks the SavedModel first (OpenVINO converts a truncated one silently).
        import_tensorflow_quietly()
        from heart_sr_tf.export.reader import load_exported

        load_exported(folder)
        try:
            model = ov.convert_model(str(folder))
        except Exception as exc:  # whatever a damaged SavedModel makes the converter raise: one line
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise HeartSRError(f"{folder}: not a loadable heart-sr SavedModel (OpenVINO: {message[:200]})") from None
        return save_ir(model, folder)


def openvino_fn(folder: Path, precision: str, static: bool = True):
    """``(fn, input rank)``: ``fn(lr)`` runs the SavedModel's serving_default in OpenVINO on the CPU, compiled for
    each input shape it meets (``StaticShapes``; ``static=False``: one dynamic-shape model, for the benchmark);
    ``int8`` runs its quantised twin (``python cli.py quantize``), whose float parts stay float32."""
    ov = _openvino()
    core = ov.Core()
    prune = _cache_compiled(core)
    if precision == "int8":
        ir = cached_ir(Path(folder), INT8_KIND)
        if ir is None:
            raise HeartSRError(
                f"{folder}: no int8 model yet; make one with `python cli.py quantize {folder} --acdc-dir DIR`"
            )
    else:
        ir = openvino_ir(folder)
    model = core.read_model(str(ir))
    config = {"INFERENCE_PRECISION_HINT": OPENVINO_HINTS[precision], "PERFORMANCE_HINT": "LATENCY"}
    rank = model.inputs[0].get_partial_shape().rank.get_length()
    if static:
        return StaticShapes(core, model, config, prune=prune), rank
    request = core.compile_model(model, "CPU", config).create_infer_request()
    return (lambda lr: request.infer({0: lr}, share_inputs=False)[0].copy()), rank


def _cache_compiled(core):
    """Keep OpenVINO's compiled models under ``$HEART_SR_CACHE/openvino-compiled``: a new process (each `upscale`,
    each cohort worker) imports a shape's compiled model instead of compiling it again (here 0.08 s against
    0.2 s a shape). OpenVINO keys each by the model, its settings and the CPU, so a changed model or another
    machine compiles afresh. Where that folder cannot be made, every process compiles, as before. It grows by a
    few MB a model, precision and shape (scans of many sizes add shapes): the least recently used are removed
    when it holds more than ``$HEART_SR_COMPILED_CACHE_MB`` (default 1024; 0 keeps none), now and after each
    shape compiled (a cohort worker lives through many scans). Returns that pruning, or None without a cache."""
    limit = compiled_limit()
    folder = cache_root() / "openvino-compiled"
    if limit == 0:
        prune_oldest(folder, 0)
        return None
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    if not os.access(folder, os.W_OK):
        return None
    prune_oldest(folder, limit)
    core.set_property({"CACHE_DIR": str(folder)})
    return lambda: prune_oldest(folder, limit)


class StaticShapes:
    """The model compiled once per input shape, each compiled model kept for reuse (the ``limit`` most recent).

    A dynamic-shape model is re-planned on every call; one reshaped to the call's exact shape is planned once
    (on a CPU with AMX, 10% more throughput in the issue's measurement; compiling one shape takes about 0.2 s).
    The inference layer asks for few shapes: whole slices in batches of a fixed size, their last partial batch,
    and the tiles of a large slice. Exact shapes only, never padding, so every output equals the dynamic model's.
    """

    def __init__(self, core, model, config: dict, limit: int = 8, prune=None):
        self.core, self.model, self.config, self.limit, self.prune = core, model, config, limit, prune
        self.requests: dict[tuple[int, ...], object] = {}  # insertion order = least recently used first
        self.compiled = 0  # how many shapes were compiled, for the tests and the benchmark

    def __call__(self, lr):
        key = tuple(int(n) for n in lr.shape)
        request = self.requests.pop(key, None)
        if request is None:
            model = self.model.clone()
            model.reshape({0: list(key)})
            request = self.core.compile_model(model, "CPU", self.config).create_infer_request()
            self.compiled += 1
            if self.prune is not None:  # (the compiled model just stored is the newest: kept unless alone too big)
                self.prune()
            if len(self.requests) >= self.limit:
                self.requests.pop(next(iter(self.requests)))
        self.requests[key] = request
        return request.infer({0: lr}, share_inputs=False)[0].copy()
