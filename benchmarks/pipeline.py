"""Training pairs per second out of the tf.data pipeline on this machine (goal: >= 2,000 of 96x96 on 2 cores).

python benchmarks/pipeline.py [--acdc-dir DIR] [--batches 200] [--degradation decimation|kspace]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, help="ACDC folder (default: the built-in phantoms)")
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--patch", type=int, default=96)
    parser.add_argument("--roi", default="full", choices=("full", "heart"))
    parser.add_argument("--degradation", default="decimation", choices=("decimation", "kspace"))
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures

    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.data.pipeline import slice_dataset, train_pairs
    from heart_sr_tf.data.prepare import phantom_dir, prepare
    from heart_sr_tf.hardware import cpu_model

    source = args.acdc_dir or phantom_dir()
    report = prepare(source, quiet=True)
    slices = slice_dataset(report.data_dir, args.roi, "train")
    degradation = Degradation(args.degradation, 3)
    ds = train_pairs(slices, patch=args.patch, batch_size=args.batch_size, degradation=degradation)
    it = iter(ds)
    for _ in range(20):  # warm up: fill the shuffle buffer and the prefetch
        next(it)
    start = time.perf_counter()
    for _ in range(args.batches):
        next(it)
    elapsed = time.perf_counter() - start
    pairs = args.batches * args.batch_size
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    print(f"data: {source} ({args.roi}), degradation: {degradation.describe()}")
    print(f"{pairs / elapsed:.0f} training pairs/s of {args.patch}x{args.patch} (goal >= 2000)")


if __name__ == "__main__":
    main()
