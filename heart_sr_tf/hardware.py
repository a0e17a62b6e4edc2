"""What this machine computes natively: the CPU's model and flags, and whether bfloat16 runs in hardware (a CPU
with AVX512_BF16 or AMX, a GPU of compute capability 8 or more). Elsewhere bfloat16 is emulated, and slower than
float32 by far (a generator's training step: about 7x on a CPU with AVX2 only). Used by training
(``mixed_precision = "auto"``), inference (``--precision auto``) and every speed figure (the CPU printed next to
it)."""

from __future__ import annotations

import sys
from pathlib import Path

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


def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity: a Slurm job's or taskset's share), else all of them."""
    import os

    try:
        return len(os.sched_getaffinity(0)) or 1
    except (AttributeError, OSError):  # (macOS has no affinity)
        return os.cpu_count() or 1


def int8_isa() -> str:
    """The instructions int8 convolutions run on here. Their rounding and saturation differ (without VNNI, pairs of
    products are summed in 16 bits), so a check of an int8 model holds for CPUs of the same class."""
    flags = cpu_flags()
    for name, flag in (
        ("AMX", "amx_int8"),
        ("AVX512_VNNI", "avx512_vnni"),
        ("AVX_VNNI", "avx_vnni"),
        ("AVX512", "avx512bw"),
        ("AVX2", "avx2"),
    ):
        if flag in flags:
            return name
    return "other"


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
