"""A run folder ``runs/<name>/``: resolved config, TensorBoard logs, checkpoints, metrics CSV."""

from __future__ import annotations

import csv
import time
from dataclasses import dataclass
from pathlib import Path

import tensorflow as tf

from heart_sr_tf.config import CONFIG_CLASSES, SRGANConfig, dump_toml, load_config
from heart_sr_tf.errors import HeartSRError

CSV_FIELDS = (
    "step",
    "stage",
    "wall_s",
    "g_loss",
    "d_loss",
    "pixel",
    "feature",
    "adversarial",
    "content",
    "gp",
    "w_distance",
    "val_psnr",
    "val_ssim",
)


@dataclass
class Run:
    folder: Path
    config: SRGANConfig
    kind: str = "srgan"

    @property
    def checkpoint_dir(self) -> Path:
        return self.folder / "checkpoints"

    @property
    def log_dir(self) -> Path:
        return self.folder / "logs"

    @property
    def csv_path(self) -> Path:
        return self.folder / "metrics.csv"

    @classmethod
    def create(cls, root: Path, name: str | None, config, kind: str = "srgan") -> Run:
        name = name or time.strftime(f"{kind}-%Y%m%d-%H%M%S")
        folder = Path(root) / name
        if (folder / "config.toml").exists():
            raise HeartSRError(f"{folder}: run already exists; resume it with --resume {folder} or pick another name")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "config.toml").write_text(dump_toml(config))
        (folder / "kind").write_text(kind + "\n")
        return cls(folder, config, kind)

    @classmethod
    def open(cls, folder: Path) -> Run:
        folder = Path(folder)
        if not (folder / "config.toml").is_file():
            raise HeartSRError(f"{folder}: not a run folder (no config.toml)")
        kind = (folder / "kind").read_text().strip() if (folder / "kind").exists() else "srgan"
        if kind not in CONFIG_CLASSES:
            raise HeartSRError(f"{folder / 'kind'}: unknown run kind {kind!r}")
        return cls(folder, load_config(folder / "config.toml", CONFIG_CLASSES[kind]), kind)

    def trim_csv(self, last_step: int) -> None:
        """Drop rows logged after ``last_step`` (steps lost by a crash are trained again)."""
        if not self.csv_path.exists():
            return
        with self.csv_path.open() as f:
            rows = [r for r in csv.DictReader(f) if int(r["step"]) <= last_step]
        self._write_rows(rows, mode="w")

    def log_row(self, row: dict) -> None:
        self._write_rows([row], mode="a")

    def _write_rows(self, rows, mode: str) -> None:
        new = mode == "w" or not self.csv_path.exists()
        with self.csv_path.open(mode, newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            if new:
                writer.writeheader()
            writer.writerows(rows)


def checkpoint_manager(run: Run, keep: int, **trackables) -> tuple[tf.train.Checkpoint, tf.train.CheckpointManager]:
    """A checkpoint over ``trackables`` plus the counters ``step`` (global) and ``stage`` (index).

    TensorFlow writes each checkpoint under a temporary name and updates the ``checkpoint`` index
    file atomically afterwards, so a kill at any moment leaves the previous checkpoint intact.
    """
    counters = {name: tf.Variable(0, dtype=tf.int64, trainable=False, name=name) for name in ("step", "stage")}
    checkpoint = tf.train.Checkpoint(**trackables, **counters)
    manager = tf.train.CheckpointManager(checkpoint, str(run.checkpoint_dir), max_to_keep=keep)
    return checkpoint, manager


def latest_checkpoint(run: Run) -> str:
    latest = tf.train.latest_checkpoint(str(run.checkpoint_dir))
    if latest is None:
        raise HeartSRError(f"{run.checkpoint_dir}: no checkpoint in this run yet")
    return latest


def restore_generator(run: Run, generator) -> str:
    """Load the generator weights of ``run``'s latest checkpoint into ``generator`` (same architecture)."""
    latest = latest_checkpoint(run)
    tf.train.Checkpoint(generator=list(generator.weights)).restore(latest).expect_partial()
    return latest


def load_exported_weights(folder: Path, generator) -> str:
    """Copy the weights of an exported SavedModel (same architecture) into ``generator``, matched by name."""
    from heart_sr_tf.serving.predictor import load_exported

    folder, loaded = load_exported(folder)
    saved = {v.name.split(":")[0]: v for v in loaded.signatures["serving_default"].variables}
    for weight in generator.weights:
        source = saved.get(weight.path)
        if source is None or tuple(source.shape) != tuple(weight.shape):
            raise HeartSRError(
                f"{folder}: holds no weight {weight.path} of shape {tuple(weight.shape)}; not this architecture"
            )
        weight.assign(source.numpy())
    return str(folder)


def initialise_generator(source: Path, generator) -> str:
    """``--init-from``: a run folder (its latest checkpoint) or an exported SavedModel / model base path."""
    source = Path(source)
    if (source / "config.toml").is_file():
        return restore_generator(Run.open(source), generator)
    return load_exported_weights(source, generator)
