"""One interface over a generator, wherever it lives: a training run, a SavedModel (in TensorFlow or OpenVINO,
float32 or bfloat16), or a TF Serving server. Large inputs run in bounded memory (tiling.py)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.discovery import find_model
from heart_sr_tf.export.layout import read_metadata, resolve_model_dir, training_data
from heart_sr_tf.inference.hardware import resolve_backend, resolve_precision
from heart_sr_tf.inference.tiling import BUDGET, core_side, tiled_apply
from heart_sr_tf.training.runs import is_run_folder

VOLUME_BUDGET = 4 * BUDGET  # LR voxels per call of a 3D model, tiled in-plane (each tile keeps its whole depth)
VOLUME_MARGIN = 24  # LR pixels of in-plane context around a 3D tile: mDCSRN's receptive field is about 19


class Predictor:
    """``predictor(lr)`` maps LR grids ``[B, h, w, 1]`` float32 in [0, 1] to ``[B, s*h, s*w, 1]`` in [0, 1]
    (``[B, g*h, w, 1]`` for a through-plane model), in calls of bounded size (tiles for large slices).

    ``fn`` takes the model's own input: slices ``[B, h, w, 1]``, or volumes ``[B, h, w, D, 1]`` when
    ``volumetric`` (a 3D generator), which sees a lone slice as a volume of depth 1. A 3D generator's ``axis``
    says what D ran along in training (``"slices"`` or cine ``"frames"``) and ``depth`` how many.
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
        backend: str = "tensorflow",
        precision: str = "float32",
        axis: str | None = None,
        depth: int | None = None,
    ):
        self.fn, self.scale, self.source, self.info = fn, int(scale), source, info or {}
        self.volumetric = volumetric
        self.axis, self.depth = (axis, depth) if volumetric else (None, None)
        self.degradation = degradation  # what the model was trained on; None: not known (a served in-plane model)
        self.generator = generator  # the Keras generator, for a training run only
        self.run = run  # the training run (heart_sr_tf.training.runs.Run), for a training run only
        self.backend, self.precision = backend, precision

    @property
    def factors(self) -> tuple[int, int]:
        """How many output pixels one input pixel becomes along each axis."""
        return self.degradation.factors if self.degradation is not None else (self.scale, self.scale)

    def with_consistency(self) -> Predictor:
        """This predictor followed by data consistency with its own degradation (a no-op if already there)."""
        if self.info.get("data_consistency"):
            return self
        self._check_in_plane("data consistency")
        import tensorflow as tf

        from heart_sr_tf.models.consistency import DataConsistency

        layer = DataConsistency(self.degradation.kind, self.scale)

        def fn(lr):
            sr = np.asarray(self.fn(lr), dtype=np.float32)
            return layer([tf.constant(sr), tf.constant(lr)]).numpy()

        return self._wrapped(fn, "data_consistency", "data consistency")

    def with_self_ensemble(self) -> Predictor:
        """This predictor averaged over the eight symmetries of the square, aligned to its LR grid: the model
        ``export --self-ensemble`` builds (a no-op if already there), eight times the work."""
        if self.info.get("self_ensemble"):
            return self
        self._check_in_plane("the in-plane self-ensemble")
        from heart_sr_tf.models.inplane_ensemble import TRANSFORMS, DihedralMerge

        merge = DihedralMerge(self.degradation.factor, dtype="float32")

        def fn(lr):
            passes = []
            for transpose, rows, cols in TRANSFORMS:  # as with_dihedral_ensemble: transpose first, then flip
                x = np.swapaxes(lr, 1, 2) if transpose else lr
                x = x[:, ::-1] if rows else x
                x = x[:, :, ::-1] if cols else x
                passes.append(np.asarray(self.fn(np.ascontiguousarray(x)), dtype=np.float32))
            return np.asarray(merge(passes))

        return self._wrapped(fn, "self_ensemble", "self-ensemble")

    def _check_in_plane(self, what: str) -> None:
        if self.degradation is None:
            raise HeartSRError(f"{self.source}: its degradation is unknown, so {what} cannot be applied")
        if self.volumetric or self.degradation.kind == "through_plane":
            raise HeartSRError(f"{self.source}: {what} is for 2D in-plane models")

    def _wrapped(self, fn, key: str, label: str) -> Predictor:
        """The same predictor with ``fn`` in place of its own, its info saying ``key``."""
        return Predictor(
            fn,
            self.scale,
            f"{self.source} + {label}",
            {**self.info, key: True},
            self.volumetric,
            self.degradation,
            self.generator,
            self.run,
            self.backend,
            self.precision,
            self.axis,
            self.depth,
        )

    def __call__(self, lr: np.ndarray) -> np.ndarray:
        lr = self._check(lr, 4, "[batch, h, w, 1]")
        if self.volumetric:
            return self._run(lr[:, :, :, None])[:, :, :, 0]
        return self._checked(tiled_apply(self.fn, lr, self.factors))

    def volume(self, lr: np.ndarray) -> np.ndarray:
        """``[B, h, w, D, 1] -> [B, s*h, s*w, D, 1]``: whole volumes for a 3D model, slice by slice for a 2D one."""
        lr = self._check(lr, 5, "[batch, h, w, depth, 1]")
        if self.volumetric:
            tile = core_side(VOLUME_BUDGET // lr.shape[3], VOLUME_MARGIN)  # each window keeps the whole depth
            return self._checked(tiled_apply(self.fn, lr, self.factors, tile, VOLUME_MARGIN, VOLUME_BUDGET))
        return np.stack([self(lr[:, :, :, d]) for d in range(lr.shape[3])], axis=3)

    def frames(self, lr: np.ndarray) -> np.ndarray:
        """One slice's cine ``[h, w, T]`` -> ``[s*h, s*w, T]``. A model along frames gives each frame from the
        ``depth`` frames centred on it, wrapping around the cycle, as it trained; any other model frame by frame."""
        lr = np.asarray(lr, dtype=np.float32)
        if lr.ndim != 3:
            raise HeartSRError(f"{self.source}: expected one slice's cine [h, w, frames], got {lr.shape}")
        from heart_sr_tf.data.cine import frame_windows

        if self.axis != "frames":
            return np.moveaxis(self(np.moveaxis(lr, 2, 0)[..., None])[..., 0], 0, 2)
        out = self.volume(frame_windows(lr, self.depth)[..., None])  # [T, s*h, s*w, depth, 1]
        return np.moveaxis(out[:, :, :, self.depth // 2, 0], 0, 2)

    def _run(self, lr: np.ndarray) -> np.ndarray:
        return self._checked(np.asarray(self.fn(lr), dtype=np.float32))

    def _checked(self, out: np.ndarray) -> np.ndarray:
        """Clipped to [0, 1]; a NaN or infinite output is an error, never a silent zero."""
        bad = int(np.sum(~np.isfinite(out)))
        if bad:
            raise HeartSRError(f"{self.source}: the model returned {bad} NaN or infinite values")
        return np.clip(out, 0.0, 1.0)

    def _check(self, lr, ndim: int, shape: str) -> np.ndarray:
        lr = np.asarray(lr)
        if lr.ndim != ndim or lr.shape[-1] != 1:
            raise HeartSRError(f"{self.source}: expected LR images of shape {shape}, got {lr.shape}")
        if lr.dtype != np.float32:
            raise HeartSRError(f"{self.source}: expected float32 LR images in [0, 1], got {lr.dtype}")
        return lr


def load_saved_model(path: Path, backend: str = "tensorflow", precision: str = "float32") -> Predictor:
    """An exported generator in ``backend`` and ``precision`` (``auto``: bfloat16 where native)."""
    precision = effective_precision(path, backend, precision)
    backend = resolve_backend(backend)
    folder = resolve_model_dir(path)
    meta = read_metadata(folder)
    degradation = Degradation.from_metadata(meta, str(folder))  # checked before any model loads
    if precision == "int8" and backend != "openvino":
        raise HeartSRError("--precision int8: runs in OpenVINO (--backend openvino or auto)")
    if backend == "openvino":
        from heart_sr_tf.inference.openvino_backend import openvino_fn

        fn, rank = openvino_fn(folder, precision)
        volumetric = rank == 5
    elif precision == "bfloat16":
        from heart_sr_tf.inference.tensorflow_backend import tensorflow_bfloat16

        fn, generator = tensorflow_bfloat16(folder, meta)
        volumetric = len(generator.inputs[0].shape) == 5
    else:
        import tensorflow as tf

        from heart_sr_tf.export.reader import load_exported

        folder, loaded = load_exported(folder)
        signature = loaded.signatures["serving_default"]
        volumetric = signature.structured_input_signature[1]["lr_image"].shape.rank == 5

        def fn(lr):
            return signature(lr_image=tf.constant(lr))["sr_image"].numpy()

    axis, depth = volume_layout(meta, folder) if volumetric else (None, None)
    return Predictor(
        fn,
        degradation.factor,
        str(folder),
        meta,
        volumetric,
        degradation,
        backend=backend,
        precision=precision,
        axis=axis,
        depth=depth,
    )


def effective_precision(path, backend: str, precision: str) -> str:
    """What ``precision`` means for this model on this machine. ``auto`` is bfloat16 where the CPU computes it
    natively, unless the model cannot run so on ``backend``: TensorFlow's bfloat16 path rebuilds the generator from
    the training config in the export's metadata, so an export without one runs in float32 (``auto`` never fails;
    an explicit ``bfloat16`` is refused by name). Where bfloat16 is not native, ``auto`` in OpenVINO is the model's
    int8 twin when `quantize` made one and found it within its accuracy limits (int8 runs faster than float32
    there), else float32."""
    resolved = resolve_precision(precision)
    if precision != "auto":
        return resolved
    if resolved == "float32":
        return "int8" if checked_int8_twin(path, backend) is not None else resolved
    if resolve_backend(backend) != "tensorflow":
        return resolved
    found = find_model(Path(path))
    if is_run_folder(found):
        return resolved
    return resolved if read_metadata(resolve_model_dir(found)).get("config") else "float32"


def checked_int8_twin(path, backend: str) -> dict | None:
    """`quantize`'s check of the model's int8 twin, when it runs in OpenVINO and the twin was found within the
    limits; else None."""
    if resolve_backend(backend) != "openvino":
        return None
    found = find_model(Path(path))
    if is_run_folder(found):
        return None
    from heart_sr_tf.inference.openvino_backend import checked_int8

    return checked_int8(resolve_model_dir(found))


def volume_layout(meta: dict, folder) -> tuple[str, int]:
    """``(axis, depth)`` of an exported 3D generator, from the training config its metadata carries."""
    data = training_data(meta)
    try:
        if data is None:
            raise ValueError
        return str(data.get("axis", "slices")), int(data.get("depth", 4))
    except (TypeError, ValueError):
        raise HeartSRError(f"{folder}: a 3D model whose metadata holds no readable training config") from None


def generator_run(folder: Path):
    """The training run in ``folder``, refused in one line when it trained a segmenter (as an exported segmenter
    is: ``Degradation.from_metadata``), whose config has no generator and no degradation."""
    from heart_sr_tf.training.runs import Run

    run = Run.open(folder)
    if run.kind == "segmenter":
        raise HeartSRError(
            f"{run.folder}: a segmenter run, not a super-resolution model (export it and use it with --segmenter)"
        )
    return run


def load_run(folder: Path, precision: str = "float32", step: int | None = None) -> Predictor:
    """The generator of a training run at its latest checkpoint, or at ``step`` (TensorFlow)."""
    from heart_sr_tf.inference.tensorflow_backend import keras_fn
    from heart_sr_tf.models.registry import build_generator

    precision = resolve_precision(precision)
    if precision == "int8":
        raise HeartSRError(f"{folder}: a training run runs in TensorFlow; export and quantize it for int8")
    run = generator_run(folder)
    generator = build_generator(run.config, precision)
    checkpoint = run.restore_generator(generator, step)
    info = {"run": str(run.folder), "checkpoint": checkpoint, "kind": run.kind}
    volumetric = len(generator.inputs[0].shape) == 5
    return Predictor(
        keras_fn(generator),
        run.config.degradation.factor,
        str(run.folder),
        info,
        volumetric,
        run.config.degradation,
        generator,
        run,
        precision=precision,
        axis=run.config.data.axis if volumetric else None,
        depth=run.config.data.depth if volumetric else None,
    )


def load_predictor(
    path: Path, backend: str = "tensorflow", precision: str = "float32", step: int | None = None
) -> Predictor:
    """A run folder (has config.toml; its latest checkpoint, or ``step``'s), a SavedModel, a model base path, or a
    shipped model's name.

    ``backend`` ``auto`` is OpenVINO for an exported model when it is installed, else TensorFlow.
    """
    path = find_model(path)
    if is_run_folder(path):
        if backend == "openvino":
            raise HeartSRError(f"{path}: a training run runs in TensorFlow; export it to use --backend openvino")
        return load_run(path, precision, step)
    if step is not None:
        raise HeartSRError(f"--step: picks a checkpoint of a training run; {path} is an exported model")
    return load_saved_model(path, backend, precision)


def model_degradation(path) -> tuple[str, Degradation]:
    """A local model's place (a run folder, or an export's version folder) and what it was trained for, read from
    the run's config or the export's metadata without loading the model: a model given for the wrong step is
    refused before any model loads."""
    path = find_model(path)
    if is_run_folder(path):
        run = generator_run(path)
        return str(run.folder), run.config.degradation
    folder = resolve_model_dir(path)
    return str(folder), Degradation.from_metadata(read_metadata(folder), str(folder))


def load_local_model(path, backend: str, precision: str) -> Predictor:
    """A local model as a predictor: an export in ``backend``, a training run in TensorFlow whatever the backend
    (OpenVINO needs an export)."""
    from heart_sr_tf.startup import import_tensorflow_quietly

    if is_run_folder(find_model(path)):
        import_tensorflow_quietly()
        return load_predictor(path, "tensorflow", precision)
    return load_predictor(path, backend, precision)
