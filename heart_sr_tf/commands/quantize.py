"""``quantize``: an exported generator's int8 twin for OpenVINO, calibrated on real LR slices of the training
split, and checked against float32 on validation slices before anyone relies on it."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heart_sr_tf.commands.data import resolve_data
from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.errors import HeartSRError

LIMITS = {"psnr": 0.03, "ssim": 0.001}  # the largest losses against float32 that int8 may cost


def quantize_model(
    model, acdc_dir, data_dir, calibration: int, check: int, quiet: bool, echo: Echo, warn: Echo,
    preset: str = "performance",
):  # fmt: skip
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.evaluate import iterate_slices
    from heart_sr_tf.export.discovery import find_model
    from heart_sr_tf.export.layout import read_metadata, resolve_model_dir, training_data
    from heart_sr_tf.hardware import cpu_model
    from heart_sr_tf.inference.predictor import load_saved_model
    from heart_sr_tf.inference.quantize import quantize
    from heart_sr_tf.metrics import image_metrics
    from heart_sr_tf.progress import progress_bar
    from heart_sr_tf.training.runs import is_run_folder

    source = find_model(Path(model))
    if is_run_folder(source):
        raise HeartSRError(f"{model}: a training run; export it first, then quantize the export")
    folder = resolve_model_dir(source)
    meta = read_metadata(folder)
    degradation = Degradation.from_metadata(meta, str(folder))
    if (training_data(meta) or {}).get("dims") == 3:
        raise HeartSRError(f"{folder}: a 3D model; int8 quantisation is for 2D generators (calibrated on 2D slices)")
    data = resolve_data(acdc_dir, data_dir, warn=warn)
    rng = np.random.default_rng(0)
    slices = [hr for _, hr in iterate_slices(data, "full", "train")]
    if not slices:
        raise HeartSRError(f"{data}: the training split holds no slices to calibrate on")
    picked = np.linspace(0, len(slices) - 1, min(calibration, len(slices))).round().astype(int)
    lrs = [degradation.pair_np(slices[i], rng)[0][None, ..., None].astype(np.float32) for i in picked]
    echo(f"quantizing {folder} to int8 on {len(lrs)} training slices ({degradation.kind} LR, NNCF preset {preset})")
    path = quantize(folder, lrs, quiet, preset)
    echo(f"wrote {path}")
    if not check:
        return
    reference, int8 = load_saved_model(folder, "openvino", "float32"), load_saved_model(folder, "openvino", "int8")
    losses = {"psnr": [], "ssim": []}
    with progress_bar(check, "check int8", "slice", disable=quiet) as bar:
        for _, hr in iterate_slices(data, "full", "validation", check):
            lr, hr_cropped = degradation.pair_np(hr, np.random.default_rng(1))
            height, width = hr_cropped.shape
            grid = lr[None, ..., None].astype(np.float32)
            scores = [image_metrics(p(grid)[0, :height, :width, 0], hr_cropped) for p in (reference, int8)]
            for key in losses:
                losses[key].append(scores[0][key] - scores[1][key])
            bar.update(1)
    mean = {key: float(np.mean(values)) for key, values in losses.items()}
    within = all(mean[key] <= LIMITS[key] for key in LIMITS)
    echo(
        f"int8 against OpenVINO float32 on {len(losses['psnr'])} validation slices ({cpu_model()}): "
        f"{-mean['psnr']:+.3f} dB PSNR, {-mean['ssim']:+.4f} SSIM "
        f"({'within' if within else 'BEYOND'} the limits of {LIMITS['psnr']} dB and {LIMITS['ssim']} SSIM)"
    )
