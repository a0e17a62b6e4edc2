"""Slices thinner than their spacing: how each shipped through-plane model of one g does on stacks whose slabs
are t of its g rows thick (a gap of g - t rows between slices), next to cubic along the axis.

    python benchmarks/throughplane_gaps.py --acdc-dir ../shared/data/acdc [--g 6] [--split validation]
        [--thickness 6 --thickness 5 ...] [--limit N]

Every in-plane slice of the split (256x256, the protocol's [0, 1] scaling) is degraded along its first axis with
g and each t (``through_plane``: LR row r the mean of t HR rows centred on row g*r; data/thick_slices.py), and
upscaled by every shipped ``throughplane_x<g>`` model (t = g) and ``throughplane_x<g>_t<t>``; each is scored
per slice (PSNR, SSIM 7x7, data range 1) and averaged, full slices and heart boxes. Cubic is OpenCV's kernel
along the axis, the LR rows placed at rows g*r, as `evaluate` scores every through-plane model. `upscale
--through-plane` picks the model whose t is nearest the stack's slab (its SliceThickness over its spacing).
No speed figure: nothing here is timed.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, required=True)
    parser.add_argument("--g", type=int, default=6)
    parser.add_argument("--split", default="validation", choices=("validation", "test"))
    parser.add_argument("--thickness", type=int, action="append", help="slabs of t rows (default: the models')")
    parser.add_argument("--limit", type=int, default=None, help="the first N slices of each roi only")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from heart_sr_tf.data.prepare import default_data_dir, prepare
    from heart_sr_tf.evaluation.evaluate import evaluate
    from heart_sr_tf.export.discovery import shipped_model_dirs
    from heart_sr_tf.inference.predictor import load_local_model
    from heart_sr_tf.volumes.through_plane import available_models

    models = {t: path for (g, t), path in sorted(available_models(shipped_model_dirs()).items()) if g == args.g}
    if not models:
        sys.exit(f"no shipped through-plane model of g = {args.g}")
    data_dir = default_data_dir(args.acdc_dir)
    prepare(args.acdc_dir, data_dir, quiet=True)
    predictors = {t: load_local_model(path, "tensorflow", "float32") for t, path in models.items()}
    names = {t: path.name for t, path in models.items()}
    thicknesses = args.thickness or sorted(models, reverse=True)
    rois = ("full", "heart")
    scores: dict = {}
    for t in thicknesses:
        for model_t, predictor in predictors.items():
            degradation = dataclasses.replace(predictor.degradation, thickness=t)
            result = evaluate(predictor, data_dir, args.split, rois, args.limit, quiet=False, degradation=degradation)
            for roi in rois:
                for method in ("model", "cubic"):
                    rows = [r for r in result.rows if r["roi"] == roi and r["method"] == method]
                    key = (t, roi, names[model_t] if method == "model" else "cubic")
                    scores[key] = (float(np.mean([r["psnr"] for r in rows])), float(np.mean([r["ssim"] for r in rows])))
    print(f"\n{args.split} split, g = {args.g}: PSNR (dB) / SSIM 7x7, and each model's gain over cubic (cv2)")
    for roi in rois:
        print(f"\n{roi}\n")
        columns = [names[t] for t in sorted(models, reverse=True)]
        print("| slabs (t of g rows) | cubic (cv2) | " + " | ".join(f"`{c}`" for c in columns) + " |")
        print("|---" * (2 + len(columns)) + "|")
        for t in thicknesses:
            cubic = scores[t, roi, "cubic"]
            cells = [
                f"{scores[t, roi, c][0]:.2f} / {scores[t, roi, c][1]:.4f} "
                f"({scores[t, roi, c][0] - cubic[0]:+.2f} / {scores[t, roi, c][1] - cubic[1]:+.3f})"
                for c in columns
            ]
            print(f"| {t} of {args.g} | {cubic[0]:.2f} / {cubic[1]:.4f} | " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
