"""Training pairs per second and the share of step time spent waiting for data, on this machine.

    python benchmarks/train_step.py [--acdc-dir DIR] [--steps 20] [--paper-steps 2] [--paper-batch 2]

Runs the CPU config (srgan_cpu) and the paper-sized one (srgan_paper,
without its VGG loss, whose weights cannot be downloaded here, and in float32 on a CPU), both in
adversarial mode. Goal: under 5% of step time waiting for data.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def measure(config, data_dir, steps: int, warmup: int = 2) -> tuple[float, float]:
    import tensorflow as tf

    from heart_sr_tf.data.pipeline import slice_dataset, train_pairs
    from heart_sr_tf.training.build import build_srgan

    d = config.data
    model = build_srgan(config, tf.distribute.get_strategy())
    step = tf.function(model.train_step)
    batches = iter(
        train_pairs(
            slice_dataset(data_dir, "full", "train", shuffle_files=True),
            d.patch,
            config.degradation.factor,
            d.batch_size,
            d.patches_per_slice,
            d.shuffle_buffer,
        )
    )
    for _ in range(warmup):
        step(next(batches))
    waiting = total = 0.0
    for _ in range(steps):
        t0 = time.perf_counter()
        batch = next(batches)
        t1 = time.perf_counter()
        logs = step(batch)
        float(logs["g_loss"])  # wait for the step to finish
        t2 = time.perf_counter()
        waiting += t1 - t0
        total += t2 - t0
    return steps * d.batch_size / total, waiting / total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, help="ACDC folder (default: the built-in phantoms)")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--paper-steps", type=int, default=2)
    parser.add_argument("--paper-batch", type=int, default=2, help="the paper config's batch is 16: too slow on a CPU")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures

    from heart_sr_tf.config import load_config
    from heart_sr_tf.data.prepare import phantom_dir, prepare

    data_dir = prepare(args.acdc_dir or phantom_dir(), quiet=True).data_dir
    from heart_sr_tf.hardware import cpu_model

    print(f"{os.cpu_count()} cores of {cpu_model()}, data {args.acdc_dir or 'phantoms'}")
    for name, steps in (("srgan_cpu", args.steps), ("srgan_paper", args.paper_steps)):
        if steps <= 0:
            continue
        config = load_config(name)
        config.loss.feature_weight = 0.0
        config.train.mixed_precision = "no"
        if name == "srgan_paper":
            config.data.batch_size = args.paper_batch
        pairs, waiting = measure(config, data_dir, steps)
        size = f"{config.generator.blocks}x{config.generator.features}"
        patch = f"{config.data.patch}x{config.data.patch}"
        print(
            f"{name:12s} generator {size:6s} batch {config.data.batch_size:3d} of {patch}:"
            f" {pairs:7.1f} training pairs/s, {100 * waiting:4.1f}% of step time waiting for data (goal < 5%)"
        )


if __name__ == "__main__":
    main()
