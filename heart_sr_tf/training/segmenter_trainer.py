"""Segmenter training in a run folder: one stage of ``train.steps`` through the training loop, validated by 3D
Dice per frame on the validation patients (the run's ``data_dir`` is the ACDC folder, labels included)."""

from __future__ import annotations

import weakref
from collections.abc import Callable
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from heart_sr_tf.cardiac_metrics import STRUCTURES, dice_scores
from heart_sr_tf.data.segmentation import CLASSES, load_split, segmentation_dataset, slice_arrays
from heart_sr_tf.errors import DataError
from heart_sr_tf.models.registry import make_segmenter
from heart_sr_tf.models.unet import segment_logits
from heart_sr_tf.training.build import learning_rate, precision_note, set_precision
from heart_sr_tf.training.distribute import make_strategy
from heart_sr_tf.training.loop import Segment, TrainingLoop, TrainResult
from heart_sr_tf.training.runs import Run
from heart_sr_tf.training.segmenter import SegmenterTrainer

_LABEL_FUNCTIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # network -> {depth: its tf.function}


def predict_labels(network: keras.Model, images: np.ndarray, depth: int, batch_size: int = 8) -> np.ndarray:
    """Label maps ``[N, h, w]`` (uint8) for images ``[N, h, w, 1]`` in [0, 1]. The traced function is kept per
    network: one made at every validation was traced anew each time, and TensorFlow warned about the retracing
    among the training's own lines."""
    functions = _LABEL_FUNCTIONS.setdefault(network, {})
    if depth not in functions:
        held = weakref.ref(network)  # (a strong reference in the value would keep the key alive for ever)
        functions[depth] = tf.function(
            lambda x: tf.argmax(segment_logits(held(), x, 2**depth), axis=-1), reduce_retracing=True
        )
    fn = functions[depth]
    out = [fn(tf.constant(images[i : i + batch_size])).numpy() for i in range(0, len(images), batch_size)]
    return np.concatenate(out).astype(np.uint8)


class SegmentationValidator:
    """The validation patients' labelled frames, loaded once; ``evaluate`` gives the mean 3D Dice per structure."""

    baselines: dict = {}

    def __init__(self, acdc_dir: Path, seed: int, patients: int, depth: int):
        self.frames = load_split(acdc_dir, "validation", seed, limit=patients)
        if not self.frames:
            raise DataError(acdc_dir, "the validation split holds no labelled frames")
        self.images, _ = slice_arrays(self.frames)
        self.depth = depth

    def __len__(self) -> int:
        return len(self.frames)

    def evaluate(self, network) -> dict[str, float]:
        labels = predict_labels(network, self.images, self.depth)
        scores, start = [], 0
        for frame in self.frames:
            n = len(frame.labels)
            scores.append(dice_scores(labels[start : start + n], frame.labels))
            start += n
        out = {f"dice_{name}": float(np.mean([s[name] for s in scores])) for name in STRUCTURES}
        out["dice_mean"] = float(np.mean(list(out.values())))
        return out

    def triplet(self, network, index: int = 0) -> np.ndarray:
        """``[1, H, 3W, 1]``: the image | predicted labels | true labels (labels scaled to [0, 1])."""
        frame = self.frames[index]
        z = len(frame.labels) // 2
        image = frame.image[z][..., None]
        predicted = predict_labels(network, image[None], self.depth)[0]
        row = [image, predicted[..., None] / 3.0, frame.labels[z][..., None] / 3.0]
        return np.concatenate(row, axis=1)[None].astype(np.float32)


def train_segmenter(
    run: Run, strategy_name: str = "default", quiet: bool = False, report: Callable[[str], None] = lambda line: None
) -> TrainResult:
    """Train ``run.config.train.steps`` steps, continuing at the run's saved step, if any."""
    config, acdc_dir = run.config, run.data_dir
    strategy = make_strategy(strategy_name)
    keras.utils.set_random_seed(config.train.seed)
    if note := precision_note(config):
        report(note)
    set_precision(config)
    with strategy.scope():
        network = make_segmenter(config)
        o = config.optim
        optimizer = keras.optimizers.Adam(learning_rate(o.lr, config.train.steps, o.schedule, o.final_lr_fraction))
        if config.train.mixed_precision == "float16":
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        model = SegmenterTrainer(network, len(CLASSES))
        model.compile(optimizer, config.loss.ce_weight, config.loss.dice_weight)
        optimizer.build(network.trainable_variables)
    validator = SegmentationValidator(
        acdc_dir, config.data.split_seed, config.train.validation_patients, config.network.depth
    )
    loop = TrainingLoop(run, model, strategy, validator, quiet)
    restored = loop.restore()
    if restored:
        report(f"resumed from {restored} at step {loop.step}")
    images, labels = slice_arrays(load_split(acdc_dir, "train", config.data.split_seed))
    report(f"training slices: {len(images)} (full resolution, training patients only)")

    def datasets(_name: str):
        d = config.data
        return segmentation_dataset(images, labels, d.crop, d.batch_size, config.train.seed)

    return loop.train(lambda step: Segment(0, "segment", "segment", "train"), config.train.steps, datasets)
