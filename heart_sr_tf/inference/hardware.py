"""Which runtime and precision this machine should use: the CPU's flags, ``--backend auto`` (OpenVINO when
installed, else TensorFlow) and ``--precision auto`` (bfloat16 where the hardware computes it natively: a CPU
with AVX512_BF16 or AMX, a GPU of compute capability 8 or more; float32 elsewhere, where emulated bfloat16 is
slower)."""

from __future__ import annotations

import sys
from pathlib import Path

from heart_sr_tf.errors import HeartSRError

BACKENDS = ("tensorflow", "openvino")  # and "auto", resolved by resolve_backend


PRECISIONS = ("auto", "float32", "bfloat16", "int8")  # int8: OpenVINO, after `quantize`


BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), printed next to every speed figure."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        import platform

        return platform.processor() or "unknown CPU"
    line = next((line for line in text.splitlines() if line.startswith("model name")), "")
    flags = cpu_flags()
    extras = [
        name
        for name, flag in (("AMX", "amx_tile"), ("AVX512_BF16", "avx512_bf16"), ("VNNI", "avx512_vnni"))
        if flag in flags
    ]
    name = line.partition(":")[2].strip() or "unknown CPU"
    return f"{name} ({', '.join(extras) if extras else 'no AMX, AVX512_BF16 or VNNI'})"


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
