"""SRGAN training in a run folder: the config's stages as a schedule for the training loop."""

from __future__ import annotations

from collections.abc import Callable

import keras

from heart_sr_tf.training.build import build_srgan, precision_note
from heart_sr_tf.training.distribute import make_strategy
from heart_sr_tf.training.loop import Segment, TrainingLoop, TrainResult
from heart_sr_tf.training.runs import Run, initialise_generator
from heart_sr_tf.training.slice_batches import check_rois, slice_batches
from heart_sr_tf.training.validation import Validator


def stage_schedule(stages) -> Callable[[int], Segment]:
    """Global step -> the stage it belongs to (steps past the last stage stay in it)."""
    ends, total = [], 0
    for stage in stages:
        total += stage.steps
        ends.append(total)

    def at(step: int) -> Segment:
        index = next((i for i, end in enumerate(ends) if step < end), len(stages) - 1)
        stage = stages[index]
        return Segment(index, stage.name, "both" if stage.adversarial else "generator", stage.roi)

    return at


def train_srgan(
    run: Run,
    strategy_name: str = "default",
    vgg_weights: str | None = None,
    quiet: bool = False,
    report: Callable[[str], None] = lambda line: None,
    extra_validation: Callable | None = None,
) -> TrainResult:
    """Train every stage of ``run.config`` in order, continuing at the run's saved step and stage, if any.

    A fresh run with ``init_from`` starts its generator there. ``report`` receives one line on what was restored;
    ``extra_validation`` adds figures to every validation (see ``TrainingLoop``).
    """
    config, data_dir = run.config, run.data_dir
    check_rois(data_dir, [stage.roi for stage in config.train.stages])
    strategy = make_strategy(strategy_name)
    keras.utils.set_random_seed(config.train.seed)
    if note := precision_note(config):
        report(note)
    model = build_srgan(config, strategy, vgg_weights)
    degradation = config.degradation
    validator = Validator(data_dir, degradation, config.data.validation_slices)
    loop = TrainingLoop(run, model, strategy, validator, quiet, extra_validation)
    schedule = stage_schedule(config.train.stages)
    restored = loop.restore()
    if restored:
        report(f"resumed from {restored} at step {loop.step}, stage {schedule(loop.step).name}")
    elif run.init_from is not None:
        report(
            f"generator initialised from {initialise_generator(run.init_from, model.generator, degradation.factors)}"
        )
        loop.validate_start()

    steps = sum(s.steps for s in config.train.stages)
    return loop.train(schedule, steps, lambda roi: slice_batches(config, data_dir, roi))
