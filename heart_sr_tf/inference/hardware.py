"""Which runtime and precision inference uses here: ``--backend auto`` (OpenVINO when installed, else
TensorFlow) and ``--precision auto`` (bfloat16 where the hardware computes it natively, ``heart_sr_tf.hardware``;
float32 elsewhere, where emulated bfloat16 is slower)."""

from __future__ import annotations

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.hardware import native_bfloat16

BACKENDS = ("tensorflow", "openvino")  # and "auto", resolved by resolve_backend


PRECISIONS = ("auto", "float32", "bfloat16", "int8")  # int8: OpenVINO, after `quantize`

# How `quantize` makes the int8 twin: NNCF's presets (activations quantised symmetrically, or asymmetrically), tried
# in this order by ``auto`` until one is within the accuracy limits. Here, not in ``inference.quantize``, so the CLI
# lists the choices without importing NumPy.
QUANTIZE_PRESETS = ("performance", "mixed")


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
