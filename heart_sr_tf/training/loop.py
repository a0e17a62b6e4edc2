"""The one training loop, for every model and every strategy (single device, mirrored, multi-worker).

A model supplies its step functions (``model.step_for(mode)``) and the networks and optimizers to
checkpoint (``model.trackables()``); its trainer supplies a schedule, a pure function from the global
step to the :class:`Segment` that trains at that step, and the dataset of each segment. The loop owns the
rest: checkpoints (resume at the exact step; the stage is derived from the step, so a run can be extended),
validation, TensorBoard and ``metrics.csv`` logging, the NaN stop and the progress bar.

Each step runs ``strategy.run(step_fn)`` inside one ``tf.function`` per mode: Keras 3.15's ``fit`` is broken
under MultiWorkerMirroredStrategy (keras-team/keras#20585), and one path for every strategy means the tests
of replica equivalence cover the production path.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from heart_sr_tf.data.degradation import BASELINE_NAMES
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.metrics import ahead, gain_text
from heart_sr_tf.progress import progress_bar
from heart_sr_tf.training.distribute import distribute_dataset, distributed_step, is_chief
from heart_sr_tf.training.runs import Run
from heart_sr_tf.training.validation import Validator

START = "start"  # metrics.csv's stage of the validation before the first step


class TrainingDiverged(HeartSRError):
    """A loss became NaN or infinite; the last good checkpoint is kept."""


@dataclass(frozen=True)
class Segment:
    """What trains at one global step: a stage of the SRGAN or a phase of the WGAN."""

    index: int  # saved in the checkpoint as ``stage``
    name: str  # logged in metrics.csv and TensorBoard
    mode: str  # which of the model's step functions runs
    data: str  # which dataset feeds it (e.g. the roi)


@dataclass
class TrainResult:
    steps: int
    seconds: float
    validation: dict[str, float] = field(default_factory=dict)  # image metrics, and any extra validation's
    baselines: dict[str, dict[str, float]] = field(default_factory=dict)
    last_logs: dict[str, float] = field(default_factory=dict)  # losses: means over the last logging interval
    slices: int = 0
    start: dict[str, float] = field(default_factory=dict)  # a fine-tune's starting network, validated at step 0


def checkpoint_manager(run: Run, keep: int, **trackables) -> tuple[tf.train.Checkpoint, tf.train.CheckpointManager]:
    """A checkpoint over ``trackables`` plus the counters ``step`` (global) and ``stage`` (index).

    TensorFlow writes each checkpoint under a temporary name and updates the ``checkpoint`` index
    file atomically afterwards, so a kill at any moment leaves the previous checkpoint intact.
    """
    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in ("step", "stage")}
    checkpoint = tf.train.Checkpoint(**trackables, **counters)
    manager = tf.train.CheckpointManager(checkpoint, str(run.checkpoint_dir), max_to_keep=keep)
    return checkpoint, manager


class TrainingLoop:
    """Runs ``model`` from its checkpointed step to ``total`` steps of ``schedule``.

    ``extra_validation(network) -> {name: value}`` adds figures to every validation (the clinical ones); the
    command layer supplies it, since what it measures through (a segmenter) lives above training."""

    def __init__(
        self, run: Run, model, strategy, validator: Validator, quiet: bool = False,
        extra_validation: Callable[[object], dict[str, float]] | None = None,
    ):  # fmt: skip
        self.run, self.model, self.strategy, self.validator = run, model, strategy, validator
        self.extra_validation = extra_validation
        self.cfg = run.config.train
        self.checkpoint, self.manager = checkpoint_manager(run, self.cfg.keep_checkpoints, **model.trackables())
        self.chief = is_chief()
        self.quiet = quiet
        self.writer = tf.summary.create_file_writer(str(run.log_dir)) if self.chief else None
        self.steps: dict[str, Callable] = {}
        self.last_logs: dict[str, float] = {}  # this step's losses
        self.last_means: dict[str, float] = {}  # the means of the last logging interval
        self._sums: dict[str, float] = {}
        self._count = 0
        self._wall0 = 0.0
        self._validated: tuple[int, dict[str, float]] | None = None  # this process's last validation: step, scores

    @property
    def step(self) -> int:
        return int(self.checkpoint.step)

    def restore(self) -> str | None:
        """Load the latest checkpoint, if any; the path restored."""
        try:
            latest = self.manager.latest_checkpoint
            if latest:
                self.checkpoint.restore(latest).assert_existing_objects_matched()
        except (AssertionError, ValueError, IndexError, KeyError, tf.errors.OpError) as exc:
            message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise HeartSRError(
                f"{self.run.checkpoint_dir}: its latest checkpoint is damaged or holds another architecture ({message})"
            ) from None
        self.run.trim_metrics(self.step)
        self._wall0 = float(self.run.last_metrics().get("wall_s", 0.0))  # wall time carries on across resumes
        return latest

    def train(
        self, schedule: Callable[[int], Segment], total: int, datasets: Callable[[str], tf.data.Dataset]
    ) -> TrainResult:
        """Step until ``total``, then validate the final network and sum the run up."""
        started = self._started = time.monotonic()
        current, batches = None, None
        with progress_bar(total, "train", "step", initial=self.step, disable=self.quiet or not self.chief) as bar:
            while self.step < total:
                segment = schedule(self.step)
                if segment.data != current:
                    current, batches = segment.data, iter(distribute_dataset(self.strategy, datasets(segment.data)))
                if segment.mode not in self.steps:
                    step_fn = self.model.step_for(segment.mode)
                    self.steps[segment.mode] = distributed_step(self.strategy, step_fn, self.cfg.jit_compile)
                self.checkpoint.stage.assign(segment.index)
                logs = self.steps[segment.mode](batches)
                self._after_step(segment, logs, total)
                note = f"{segment.name} " + " ".join(f"{k}={v:.4g}" for k, v in self.last_logs.items())
                bar.set_postfix_str(note, refresh=False)  # drawn with the count, at tqdm's own interval
                bar.update(1)
            self._save()
        final = self._final_validation()
        return TrainResult(
            self.step,
            time.monotonic() - started,
            final,
            self.validator.baselines,
            self.last_means or self.last_logs,
            len(self.validator),
            self._start_scores(),
        )

    def _final_validation(self) -> dict[str, float]:
        """The final network's scores: the last step's validation (every run validates its last step, in that
        step's row of metrics.csv). A run resumed after its last step (nothing to train) is validated again for its
        summary, and metrics.csv gets no second row for the step."""
        if self._validated is not None and self._validated[0] == self.step:
            return self._validated[1]
        final = self._validate()
        rows = self.run.metrics_rows()
        if not any(int(r["step"]) == self.step and any(v for k, v in r.items() if k.startswith("val_")) for r in rows):
            self._log(self.step, "", {}, final)
        return final

    def validate_start(self) -> None:
        """Validate the network before its first step (a fine-tune's starting point, initialised from another
        run or model): a ``start`` row at step 0 of metrics.csv, and :attr:`TrainResult.start`, so that the run
        says whether it improved on where it began."""
        self._started = time.monotonic()
        self._log(0, START, {}, self._validate())

    def _start_scores(self) -> dict[str, float]:
        rows = [r for r in self.run.metrics_rows() if r.get("stage") == START and int(r["step"]) == 0]
        if not rows:
            return {}
        return {k[4:]: float(v) for k, v in rows[-1].items() if k.startswith("val_") and v not in ("", None)}

    def _after_step(self, segment: Segment, logs, total: int) -> None:
        logs = {k: float(np.asarray(v)) for k, v in logs.items()}
        self.checkpoint.step.assign_add(1)
        step = self.step
        bad = [k for k, v in logs.items() if not math.isfinite(v)]
        if bad:
            last = self.manager.latest_checkpoint or "none yet"
            raise TrainingDiverged(
                f"{self.run.folder}: training stopped at step {step}: non-finite {', '.join(bad)}; "
                f"last good checkpoint: {last}"
            )
        self.last_logs = logs
        for key, value in logs.items():
            self._sums[key] = self._sums.get(key, 0.0) + value
        self._count += 1
        val = self._validate() if step % self.cfg.validate_every == 0 or step == total else {}  # (the last: final)
        if val:
            self._validated = (step, val)
        if step % self.cfg.log_every == 0 or val:
            means = {k: v / self._count for k, v in self._sums.items()}
            self._sums, self._count = {}, 0
            self.last_means = means
            self._log(step, segment.name, means, val)
        if step % self.cfg.image_every == 0 and self.writer is not None:
            with self.writer.as_default(step=step):
                tf.summary.image("lr_sr_hr", self.validator.triplet(self.model.network), max_outputs=1)
        if step % self.cfg.checkpoint_every == 0:
            self._save()

    def _validate(self) -> dict[str, float]:
        scores = self.validator.evaluate(self.model.network)
        if self.extra_validation is not None:
            scores.update(self.extra_validation(self.model.network))
        return scores

    def _log(self, step: int, stage: str, means: dict, val: dict) -> None:
        """One metrics.csv row and TensorBoard scalars: losses are means over the steps since the last row."""
        if not self.chief:
            return
        row = {
            "step": step,
            "stage": stage,
            "wall_s": round(self._wall0 + time.monotonic() - self._started, 2),
            **means,
        }
        row.update({f"val_{k}": v for k, v in val.items()})
        self.run.log_metrics(row)
        with self.writer.as_default(step=step):
            for name, value in means.items():
                tf.summary.scalar(f"train/{name}", value)
            for name, value in val.items():
                tf.summary.scalar(f"validation/{name}", value)
            tf.summary.scalar("train/stage", int(self.checkpoint.stage))
        self.writer.flush()

    def _save(self) -> None:
        if self.manager.latest_checkpoint != f"{self.manager.directory}/ckpt-{self.step}":
            self.manager.save(checkpoint_number=self.step)


def comparison_line(result: TrainResult) -> str:
    """One line: the model next to the degradation's baselines on the same validation slices, and its
    difference from the first baseline (the one to beat: zero-filling for k-space, bicubic for decimation)."""
    v = result.validation
    parts = [f"validation, {result.slices} whole slices: model PSNR {v['psnr']:.2f} dB SSIM {v['ssim']:.4f}"]
    for name, b in result.baselines.items():
        parts.append(f"{BASELINE_NAMES[name]} PSNR {b['psnr']:.2f} dB SSIM {b['ssim']:.4f}")
    name, b = next(iter(result.baselines.items()))
    verdict = "ahead of" if ahead(v, b) else "NOT ahead of"
    parts.append(f"{gain_text(v, b, BASELINE_NAMES[name])} ({verdict} {BASELINE_NAMES[name]})")
    return " | ".join(parts)


def start_line(result: TrainResult, origin) -> str | None:
    """A fine-tune's line: the network it started from and the trained one on the same validation slices."""
    if not result.start:
        return None
    s, v = result.start, result.validation
    verdict = "improved on" if round(v["psnr"] - s["psnr"], 2) > 0 else "NOT better than"  # (as it is shown)
    return (
        f"started from {origin}: validation PSNR {s['psnr']:.2f} dB SSIM {s['ssim']:.4f}, now {v['psnr']:.2f} dB "
        f"SSIM {v['ssim']:.4f} ({v['psnr'] - s['psnr']:+.2f} dB, {v['ssim'] - s['ssim']:+.4f}; {verdict} its start)"
    )


def apart_figures(best: float, last: float) -> str | None:
    """``best`` and ``last`` validation PSNRs (dB) with as many decimals as it takes to tell them apart (2 to 4:
    the line named a step "27.26 dB against 27.26 at the end"); None when ``best`` is not higher at 4."""
    for digits in (2, 3, 4):
        shown = f"{best:.{digits}f}", f"{last:.{digits}f}"
        if shown[0] != shown[1]:
            return f"{shown[0]} dB against {shown[1]} at the end" if best > last else None
    return None


def best_line(run: Run) -> str | None:
    """When an earlier validation beat the last by PSNR: which step, and how to export it (choose on validation),
    or that the network a fine-tune started from was better. None when the last is the best."""
    rows = [r for r in run.metrics_rows() if r.get("val_psnr") not in ("", None)]
    if len(rows) < 2:
        return None
    last, best = rows[-1], max(rows, key=lambda r: float(r["val_psnr"]))
    figures = apart_figures(float(best["val_psnr"]), float(last["val_psnr"]))
    if figures is None:
        return None
    if best.get("stage") == START:
        return f"the network it started from was better on validation ({figures}): keep that one"
    step = int(best["step"])
    kept = step in run.kept_steps()
    where = (
        f"export it with `python cli.py export {run.folder} --step {step}`"
        if kept
        else "its checkpoint is no longer kept (raise train.keep_checkpoints)"
    )
    return f"best validation PSNR at step {step} ({figures}); {where}"
