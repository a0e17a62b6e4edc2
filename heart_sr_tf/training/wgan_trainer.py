"""WGAN-GP training driven by the five-phase controller, in a run folder shared with the SRGAN machinery.

Every step asks :func:`action_at` what trains, then runs the matching compiled step under the
strategy. The phase is derived from the saved global step, so a resumed run continues its phase
at the right step.
"""

from __future__ import annotations

import time
from pathlib import Path

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.pipeline import slice_dataset, train_pairs, train_volumes
from heart_sr_tf.data.prepare import builder
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.training.build import build_wgan
from heart_sr_tf.training.distribute import distribute_dataset, distributed_step, make_strategy
from heart_sr_tf.training.phases import action_at
from heart_sr_tf.training.runs import Run, checkpoint_manager
from heart_sr_tf.training.trainer import _Loop
from heart_sr_tf.training.validation import Validator


def training_data(config, data_dir: Path):
    """2D: patches of the stored training slices. 3D: volumes of the training patients, read from their NIfTI files."""
    d = config.data
    if d.dims == 2:
        slices = slice_dataset(data_dir, "full", "train", shuffle_files=True)
        return train_pairs(
            slices,
            d.patch,
            d.scale,
            d.batch_size,
            d.patches_per_slice,
            d.shuffle_buffer,
            degradation=Degradation.from_config(config),
        )
    if config.degradation.kind != "decimation":
        raise HeartSRError(f"3D training supports only the decimation degradation, not {config.degradation.kind!r}")
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


def train_wgan(run: Run, data_dir: Path, strategy_name: str = "default", resume: bool = False, quiet: bool = False):
    config = run.config
    strategy = make_strategy(strategy_name)
    model = build_wgan(config, strategy)
    checkpoint, manager = checkpoint_manager(
        run,
        config.train.keep_checkpoints,
        generator=list(model.generator.weights),
        discriminator=list(model.critic.weights),
        g_optimizer=model.g_optimizer,
        d_optimizer=model.d_optimizer,
    )
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    run.trim_csv(int(checkpoint.step))
    validator = Validator(data_dir, Degradation.from_config(config), config.data.validation_slices)
    total = config.train.steps
    loop = _Loop(run, model, checkpoint, manager, validator, total, quiet)
    started = time.monotonic()
    steps = {}
    with loop.bar:
        if int(checkpoint.step) < total:
            batches = iter(distribute_dataset(strategy, training_data(config, data_dir)))
        while int(checkpoint.step) < total:
            action = action_at(int(checkpoint.step), config.phases)
            if action.mode not in steps:
                steps[action.mode] = distributed_step(strategy, model.step_for(action.mode))
            checkpoint.stage.assign(action.phase)
            loop.stage_name = f"phase{action.phase}-{action.mode}"
            loop.after_step(steps[action.mode](batches))
        loop.save()
    return loop.finish(started)
