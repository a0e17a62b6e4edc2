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
    preset: str = "auto",
):  # fmt: skip
    """``preset``: one of NNCF's, or ``auto``: each in turn (``QUANTIZE_PRESETS``) until the check finds one within
    :data:`LIMITS`; when none is, the closest is kept and a warning says so."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.evaluate import iterate_slices
    from heart_sr_tf.export.discovery import find_model
    from heart_sr_tf.export.layout import read_metadata, resolve_model_dir, training_data
    from heart_sr_tf.inference.hardware import QUANTIZE_PRESETS
    from heart_sr_tf.inference.openvino_backend import INT8_KIND, save_int8_check, save_ir
    from heart_sr_tf.inference.quantize import quantized_model
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
    validation = iterate_slices(data, "full", "validation", check) if check else []
    pairs = [degradation.pair_np(hr, np.random.default_rng(1)) for _, hr in validation]
    if check and not pairs:
        raise HeartSRError(f"{data}: the validation split holds no slices to check int8 on (--check 0 skips it)")
    picked = np.linspace(0, len(slices) - 1, min(calibration, len(slices))).round().astype(int)
    lrs = [degradation.pair_np(slices[i], rng)[0][None, ..., None].astype(np.float32) for i in picked]
    presets = list(QUANTIZE_PRESETS) if preset == "auto" else [preset]
    if preset == "auto" and not check:
        presets = presets[:1]
        echo(f"--check 0: nothing to choose a preset by, so NNCF's {presets[0]}")
    reference = _scores(folder, "float32", pairs, quiet) if pairs else []
    tried = {}  # preset -> (int8 model, mean losses against float32)
    for name in presets:
        echo(f"quantizing {folder} to int8 on {len(lrs)} training slices ({degradation.kind} LR, NNCF preset {name})")
        int8 = quantized_model(folder, lrs, quiet, name)
        ir = save_ir(int8, folder, INT8_KIND)
        echo(f"wrote {ir}")
        if not pairs:
            return
        scores = _scores(folder, "int8", pairs, quiet)
        losses = {key: float(np.mean([r[key] - q[key] for r, q in zip(reference, scores)])) for key in LIMITS}
        within = all(losses[key] <= LIMITS[key] for key in LIMITS)
        echo(_check_line(losses, len(pairs), within, name))
        save_int8_check(ir, _check_record(losses, len(pairs), within, name))
        if within:
            return
        tried[name] = (int8, losses)
    closest = closest_preset({name: losses for name, (_, losses) in tried.items()})
    if closest != presets[-1]:
        ir = save_ir(tried[closest][0], folder, INT8_KIND)
        save_int8_check(ir, _check_record(tried[closest][1], len(pairs), False, closest))
    warn(
        f"{folder}: int8 stays beyond the limits with NNCF preset {' and '.join(tried)}; kept {closest}, the "
        "closest to float32. Prefer --precision bfloat16 for this model."
    )


def closest_preset(losses: dict[str, dict[str, float]]) -> str:
    """The preset whose int8 twin is closest to float32: the smallest loss as a share of its limit, taking the
    worse of PSNR and SSIM for each (``losses``: preset -> mean loss per metric)."""
    return min(losses, key=lambda name: max(losses[name][key] / LIMITS[key] for key in LIMITS))


def _scores(folder: Path, precision: str, pairs, quiet: bool) -> list[dict]:
    """Image metrics of the OpenVINO model in ``precision`` on each ``(lr, hr)`` validation pair."""
    from heart_sr_tf.inference.predictor import load_saved_model
    from heart_sr_tf.metrics import image_metrics
    from heart_sr_tf.progress import progress_bar

    predictor = load_saved_model(folder, "openvino", precision)
    scores = []
    with progress_bar(len(pairs), f"check {precision}", "slice", disable=quiet) as bar:
        for lr, hr in pairs:
            height, width = hr.shape
            scores.append(image_metrics(predictor(lr[None, ..., None].astype(np.float32))[0, :height, :width, 0], hr))
            bar.update(1)
    return scores


def _check_record(losses: dict, count: int, within: bool, preset: str) -> dict:
    """What ``--precision auto`` reads before it picks the twin (only when ``within``, on a CPU with the same int8
    instructions)."""
    from heart_sr_tf.hardware import cpu_model, int8_isa

    return {
        "preset": preset,
        "validation_slices": count,
        "psnr_loss_db": round(losses["psnr"], 5),
        "ssim_loss": round(losses["ssim"], 6),
        "limits": dict(LIMITS),
        "within": within,
        "checked_on": cpu_model(),
        "int8_isa": int8_isa(),  # --precision auto trusts the check on CPUs of this class only
    }


def _check_line(losses: dict, count: int, within: bool, preset: str) -> str:
    from heart_sr_tf.hardware import cpu_model

    return (
        f"int8 ({preset}) against OpenVINO float32 on {count} validation slices ({cpu_model()}): "
        f"{-losses['psnr']:+.3f} dB PSNR, {-losses['ssim']:+.4f} SSIM "
        f"({'within' if within else 'BEYOND'} the limits of {LIMITS['psnr']} dB and {LIMITS['ssim']} SSIM)"
    )
