"""Does temporal context pay? A frames-axis 3D model scored on whole held-out cines twice: with each frame's real
neighbours (as ``upscale`` runs it), and with the centre frame repeated in their place (the same weights, no
temporal information), next to a 2D model and zero-filling on the same frames.

    python benchmarks/temporal_context.py --acdc-dir ../shared/data/acdc \\
        --cine-dir ../shared/data/acdc-cine-cropped --patients patient062 \\
        [--model saved_models/wgan3d_kspace] [--compare wgan_kspace --compare rrdb_kspace]

Protocol: every frame of every slice, each on the grid of the 2D slices (see heart_sr_tf/data/cine.py), degraded
by the model's own degradation; per-frame PSNR / SSIM on [0, 1] with data range 1, averaged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np

    from heart_sr_tf.data.cine import cine_slices, degraded_cines
    from heart_sr_tf.inference.predictor import Predictor, load_predictor
    from heart_sr_tf.metrics import image_metrics

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, required=True)
    parser.add_argument("--cine-dir", type=Path, action="append", default=[])
    parser.add_argument("--patients", required=True, help="comma-separated")
    parser.add_argument("--model", default="wgan3d_kspace")
    parser.add_argument("--compare", action="append", default=[])
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures

    model = load_predictor(Path(args.model))
    if model.axis != "frames":
        parser.error(f"{args.model} is not a model along cine frames")
    roots = [args.acdc_dir, *args.cine_dir]
    cines = degraded_cines(cine_slices(roots, roots[:1], args.patients.split(",")), model.degradation)
    still = Predictor(
        model.fn, model.scale, model.source + " (centre frame repeated)", model.info, True, model.degradation,
        axis="frames", depth=model.depth,
    )  # fmt: skip

    def frames_of(predictor, lr, repeat: bool):
        if not repeat:
            return predictor.frames(lr)
        windows = np.repeat(np.moveaxis(lr, 2, 0)[..., None], predictor.depth, axis=3)[..., None]
        return np.moveaxis(predictor.volume(windows)[:, :, :, predictor.depth // 2, 0], 0, 2)

    methods = {f"{args.model} (neighbours)": (model, False), f"{args.model} (centre repeated)": (still, True)}
    methods.update({name: (load_predictor(Path(name)), False) for name in args.compare})
    scores: dict[str, list[dict]] = {name: [] for name in (*methods, "zero-filled")}
    for _, lr, hr in cines:
        outputs = {name: frames_of(p, lr, repeat) for name, (p, repeat) in methods.items()}
        for t in range(hr.shape[2]):
            target = hr[:, :, t]
            for name, out in outputs.items():
                scores[name].append(image_metrics(out[: target.shape[0], : target.shape[1], t], target))
            zero = model.degradation.baseline_images(lr[:, :, t], target.shape)["zero_fill"]
            scores["zero-filled"].append(image_metrics(zero, target))
    frames = len(scores["zero-filled"])
    zf = {k: float(np.mean([s[k] for s in scores["zero-filled"]])) for k in ("psnr", "ssim")}
    print(f"{args.patients}: {len(cines)} slice cines, {frames} frames; degradation: {model.degradation.describe()}")
    print(f"{'method':<44} {'PSNR':>7} {'SSIM':>7} {'vs zero-filled':>22}")
    for name, values in scores.items():
        mean = {k: float(np.mean([s[k] for s in values])) for k in ("psnr", "ssim")}
        gain = f"{mean['psnr'] - zf['psnr']:+.2f} dB / {mean['ssim'] - zf['ssim']:+.4f}"
        print(f"{name:<44} {mean['psnr']:>7.2f} {mean['ssim']:>7.4f} {gain:>22}")


if __name__ == "__main__":
    main()
