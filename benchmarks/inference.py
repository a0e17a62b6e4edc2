"""Inference speed of an exported generator on this machine.

    python benchmarks/inference.py [--model saved_models/rrdb] [--cine PATH_TO_patient090_4d.nii.gz]

Prints slices per second on whole 256x256 slices (86x86 LR grids in, 258x258 out) and the seconds
to upscale a whole cine (default: patient090 under $HEART_SR_ACDC_DIR). Goal on 2 cores: a
300-slice cine in under 30 s.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, default=Path("saved_models/rrdb"))
    parser.add_argument("--cine", type=Path)
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    import nibabel as nib
    import numpy as np

    from heart_sr_tf.serving.predictor import load_predictor
    from heart_sr_tf.serving.upscale import upscale_nifti

    predictor = load_predictor(args.model)
    lr = np.random.default_rng(0).random((args.batch_size, 86, 86, 1)).astype(np.float32)
    predictor(lr)  # warm up
    start = time.perf_counter()
    done = 0
    while done < args.slices:
        predictor(lr)
        done += len(lr)
    rate = done / (time.perf_counter() - start)
    print(f"{os.cpu_count()} CPU cores, model {predictor.source}")
    print(f"{rate:.2f} slices/s on whole 256x256 slices (batch {args.batch_size})")
    cine = args.cine
    if cine is None and os.environ.get("HEART_SR_ACDC_DIR"):
        cine = Path(os.environ["HEART_SR_ACDC_DIR"]) / "training" / "patient090" / "patient090_4d.nii.gz"
    if cine is None or not cine.exists():
        print("no cine given (--cine or $HEART_SR_ACDC_DIR): skipped the whole-cine timing")
        return
    shape = nib.load(str(cine)).shape
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        upscale_nifti(cine, Path(tmp) / "out.nii.gz", predictor, batch_size=args.batch_size, quiet=True)
        seconds = time.perf_counter() - start
    slices = int(np.prod(shape[2:]))
    print(f"{seconds:.1f} s to upscale {cine.name} {shape} ({slices} slices, {slices / seconds:.2f} slices/s)")
    print(f"goal: a 300-slice cine in under 30 s; at this rate and size: {300 / (slices / seconds):.0f} s")


if __name__ == "__main__":
    main()
