"""The accuracy cost of bfloat16, of OpenVINO and of int8: every shipped model on every slice of the test split,
scored as `evaluate` scores it (the model's own degradation, per-slice metrics on [0, 1], data range 1,
averaged), once per backend and precision, against TensorFlow float32 on the same slices.

    python benchmarks/precision.py --acdc-dir ../shared/data/acdc [--models rrdb_kspace srgan_kspace ...]

int8 is measured for every model that has its int8 twin (`python cli.py quantize MODEL --acdc-dir DIR`).
Limits: PSNR within 0.02 dB and SSIM (7x7) within 0.001 of TensorFlow float32, per region (issue #14); for
int8, 0.03 dB and 0.001 (issue #25).
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHIPPED = [
    "rrdb_kspace",
    "srgan_kspace",
    "wgan_kspace",
    "rrdb",
    "srgan",
    "throughplane_x4",
    "throughplane_x6",
    "throughplane_x8",
    "throughplane_x6_t5",
    "throughplane_x8_t6",
    "throughplane_x6_t4",
    "throughplane_x4_t3",
    "throughplane_x8_t5",
]


LIMITS = {"float32": (0.02, 0.001), "bfloat16": (0.02, 0.001), "int8": (0.03, 0.001)}  # (dB PSNR, SSIM)


def with_int8(path: Path, paths: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """``paths``, and OpenVINO int8 when this model has its int8 twin."""
    if ("openvino", "float32") not in paths:
        return paths
    from heart_sr_tf.export.layout import resolve_model_dir
    from heart_sr_tf.inference.openvino_backend import INT8_KIND, cached_ir

    if cached_ir(resolve_model_dir(path), INT8_KIND) is None:
        print(f"{path.name:<16} no int8 twin (python cli.py quantize {path.name} --acdc-dir DIR adds it)")
        return paths
    return [*paths, ("openvino", "int8")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, default=os.environ.get("HEART_SR_ACDC_DIR"))
    parser.add_argument("--models", nargs="+", default=SHIPPED)
    parser.add_argument("--split", default="test")
    parser.add_argument("--limit", type=int, help="at most this many slices per region (default: all)")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures
    if args.acdc_dir is None:
        sys.exit("error: --acdc-dir or $HEART_SR_ACDC_DIR: the real ACDC folder")

    import numpy as np

    from heart_sr_tf.data.prepare import prepare
    from heart_sr_tf.evaluation.evaluate import iterate_slices
    from heart_sr_tf.export.discovery import find_model
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.metrics import image_metrics

    data = prepare(args.acdc_dir, None, quiet=True).data_dir
    base_paths = [("tensorflow", "float32"), ("tensorflow", "bfloat16")]
    if importlib.util.find_spec("openvino") is not None:
        base_paths += [("openvino", "float32"), ("openvino", "bfloat16")]
    from heart_sr_tf.hardware import cpu_model

    print(f"CPU: {cpu_model()}")
    print(f"{args.split} split of {data}; differences from TensorFlow float32 (limits: {LIMITS})")
    header = f"{'model':<16} {'backend':<11} {'precision':<9} {'region':<6} {'slices':>6} {'PSNR':>7} {'dPSNR':>8}"
    print(header + f" {'SSIM':>7} {'dSSIM':>8}  within")
    worst = {"psnr": 0.0, "ssim": 0.0}
    for name in args.models:
        try:
            path = find_model(Path(name))
        except Exception as exc:  # a model not shipped here
            print(f"{name:<16} skipped: {exc}")
            continue
        paths = with_int8(path, base_paths)
        predictors = [load_predictor(path, backend, precision) for backend, precision in paths]
        degradation = predictors[0].degradation
        rng = np.random.default_rng(0)
        for region in ("full", "heart"):
            scores = [[] for _ in paths]
            for _, hr in iterate_slices(data, region, args.split, args.limit):
                lr, hr = degradation.pair_np(hr, rng)
                x = lr[None, ..., None].astype(np.float32)
                for i, predictor in enumerate(predictors):
                    scores[i].append(image_metrics(predictor(x)[0, : hr.shape[0], : hr.shape[1], 0], hr))
            means = [{k: float(np.mean([s[k] for s in rows])) for k in ("psnr", "ssim")} for rows in scores]
            for (backend, precision), m in zip(paths, means, strict=True):
                dp, ds = m["psnr"] - means[0]["psnr"], m["ssim"] - means[0]["ssim"]
                worst["psnr"], worst["ssim"] = max(worst["psnr"], abs(dp)), max(worst["ssim"], abs(ds))
                limit_psnr, limit_ssim = LIMITS[precision]
                ok = "yes" if abs(dp) <= limit_psnr and abs(ds) <= limit_ssim else "NO"
                print(
                    f"{name:<16} {backend:<11} {precision:<9} {region:<6} {len(scores[0]):>6} {m['psnr']:>7.3f} "
                    f"{dp:>+8.4f} {m['ssim']:>7.4f} {ds:>+8.5f}  {ok}",
                    flush=True,
                )
    print(f"largest differences: {worst['psnr']:.4f} dB PSNR, {worst['ssim']:.5f} SSIM")


if __name__ == "__main__":
    main()
