"""WGAN-GP training in a run folder: the five-phase controller as a schedule for the training loop.

Every step asks :func:`action_at` what trains; the phase is derived from the saved global step, so a
resumed run continues its phase at the right step.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import keras

from heart_sr_tf.data.pipeline import patient_volumes, train_volumes
from heart_sr_tf.data.prepare import builder, from_scans
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.training.build import build_wgan, precision_note
from heart_sr_tf.training.distribute import make_strategy
from heart_sr_tf.training.loop import Segment, TrainingLoop, TrainResult
from heart_sr_tf.training.phases import action_at
from heart_sr_tf.training.runs import Run, initialise_generator
from heart_sr_tf.training.slice_batches import slice_batches
from heart_sr_tf.training.validation import CineValidator, Validator


def phase_schedule(phases) -> Callable[[int], Segment]:
    def at(step: int) -> Segment:
        action = action_at(step, phases)
        return Segment(action.phase, f"phase{action.phase}-{action.mode}", action.mode, "train")

    return at


def _acdc_source(data_dir: Path) -> Path:
    """The ACDC folder a 3D model's volumes are read from, checked before training: a dataset prepared from a lab's
    scans has none (the read failed inside TensorFlow's data pipeline, a traceback at the first step)."""
    if from_scans(data_dir):
        raise HeartSRError(
            f"{data_dir}: prepared from a lab's scans, but 3D training reads its patients' files in the ACDC layout "
            "(prepare --acdc-dir); train a 2D model on these scans (train srgan, or train wgan --config wgan2d_cpu)"
        )
    source = builder(data_dir, "full").info.metadata.get("source")
    if not source or not Path(source).is_dir():
        raise HeartSRError(f"{data_dir}: 3D training reads the NIfTI files, but their folder {source!r} is gone")
    return Path(source)


def cine_roots(config, data_dir: Path) -> list[Path]:
    """Where the cines are: the prepared data's ACDC source, then ``data.cine_dirs``."""
    roots = [_acdc_source(data_dir)]
    for folder in config.data.cine_dirs:
        if not Path(folder).is_dir():
            raise HeartSRError(f"data.cine_dirs: {folder} is not a folder (relative paths start at the current one)")
        roots.append(Path(folder))
    return roots


def cine_split(config, data_dir: Path) -> dict[str, set[str]]:
    """The cine patients by role: ``train`` (in the prepared data's training split and not held out by the
    config), ``validation`` and ``test`` (``data.cine_validation`` and ``data.cine_test``)."""
    from heart_sr_tf.data.cine import cine_patients

    assignment = builder(data_dir, "full").info.metadata.get("assignment", {})
    found = {p.id for p in cine_patients(cine_roots(config, data_dir))}
    d = config.data
    for role, ids in (("cine_validation", d.cine_validation), ("cine_test", d.cine_test)):
        missing = sorted(set(ids) - found)
        if missing:
            raise HeartSRError(f"data.{role}: no cine found for {', '.join(missing)}")
    held = set(d.cine_validation) | set(d.cine_test)
    train = {pid for pid in found if assignment.get(pid) == "train" and pid not in held}
    validation = set(d.cine_validation) or {pid for pid in found if assignment.get(pid) == "validation"}
    if not train:
        raise HeartSRError(f"{data_dir}: no cine of a training patient to train a temporal model on")
    return {"train": train, "validation": validation, "test": set(d.cine_test)}


def training_data(config, data_dir: Path):
    """2D: patches of the stored training slices. 3D along slices: the training patients' 3D frames, read from
    their NIfTI files. 3D along frames: the training patients' whole cines, slice by slice."""
    d = config.data
    degradation = config.degradation
    if d.dims == 2:
        return slice_batches(config, data_dir)
    if d.axis == "frames":
        from heart_sr_tf.data.cine import cine_slices

        roots, ids = cine_roots(config, data_dir), cine_split(config, data_dir)["train"]

        def volumes():
            for cine in cine_slices(roots, roots[:1], ids):
                yield cine.images

    else:
        source = _acdc_source(data_dir)
        assignment = builder(data_dir, "full").info.metadata["assignment"]
        train_ids = {pid for pid, split in assignment.items() if split == "train"}

        def volumes():
            for _, volume in patient_volumes(source, patient_ids=train_ids):
                yield volume

    return train_volumes(
        volumes, degradation, d.patch, d.depth, d.batch_size, d.patches_per_slice, min(d.shuffle_buffer, 256)
    )


def validator_for(config, data_dir: Path):
    """Whole validation slices, or held-out whole cines for a model along frames (scored at its real depth)."""
    degradation = config.degradation
    if config.data.dims == 3 and config.data.axis == "frames":
        from heart_sr_tf.data.cine import cine_slices

        roots = cine_roots(config, data_dir)
        ids = cine_split(config, data_dir)["validation"]
        return CineValidator(list(cine_slices(roots, roots[:1], ids)) if ids else [], degradation, config.data.depth)
    return Validator(data_dir, degradation, config.data.validation_slices)


def train_wgan(
    run: Run, strategy_name: str = "default", quiet: bool = False, report: Callable[[str], None] = lambda line: None,
    extra_validation: Callable | None = None,
) -> TrainResult:  # fmt: skip
    """Train through the five phases, continuing at the run's saved step; a fresh run with ``init_from`` starts
    its generator there (a 2D export into a 3D generator: each kernel put on the middle of its depth).
    ``extra_validation`` adds figures to every validation (see ``TrainingLoop``)."""
    config, data_dir = run.config, run.data_dir
    if config.data.dims == 3:
        _acdc_source(data_dir)  # where a 3D model's volumes come from: checked before any work
    strategy = make_strategy(strategy_name)
    keras.utils.set_random_seed(config.train.seed)
    if note := precision_note(config):
        report(note)
    model = build_wgan(config, strategy)
    loop = TrainingLoop(run, model, strategy, validator_for(config, data_dir), quiet, extra_validation)
    schedule = phase_schedule(config.phases)
    restored = loop.restore()
    if restored:
        report(f"resumed from {restored} at step {loop.step}, {schedule(loop.step).name}")
    elif run.init_from is not None:
        factors = config.degradation.factors
        report(f"generator initialised from {initialise_generator(run.init_from, model.generator, factors)}")
        loop.validate_start()
    return loop.train(schedule, config.train.steps, lambda _: training_data(config, data_dir))
