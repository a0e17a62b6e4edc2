"""int8 with NNCF's post-training quantisation, keeping in float what costs accuracy.

A generator's float OpenVINO IR is quantised on calibration LR grids (real k-space LR slices of the training
split: ``python cli.py quantize``). Quantised naively, ``rrdb_kspace`` lost 0.29 dB; almost all of it came from
the residual sums, whose operands differ in scale by orders of magnitude. So these stay float: every ``Add``
(the residual sums, and the bicubic skip added to the learned residual), the convolutions that read the LR input
(the first one and the fixed bicubic one) and the last convolutions at output resolution. Dense blocks
concatenate feature maps of very different ranges, and one int8 scale over the concatenation cost the mDCSRN of
``wgan_kspace`` 0.58 dB (and ``srgan_kspace`` 0.034 dB): so every ``Concat`` stays float as well, and the
convolutions that read it are still quantised at their own inputs (costs measured on 48 validation slices against
OpenVINO float32: ``wgan_kspace`` -0.006 dB, ``srgan_kspace`` -0.013 dB, ``rrdb_kspace`` -0.005 dB). The quantised IR is
cached beside the float one (``<version>/openvino-int8/``), keyed by the SavedModel's fingerprint.
"""

from __future__ import annotations

import contextlib
import io
import logging
from pathlib import Path

import numpy as np

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.extras import import_extra
from heart_sr_tf.inference.hardware import QUANTIZE_PRESETS
from heart_sr_tf.inference.openvino_backend import _openvino, openvino_ir

FLOAT_TAIL = 4  # the last convolutions (at output resolution, and the upsampling head) stay float


def float_scope(model) -> tuple[list[str], list[str]]:
    """``(names, types)`` that stay float: the convolutions fed by the input, the last :data:`FLOAT_TAIL`
    convolutions, every ``Add`` and every ``Concat``."""
    ops = list(model.get_ordered_ops())
    convolutions = [op for op in ops if op.get_type_name() == "Convolution"]
    inputs = {p.get_friendly_name() for p in model.get_parameters()}

    def reads_input(op) -> bool:
        source = op.input_value(0).get_node()
        while source.get_type_name() in ("Convert", "Transpose", "Reshape", "Concat", "Pad", "StridedSlice"):
            if source.get_friendly_name() in inputs:
                return True
            source = source.input_value(0).get_node()
        return source.get_friendly_name() in inputs

    names = {op.get_friendly_name() for op in convolutions if reads_input(op)}
    names |= {op.get_friendly_name() for op in convolutions[-FLOAT_TAIL:]}
    return sorted(names), ["Add", "Concat"]


def quantized_model(folder: Path, calibration: list[np.ndarray], quiet: bool = False, preset: str = "performance"):
    """The int8 OpenVINO model of the SavedModel ``folder``'s IR, quantised on ``calibration`` (LR grids
    ``[1, h, w, 1]``); the caller caches it (``save_ir(model, folder, INT8_KIND)``). ``quiet``: without NNCF's own
    progress bars (drawn on the terminal by rich). ``preset``: NNCF's; ``mixed`` quantises activations
    asymmetrically, which kept ``throughplane_x8`` within the SSIM limit on test."""
    nncf = import_extra("nncf", "quantize: NNCF", "pip install -e '.[int8]'")
    nncf.set_log_level(logging.ERROR)  # its per-node lines are not the user's business
    if not calibration:
        raise HeartSRError("quantize: no calibration slices")
    if preset not in QUANTIZE_PRESETS:
        raise HeartSRError(f"quantize: unknown preset {preset!r}, expected one of {', '.join(QUANTIZE_PRESETS)}")
    ov = _openvino()
    model = ov.Core().read_model(str(openvino_ir(folder)))
    names, types = float_scope(model)
    silence = contextlib.redirect_stdout(io.StringIO()) if quiet else contextlib.nullcontext()
    with silence:
        return nncf.quantize(
            model,
            nncf.Dataset([np.asarray(x, np.float32) for x in calibration]),
            subset_size=len(calibration),
            ignored_scope=nncf.IgnoredScope(names=names, types=types),
            preset=nncf.QuantizationPreset(preset),
        )
