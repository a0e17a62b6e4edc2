"""tf.data pipelines: stored HR slices in, (LR grid, HR) pairs out, degraded on the fly.

Nothing here holds the dataset in memory: slices stream from the TFDS record files (2D) or
from the NIfTI files (3D), and the LR grid is computed inside the pipeline, never stored.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import tensorflow as tf

from heart_sr_tf.data.acdc import find_patients
from heart_sr_tf.data.acdc_sr import QUANT
from heart_sr_tf.data.degradation import DEFAULT_SCALE, Degradation
from heart_sr_tf.data.slices import HR_SIZE, patient_slices

AUTOTUNE = tf.data.AUTOTUNE


def slice_dataset(data_dir: Path, roi: str = "full", split: str = "train", shuffle_files: bool = False):
    """The stored slices of one split as a dataset of dicts (``hr`` is uint16, ``[H, W, 1]``)."""
    import tensorflow_datasets as tfds

    from heart_sr_tf.data.prepare import builder

    build = builder(Path(data_dir), roi)
    if not build.is_prepared():
        from heart_sr_tf.errors import DataError

        raise DataError(data_dir, f"no prepared acdc_sr/{roi} dataset here; run `python cli.py prepare` first")
    read = tfds.ReadConfig(try_autocache=False, shuffle_seed=None)
    return build.as_dataset(split=split, shuffle_files=shuffle_files, read_config=read)


def num_slices(data_dir: Path, roi: str, split: str) -> int:
    """Slices in one split; 0 when the split is empty or absent (e.g. a source holding only ``testing/``)."""
    from heart_sr_tf.data.prepare import builder

    splits = builder(Path(data_dir), roi).info.splits
    return int(splits[split].num_examples) if split in splits else 0


def to_unit(hr_uint16: tf.Tensor) -> tf.Tensor:
    """Stored uint16 back to float32 in [0, 1]."""
    return tf.cast(hr_uint16, tf.float32) / QUANT


def aligned_patches(lr: tf.Tensor, hr: tf.Tensor, patch: int, count: int, scale):
    """``count`` random aligned crops of one degraded slice: HR ``patch x patch`` at ``(sy*r, sx*c)`` and LR
    ``patch/sy x patch/sx`` at ``(r, c)``, where ``scale`` is ``s`` or ``(sy, sx)``. Slices smaller than a patch
    are zero-padded (MRI background is dark)."""
    sy, sx = (scale, scale) if isinstance(scale, int) else scale
    small_h, small_w = patch // sy, patch // sx
    hr_shape, lr_shape = tf.shape(hr), tf.shape(lr)
    height, width = tf.maximum(hr_shape[0], patch), tf.maximum(hr_shape[1], patch)
    h, w = tf.maximum(lr_shape[0], small_h), tf.maximum(lr_shape[1], small_w)
    hr = tf.image.pad_to_bounding_box(hr, 0, 0, height, width)
    lr = tf.image.pad_to_bounding_box(lr, 0, 0, h, w)
    rows = tf.random.uniform([count], 0, tf.minimum((height - patch) // sy, h - small_h) + 1, dtype=tf.int32)
    cols = tf.random.uniform([count], 0, tf.minimum((width - patch) // sx, w - small_w) + 1, dtype=tf.int32)
    return _crops(lr, rows, cols, small_h, small_w), _crops(hr, rows * sy, cols * sx, patch, patch)


def _crops(image: tf.Tensor, rows: tf.Tensor, cols: tf.Tensor, height: int, width: int) -> tf.Tensor:
    strips = tf.gather(image, rows[:, None] + tf.range(height)[None, :], axis=0)  # [count, height, W, 1]
    return tf.gather(strips, cols[:, None] + tf.range(width)[None, :], axis=2, batch_dims=1)


def augment(hr: tf.Tensor) -> tf.Tensor:
    """Random flip and 90-degree rotation of one ``[H, W, 1]`` image (the 8 dihedral symmetries)."""
    hr = tf.image.rot90(hr, tf.random.uniform([], 0, 4, dtype=tf.int32))
    return tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.image.flip_left_right(hr), lambda: hr)


def train_pairs(
    slices: tf.data.Dataset,
    patch: int = 96,
    scale: int = DEFAULT_SCALE,
    batch_size: int = 16,
    patches_per_slice: int = 4,
    shuffle_buffer: int = 1024,
    repeat: bool = True,
    degradation: Degradation | None = None,
) -> tf.data.Dataset:
    """Batches of ``(lr [B, p/s, p/s, 1], hr [B, p, p, 1])`` random aligned patches (``[B, p/g, p, 1]`` LR for the
    through-plane degradation, whose random dihedral augmentation makes rows and columns both the slice axis).

    Each whole slice is augmented and degraded first, then cut into patches: the k-space degradation
    of a patch would wrap its edges, a different degradation from the scanner's.
    """
    degradation = degradation or Degradation("decimation", scale)
    scale = degradation.factor
    if patch % scale:
        raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")
    ds = slices.repeat() if repeat else slices
    ds = ds.map(lambda ex: degradation.pair(augment(to_unit(ex["hr"]))), num_parallel_calls=AUTOTUNE)
    factors = degradation.factors
    ds = ds.map(lambda lr, hr: aligned_patches(lr, hr, patch, patches_per_slice, factors), num_parallel_calls=AUTOTUNE)
    ds = ds.unbatch().shuffle(shuffle_buffer)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)


def eval_pairs(
    slices: tf.data.Dataset, scale: int = DEFAULT_SCALE, batch_size: int = 1, degradation: Degradation | None = None
) -> tf.data.Dataset:
    """Whole slices as ``(lr, hr)``, in stored order. Heart boxes differ in size: keep batch_size 1 there."""
    degradation = degradation or Degradation("decimation", scale)
    ds = slices.map(lambda ex: degradation.pair(to_unit(ex["hr"])), num_parallel_calls=AUTOTUNE)
    return ds.batch(batch_size).prefetch(AUTOTUNE)


def patient_volumes(acdc_dir: Path, size: int = HR_SIZE, patient_ids=None):
    """Yield ``(patient_id, volume [size, size, Z])`` in [0, 1]: every 3D frame of every chosen patient, D running
    along the slices (the temporal volumes, D along the cine frames, come from ``data/cine.py``)."""
    for patient in find_patients(Path(acdc_dir)):
        if patient_ids is not None and patient.id not in patient_ids:
            continue
        slices = list(patient_slices(patient, size))
        frames = sorted({item.frame for item in slices})
        stack = np.zeros((size, size, max(item.slice for item in slices) + 1, len(frames)), np.float32)
        for item in slices:  # [size, size, Z, T]
            stack[:, :, item.slice, frames.index(item.frame)] = item.image
        for t in range(stack.shape[3]):
            yield patient.id, stack[..., t]


def augment_volume(hr: tf.Tensor) -> tf.Tensor:
    """:func:`augment` of one ``[H, W, D, 1]`` volume (the same turn for every depth slice), and D reversed
    half of the time (a cine played backwards, or a stack seen from the other end)."""
    hr = tf.transpose(hr, [0, 1, 3, 2])[:, :, 0]  # [H, W, D]: depth as channels
    hr = augment(hr)
    hr = tf.cond(tf.random.uniform([]) < 0.5, lambda: tf.reverse(hr, axis=[2]), lambda: hr)
    return hr[..., None]


def aligned_volume_patches(lr: tf.Tensor, hr: tf.Tensor, patch: int, depth: int, count: int, factors):
    """``count`` aligned crops of one degraded volume, all over the same random run of ``depth`` slices:
    ``(lr [count, p/sy, p/sx, depth, 1], hr [count, p, p, depth, 1])``."""
    start = tf.random.uniform([], 0, tf.shape(hr)[2] - depth + 1, dtype=tf.int32)
    lr, hr = lr[:, :, start : start + depth, 0], hr[:, :, start : start + depth, 0]  # depth as channels
    lr, hr = aligned_patches(lr, hr, patch, count, factors)
    return lr[..., None], hr[..., None]


def train_volumes(
    volumes,
    degradation: Degradation,
    patch: int = 48,
    depth: int = 4,
    batch_size: int = 4,
    patches_per_volume: int = 4,
    shuffle_buffer: int = 64,
    repeat: bool = True,
) -> tf.data.Dataset:
    """Batches of 3D pairs ``(lr [B, p/s, p/s, depth, 1], hr [B, p, p, depth, 1])`` from ``volumes()``, a function
    yielding HR volumes ``[H, W, D]`` in [0, 1] (re-read on every pass). Each whole volume is augmented and
    every in-plane slice degraded first (as a 2D slice is), then cut into aligned patches; D is never degraded."""
    scale = degradation.factor
    if patch % scale:
        raise ValueError(f"patch size {patch} must be a multiple of the scale {scale}")

    def generate():
        for volume in volumes():
            if volume.shape[2] >= depth:
                yield volume[..., None]

    ds = tf.data.Dataset.from_generator(generate, output_signature=tf.TensorSpec([None, None, None, 1], tf.float32))
    if repeat:
        ds = ds.repeat()
    ds = ds.map(lambda hr: degradation.pair_volume(augment_volume(hr)), num_parallel_calls=AUTOTUNE)
    factors = degradation.factors
    ds = ds.map(
        lambda lr, hr: aligned_volume_patches(lr, hr, patch, depth, patches_per_volume, factors),
        num_parallel_calls=AUTOTUNE,
    )
    ds = ds.unbatch().shuffle(shuffle_buffer)
    return ds.batch(batch_size, drop_remainder=True).prefetch(AUTOTUNE)
