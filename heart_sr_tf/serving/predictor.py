"""One interface over a generator, wherever it lives: a training run, a SavedModel, or a TF Serving server."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import numpy as np
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.serving.export import load_exported, read_metadata


class Predictor:
    """``predictor(lr)`` maps LR grids ``[B, h, w, 1]`` float32 in [0, 1] to ``[B, s*h, s*w, 1]`` in [0, 1].

    ``fn`` takes the model's own input: slices ``[B, h, w, 1]``, or volumes ``[B, h, w, D, 1]`` when
    ``volumetric`` (a 3D generator), which sees a lone slice as a volume of depth 1.
    """

    def __init__(
        self,
        fn,
        scale: int,
        source: str,
        info: dict | None = None,
        volumetric: bool = False,
        degradation: Degradation | None = None,
        generator=None,
        run=None,
    ):
        self.fn, self.scale, self.source, self.info = fn, int(scale), source, info or {}
        self.volumetric = volumetric
        self.degradation = degradation or Degradation("decimation", self.scale)  # what the model was trained on
        self.generator = generator  # the Keras generator, for a training run only
        self.run = run  # the training run (heart_sr_tf.training.runs.Run), for a training run only

    def with_consistency(self) -> Predictor:
        """This predictor followed by data consistency with its own degradation (a no-op if already there)."""
        if self.info.get("data_consistency"):
            return self
        if self.volumetric:
            raise HeartSRError(f"{self.source}: data consistency is for 2D models")
        from heart_sr_tf.models.consistency import DataConsistency

        layer = DataConsistency(self.degradation.kind, self.scale)

        def fn(lr):
            sr = np.asarray(self.fn(lr), dtype=np.float32)
            return layer([tf.constant(sr), tf.constant(lr)]).numpy()

        info = {**self.info, "data_consistency": True}
        source = self.source + " + data consistency"
        return Predictor(fn, self.scale, source, info, self.volumetric, self.degradation, self.generator, self.run)

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = self._check(lr, 4, "[batch, h, w, 1]")
        if self.volumetric:
            return self._run(lr[:, :, :, None])[:, :, :, 0]
        return self._run(lr)

    def volume(self, lr: np.ndarray) -> np.ndarray:
        """``[B, h, w, D, 1] -> [B, s*h, s*w, D, 1]``: whole volumes for a 3D model, slice by slice for a 2D one."""
        lr = self._check(lr, 5, "[batch, h, w, depth, 1]")
        if self.volumetric:
            return self._run(lr)
        return np.stack([self(lr[:, :, :, d]) for d in range(lr.shape[3])], axis=3)

    def _run(self, lr: np.ndarray) -> np.ndarray:
        return np.clip(np.asarray(self.fn(lr), dtype=np.float32), 0.0, 1.0)

    def _check(self, lr, ndim: int, shape: str) -> np.ndarray:
        lr = np.asarray(lr)
        if lr.ndim != ndim or lr.shape[-1] != 1:
            raise HeartSRError(f"{self.source}: expected LR images of shape {shape}, got {lr.shape}")
        if lr.dtype != np.float32:
            raise HeartSRError(f"{self.source}: expected float32 LR images in [0, 1], got {lr.dtype}")
        return lr


def load_saved_model(path: Path) -> Predictor:
    folder, loaded = load_exported(path)
    signature = loaded.signatures["serving_default"]
    meta = read_metadata(folder)
    volumetric = signature.structured_input_signature[1]["lr_image"].shape.rank == 5

    def fn(lr):
        return signature(lr_image=tf.constant(lr))["sr_image"].numpy()

    scale = meta.get("scale", 3)
    return Predictor(fn, scale, str(folder), meta, volumetric, Degradation.from_metadata(meta, scale))


def load_run(folder: Path) -> Predictor:
    """The generator of a training run at its latest checkpoint."""
    from heart_sr_tf.training.build import make_generator
    from heart_sr_tf.training.runs import Run

    run = Run.open(folder)
    generator = make_generator(run.config)
    checkpoint = run.restore_generator(generator)
    call = tf.function(lambda x: generator(x, training=False), reduce_retracing=True)
    info = {"run": str(run.folder), "checkpoint": checkpoint, "kind": run.kind}
    volumetric = len(generator.inputs[0].shape) == 5
    predictor = Predictor(
        lambda lr: call(tf.constant(lr)).numpy(),
        run.config.data.scale,
        str(run.folder),
        info,
        volumetric,
        Degradation.from_config(run.config),
        generator,
        run,
    )
    return predictor


SHIPPED_ENV = "HEART_SR_MODELS"


def shipped_model_dirs() -> list[Path]:
    """Where the shipped models are looked for: $HEART_SR_MODELS, ./saved_models, the checkout's saved_models
    (an editable install), and ``<prefix>/share/heart-sr-tf/saved_models`` (a regular ``pip install .``)."""
    dirs = [Path(os.environ[SHIPPED_ENV])] if os.environ.get(SHIPPED_ENV) else []
    dirs += [Path.cwd() / "saved_models", Path(__file__).resolve().parents[2] / "saved_models"]
    return dirs + [Path(sys.prefix) / "share" / "heart-sr-tf" / "saved_models"]


def find_model(path: Path) -> Path:
    """``path`` as given when it exists; else a shipped model of that name (``rrdb_kspace`` or
    ``saved_models/rrdb_kspace``), wherever the tool is installed and run from."""
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "saved_models"):
        for folder in shipped_model_dirs():
            if (folder / parts[-1]).is_dir():
                return folder / parts[-1]
    raise HeartSRError(
        f"{path}: no such run or model (shipped models are looked for in ./saved_models, the checkout "
        f"and {shipped_model_dirs()[-1]})"
    )


def load_predictor(path: Path) -> Predictor:
    """A run folder (has config.toml), a SavedModel, a model base path, or a shipped model's name."""
    path = find_model(path)
    if (path / "config.toml").is_file():
        return load_run(path)
    return load_saved_model(path)
