"""Do the adjacent slices pay, as input channels of the k-space generator? (issue #22's last untried lever)

Two fine-tunes of the same trained generator (default ``saved_models/rrdb_kspace/1``), on the same batches, steps,
learning rate and seed:

- ``single``, the control: the network as it is, one slice in;
- ``adjacent``: its first convolution widened to three channels, slices z-1, z and z+1 of the same frame (each
  degraded on its own; the first and last slices repeat themselves). The new kernel slices start at zero, so the
  network starts as exactly the trained one and learns only what the neighbours add.

Training data: every ED/ES slice of the training patients in the 8 symmetries of the square (applied before the
degradation, so LR and HR stay aligned), HR patches 96 x 96, batch 8, L1, Adam with cosine decay from 1e-4 to
1e-5. Each arm's weights are saved in OUT.

Then, on the validation patients (choose on validation): per-slice PSNR / SSIM (data range 1, averaged over every
ED/ES slice, 255 x 255 as the k-space x3 degradation crops) of the trained network and both arms, and with
``--segmenter`` (default: the shipped one) each arm's clinical figures as ``evaluate --clinical`` reports them.

    python benchmarks/adjacent_slices.py --acdc-dir ../shared/data/acdc --out runs/adjacent [--steps 4000]

Run each arm in its own process to use two cores (``--arm single``, ``--arm adjacent``, then ``--arm none`` to
score what OUT holds); about 1.6 steps per second each on 2 cores of an AMD EPYC.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

ARMS = {"single": 1, "adjacent": 3}
PATCH, BATCH = 32, 8  # LR patch (HR 96) and batch


def neighbour_stacks(lr):
    """``[n, h, w]`` slices of one frame -> ``[n, h, w, 3]``: each slice between its neighbours."""
    import numpy as np

    below = np.concatenate([lr[:1], lr[:-1]])
    above = np.concatenate([lr[1:], lr[-1:]])
    return np.stack([below, lr, above], axis=-1)


def training_pairs(acdc_dir: Path, degradation):
    """(lr ``[n, h, w, 3]``, hr ``[n, H, W, 1]``) over every ED/ES slice of the training patients, each frame in
    the 8 symmetries of the square."""
    import numpy as np

    from heart_sr_tf.data.segmentation import labelled_frames, split_of

    lrs, hrs = [], []
    for patient in split_of(acdc_dir, "train"):
        for frame in labelled_frames(patient):
            for turns in range(4):
                for flip in (False, True):
                    view = np.rot90(frame.image, turns, axes=(1, 2))
                    view = view[:, :, ::-1] if flip else view
                    pairs = [degradation.pair_np(np.ascontiguousarray(s)) for s in view]
                    lrs.append(neighbour_stacks(np.stack([p[0] for p in pairs]).astype(np.float32)))
                    hrs.append(np.stack([p[1] for p in pairs]).astype(np.float32)[..., None])
    return np.concatenate(lrs), np.concatenate(hrs)


def network(init: Path, channels: int):
    """The 4 x 32 k-space RRDB generator (``rrdb_kspace``'s) with ``init``'s weights: as it is (1 channel), or with
    3 input channels whose neighbours' kernel slices start at zero (the bicubic skip on the centre slice)."""
    import keras
    import numpy as np

    from heart_sr_tf.models.layers import PixelShuffle, image_output
    from heart_sr_tf.models.rrdb import rrdb, rrdb_generator
    from heart_sr_tf.training.runs import initialise_generator

    one = rrdb_generator(scale=3, blocks=4, features=32, growth=16, residual_scale=0.2, bicubic_skip=True)
    print(f"{initialise_generator(init, one, (3, 3))}: {channels} channel(s)", flush=True)
    if channels == 1:
        return one

    def conv(filters: int, name: str, **kwargs):
        return keras.layers.Conv2D(filters, 3, padding="same", name=name, **kwargs)

    lr = keras.Input((None, None, channels), name="lr_image")
    first = conv(32, "conv_first")(lr)
    x = first
    for b in range(4):
        x = rrdb(x, 32, 16, 0.2, f"rrdb{b}")
    x = keras.layers.Add(name="trunk_add")([first, conv(32, "conv_body")(x)])
    x = keras.layers.LeakyReLU(0.2, name="up_act")(PixelShuffle(3, name="pixel_shuffle")(conv(288, "conv_up")(x)))
    x = keras.layers.LeakyReLU(0.2, name="hr_act")(conv(32, "conv_hr")(x))
    centre = keras.layers.Lambda(lambda t: t[..., channels // 2 : channels // 2 + 1], name="centre")(lr)
    three = keras.Model(lr, image_output(conv(1, "conv_last")(x), centre, 3, True))
    values = {w.path: w.numpy() for w in one.weights}
    for w in three.weights:
        value = values[w.path]
        if w.path == "conv_first/kernel":
            value = np.concatenate([np.zeros_like(value), value, np.zeros_like(value)], axis=2)
        w.assign(value)
    return three


def train(arm: str, init: Path, acdc_dir: Path, steps: int, out: Path, degradation) -> Path:
    """Fine-tune one arm; its weights in OUT/ARM.weights.h5."""
    import keras
    import numpy as np
    import tensorflow as tf

    channels = ARMS[arm]
    lr_all, hr_all = training_pairs(acdc_dir, degradation)
    model = network(init, channels)
    optimiser = keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(1e-4, steps, alpha=0.1))

    @tf.function
    def step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.abs(model(x, training=True) - y))
        grads = tape.gradient(loss, model.trainable_weights)
        optimiser.apply_gradients(zip(grads, model.trainable_weights, strict=True))
        return loss

    rng = np.random.default_rng(44)  # the same batches for both arms
    n, size = len(lr_all), lr_all.shape[1]
    losses, clock = [], time.perf_counter()
    for k in range(1, steps + 1):
        idx = rng.integers(0, n, BATCH)
        rows, cols = rng.integers(0, size - PATCH + 1, BATCH), rng.integers(0, size - PATCH + 1, BATCH)
        where = list(zip(idx, rows, cols, strict=True))
        x = np.stack([lr_all[i, r : r + PATCH, c : c + PATCH] for i, r, c in where])
        y = np.stack([hr_all[i, 3 * r : 3 * (r + PATCH), 3 * c : 3 * (c + PATCH)] for i, r, c in where])
        x = x if channels == 3 else x[..., 1:2]
        losses.append(float(step(tf.constant(x), tf.constant(y))))
        if k % 500 == 0 or k == steps:
            rate = k / (time.perf_counter() - clock)
            print(f"{arm} step {k}/{steps}: L1 {np.mean(losses[-500:]):.5f} ({rate:.2f} steps/s)", flush=True)
    path = out / f"{arm}.weights.h5"
    model.save_weights(path)
    return path


def _paired(differences, groups) -> str:
    """The mean difference per slice, with a 95% interval from resampling patients."""
    import numpy as np

    ids = np.unique(groups)
    members = [differences[groups == g] for g in ids]
    rng = np.random.default_rng(0)
    boot = [np.concatenate([members[i] for i in rng.integers(0, len(ids), len(ids))]).mean() for _ in range(1000)]
    return f"{differences.mean():+.3f} [{np.percentile(boot, 2.5):+.3f}, {np.percentile(boot, 97.5):+.3f}]"


class _Arm:
    """A fine-tuned arm as ``evaluate --clinical``'s predictor: one frame's LR slices ``[n, h, w, 1]`` in."""

    def __init__(self, model, channels: int, source: str):
        self.model, self.channels, self.source = model, channels, source

    def __call__(self, lr):
        import numpy as np

        x = neighbour_stacks(lr[..., 0]) if self.channels == 3 else lr
        return np.clip(np.concatenate([self.model(x[i : i + 8]).numpy() for i in range(0, len(x), 8)]), 0, 1)


def score(arms: dict, acdc_dir: Path, segmenter, degradation) -> None:
    """Each arm on the validation patients: image metrics per slice, then the clinical figures."""
    import numpy as np

    from heart_sr_tf.data.segmentation import split_of
    from heart_sr_tf.evaluation.clinical import clinical_evaluation, clinical_markdown, degraded_frames
    from heart_sr_tf.metrics import image_metrics

    scores: dict[str, list] = {name: [] for name in arms}
    patients: list[int] = []  # each slice's patient, to resample patients (slices of one patient go together)
    rng = np.random.default_rng(0)
    for k, patient in enumerate(split_of(acdc_dir, "validation")):
        for frame in degraded_frames(patient, degradation, rng):
            hr = frame.images["hr"]
            patients += [k] * len(hr)
            for name, arm in arms.items():
                scores[name] += [
                    image_metrics(sr[..., 0], h) for sr, h in zip(arm(frame.lr[..., None]), hr, strict=True)
                ]
    print(f"validation, {len(patients)} slices; degradation: {degradation.describe()}")
    psnrs = {name: np.array([s["psnr"] for s in values]) for name, values in scores.items()}
    for name, values in scores.items():
        print(f"{name:<48} PSNR {psnrs[name].mean():.3f} dB  SSIM {np.mean([s['ssim'] for s in values]):.4f}")
    names = list(arms)
    pairs = [(name, names[0]) for name in names[1:]]  # each fine-tune against the network as trained
    if len(names) == 3:
        pairs.append((names[2], names[1]))  # adjacent against single
    for a, b in pairs:
        print(f"{a} minus {b}: {_paired(psnrs[a] - psnrs[b], np.array(patients))} dB PSNR")
    if segmenter is None:
        return
    for name, arm in arms.items():
        (result,) = clinical_evaluation(arm, [segmenter], acdc_dir, "validation", 0, degradation, quiet=True)
        print(f"\n## {name}\n" + clinical_markdown(result, result.summary()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True, help="a folder for the arms' weights")
    parser.add_argument("--init", type=Path, default=ROOT / "saved_models" / "rrdb_kspace" / "1")
    parser.add_argument("--steps", type=int, default=4000)
    parser.add_argument("--arm", choices=[*ARMS, "both", "none"], default="both", help="none: score OUT only")
    parser.add_argument("--segmenter", default="segmenter", help="'' for image metrics only")
    args = parser.parse_args()
    import numpy as np

    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.inference.segmenter import Segmenter

    degradation = Degradation(kind="kspace", factor=3)
    args.out.mkdir(parents=True, exist_ok=True)
    for arm in ARMS if args.arm == "both" else [args.arm] if args.arm in ARMS else []:
        train(arm, args.init, args.acdc_dir, args.steps, args.out, degradation)
    arms = {f"{args.init} (as trained)": _Arm(network(args.init, 1), 1, str(args.init))}
    for arm, channels in ARMS.items():
        if (args.out / f"{arm}.weights.h5").exists():
            model = network(args.init, channels)
            model.load_weights(args.out / f"{arm}.weights.h5")
            if channels > 1:  # how much the network uses each slice: its first-layer kernel's norm per channel
                kernel = model.get_layer("conv_first").kernel.numpy()
                norms = ", ".join(f"{np.linalg.norm(kernel[:, :, c]):.3f}" for c in range(channels))
                print(f"{arm}: conv_first kernel norm per input slice (z-1, z, z+1): {norms}")
            arms[f"{arm} ({args.steps} steps)"] = _Arm(model, channels, f"{arm} fine-tune")
    score(arms, args.acdc_dir, Segmenter(args.segmenter) if args.segmenter else None, degradation)


if __name__ == "__main__":
    main()
