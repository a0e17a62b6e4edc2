"""WGAN-GP training in a run folder: the five-phase controller as a schedule for the training loop.

Every step asks :func:`action_at` what trains; the phase is derived from the saved global step, so a
resumed run continues its phase at the right step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.pipeline import slice_dataset, train_pairs, train_volumes
from heart_sr_tf.data.prepare import builder
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.training.build import build_wgan
from heart_sr_tf.training.distribute import make_strategy
from heart_sr_tf.training.loop import Segment, TrainingLoop, TrainResult
from heart_sr_tf.training.phases import action_at
from heart_sr_tf.training.runs import Run
from heart_sr_tf.training.validation import Validator


def phase_schedule(phases) -> Callable[[int], Segment]:
    def at(step: int) -> Segment:
        action = action_at(step, phases)
        return Segment(action.phase, f"phase{action.phase}-{action.mode}", action.mode, "train")

    return at


def training_data(config, data_dir: Path):
    """2D: patches of the stored training slices. 3D: volumes of the training patients, read from their NIfTI files."""
    d = config.data
    if d.dims == 2:
        slices = slice_dataset(data_dir, "full", "train", shuffle_files=True)
        degradation = Degradation.from_config(config)
        return train_pairs(
            slices, d.patch, d.scale, d.batch_size, d.patches_per_slice, d.shuffle_buffer, degradation=degradation
        )
    metadata = builder(data_dir, "full").info.metadata
    source = metadata.get("source")
    if not source or not Path(source).is_dir():
        raise HeartSRError(f"{data_dir}: 3D training reads the NIfTI files, but their folder {source!r} is gone")
    train_ids = {pid for pid, split in metadata["assignment"].items() if split == "train"}
    return train_volumes(
        Path(source),
        d.axis,
        d.patch,
        d.depth,
        d.scale,
        d.batch_size,
        d.patches_per_slice,
        min(d.shuffle_buffer, 256),
        patient_ids=train_ids,
    )


def train_wgan(
    run: Run, strategy_name: str = "default", quiet: bool = False, report: Callable[[str], None] = lambda line: None
) -> TrainResult:
    config, data_dir = run.config, run.data_dir
    strategy = make_strategy(strategy_name)
    keras.utils.set_random_seed(config.train.seed)
    model = build_wgan(config, strategy)
    validator = Validator(data_dir, Degradation.from_config(config), config.data.validation_slices)
    loop = TrainingLoop(run, model, strategy, validator, quiet)
    schedule = phase_schedule(config.phases)
    restored = loop.restore()
    if restored:
        report(f"resumed from {restored} at step {loop.step}, {schedule(loop.step).name}")
    return loop.train(schedule, config.train.steps, lambda _: training_data(config, data_dir))
