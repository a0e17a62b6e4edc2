"""Stage-by-stage SRGAN training in a run folder: checkpoints, logs, resume, NaN stop, progress."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.pipeline import num_slices, slice_dataset, train_pairs
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.progress import Progress
from heart_sr_tf.training.build import build_srgan
from heart_sr_tf.training.distribute import (
    distribute_dataset,
    distributed_step,
    is_chief,
    is_multiworker,
    make_strategy,
)
from heart_sr_tf.training.runs import Run, checkpoint_manager, initialise_generator
from heart_sr_tf.training.validation import Validator


class TrainingDiverged(HeartSRError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass
class TrainResult:
    run: Path
    steps: int
    seconds: float
    validation: dict[str, float] = field(default_factory=dict)
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    last_logs: dict[str, float] = field(default_factory=dict)
    slices: int = 0


def steps_per_epoch(data_dir: Path, config, roi: str) -> int:
    """One epoch = every training slice seen once (``patches_per_slice`` patches each)."""
    d = config.data
    return max(1, math.ceil(num_slices(data_dir, roi, "train") * d.patches_per_slice / d.batch_size))


class _Loop:
    """What happens after every step, for ``fit`` (through a callback) and the multi-worker loop alike."""

    def __init__(self, run: Run, model, checkpoint, manager, validator: Validator, total: int, quiet: bool):
        self.run, self.model, self.checkpoint, self.manager = run, model, checkpoint, manager
        self.validator, self.cfg = validator, run.config.train
        self.chief = is_chief()
        self.writer = tf.summary.create_file_writer(str(run.log_dir)) if self.chief else None
        self.bar = Progress(total, "train", unit="step", enabled=not quiet and self.chief)
        self.bar.count = self.bar.first = int(checkpoint.step)
        self.start = time.monotonic()
        self.stage_name = ""
        self.last_logs: dict[str, float] = {}
        self.last_val: dict[str, float] = {}

    def after_step(self, logs) -> None:
        logs = {k: float(np.asarray(v)) for k, v in (logs or {}).items()}
        self.checkpoint.step.assign_add(1)
        step = int(self.checkpoint.step)
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            last = self.manager.latest_checkpoint or "none yet"
            raise TrainingDiverged(
                f"{self.run.folder}: training stopped at step {step}: non-finite {', '.join(bad)}; "
                f"last good checkpoint: {last}"
            )
        self.last_logs = logs
        note = f"{self.stage_name} " + " ".join(f"{k}={v:.4g}" for k, v in logs.items())
        self.bar.update(1, note)
        val = {}
        if step % self.cfg.validate_every == 0:
            val = self.validate(step)
        if step % self.cfg.log_every == 0 or val:
            self.log(step, logs, val)
        if step % self.cfg.image_every == 0 and self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.image("lr_sr_hr", self.validator.triplet(self.model.generator), max_outputs=1)
        if step % self.cfg.checkpoint_every == 0:
            self.save()

    def validate(self, step: int) -> dict[str, float]:
        self.last_val = self.validator.evaluate(self.model.generator)
        return self.last_val

    def log(self, step: int, logs: dict, val: dict) -> None:
        if not self.chief:
            return
        row = {"step": step, "stage": self.stage_name, "wall_s": round(time.monotonic() - self.start, 2), **logs}
        row.update({f"val_{k}": v for k, v in val.items()})
        self.run.log_row(row)
        with self.writer.as_default(step=step):
            for name, value in logs.items():
                tf.summary.scalar(f"train/{name}", value)
            for name, value in val.items():
                tf.summary.scalar(f"validation/{name}", value)
            tf.summary.scalar("train/stage", int(self.checkpoint.stage))
        self.writer.flush()

    def finish(self, started: float) -> TrainResult:
        """Validate the final generator, log it, and sum the run up."""
        final = self.validator.evaluate(self.model.generator)
        step = int(self.checkpoint.step)
        self.log(step, {}, final)
        seconds = time.monotonic() - started
        return TrainResult(
            self.run.folder, step, seconds, final, self.validator.baselines, self.last_logs, len(self.validator)
        )

    def save(self) -> None:
        step = int(self.checkpoint.step)
        if self.manager.latest_checkpoint != f"{self.manager.directory}/ckpt-{step}":
            self.manager.save(checkpoint_number=step)


class _Callback(keras.callbacks.Callback):
    def __init__(self, loop: _Loop):
        super().__init__()
        self.loop = loop

    def on_train_batch_end(self, batch, logs=None):
        self.loop.after_step(logs)


def train_srgan(
    run: Run,
    data_dir: Path,
    strategy_name: str = "default",
    resume: bool = False,
    vgg_weights: str | None = None,
    quiet: bool = False,
    init_from: Path | None = None,
) -> TrainResult:
    """Train every stage of ``run.config`` in order; on ``resume`` continue at the saved step and stage."""
    config = run.config
    strategy = make_strategy(strategy_name)
    model = build_srgan(config, strategy, vgg_weights)
    checkpoint, manager = checkpoint_manager(
        run,
        config.train.keep_checkpoints,
        generator=list(model.generator.weights),  # Keras 3 models are not tracked by tf.train.Checkpoint
        discriminator=list(model.discriminator.weights),
        g_optimizer=model.g_optimizer,
        d_optimizer=model.d_optimizer,
    )
    if resume and manager.latest_checkpoint:
        checkpoint.restore(manager.latest_checkpoint).assert_existing_objects_matched()
    elif init_from is not None:
        initialise_generator(init_from, model.generator)
    run.trim_csv(int(checkpoint.step))
    validator = Validator(data_dir, Degradation.from_config(config), config.data.validation_slices)
    stages = config.train.stages
    total = sum(s.steps for s in stages)
    loop = _Loop(run, model, checkpoint, manager, validator, total, quiet)
    started = time.monotonic()
    with loop.bar:
        start = 0
        for index, stage in enumerate(stages):
            end = start + stage.steps
            done = int(checkpoint.step)
            if done < end:  # the position is derived from the global step, so a run can also be extended
                checkpoint.stage.assign(index)
                loop.stage_name = stage.name
                _run_stage(model, strategy, loop, data_dir, config, stage, end - max(done, start))
            start = end
        loop.save()
    return loop.finish(started)


def _run_stage(model, strategy, loop: _Loop, data_dir, config, stage, steps: int) -> None:
    d = config.data
    model.set_adversarial(stage.adversarial)
    ds = train_pairs(
        slice_dataset(data_dir, stage.roi, "train", shuffle_files=True),
        patch=d.patch,
        scale=d.scale,
        batch_size=d.batch_size,
        patches_per_slice=d.patches_per_slice,
        shuffle_buffer=d.shuffle_buffer,
        degradation=Degradation.from_config(config),
    )
    if is_multiworker(strategy):
        step = distributed_step(strategy, model.train_step)
        iterator = iter(distribute_dataset(strategy, ds))
        for _ in range(steps):
            loop.after_step(step(iterator))
        return
    model.fit(ds, steps_per_epoch=steps, epochs=1, verbose=0, shuffle=False, callbacks=[_Callback(loop)])


BASELINE_NAMES = {"zero_fill": "zero-filled", "bicubic": "aligned bicubic", "blocky": "blocky LR"}


def comparison_line(result: TrainResult) -> str:
    """One line: the model next to the degradation's baselines on the same validation slices, and its
    difference from the first baseline (the one to beat: zero-filling for k-space, bicubic for decimation)."""
    v = result.validation
    parts = [f"validation, {result.slices} whole slices: model PSNR {v['psnr']:.2f} dB SSIM {v['ssim']:.4f}"]
    for name, b in result.baselines.items():
        parts.append(f"{BASELINE_NAMES[name]} PSNR {b['psnr']:.2f} dB SSIM {b['ssim']:.4f}")
    name, b = next(iter(result.baselines.items()))
    verdict = "ahead of" if v["psnr"] > b["psnr"] and v["ssim"] > b["ssim"] else "NOT ahead of"
    parts.append(
        f"model - {BASELINE_NAMES[name]}: {v['psnr'] - b['psnr']:+.2f} dB {v['ssim'] - b['ssim']:+.4f} SSIM "
        f"({verdict} {BASELINE_NAMES[name]})"
    )
    return " | ".join(parts)
