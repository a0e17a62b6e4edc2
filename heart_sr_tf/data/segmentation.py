"""Labelled frames for the segmenter and the clinical measurements: ACDC's ED and ES frames with their labels.

Every frame follows the protocol (per volume, clip to [min, 99.5th percentile], scale to [0, 1]; every slice
resized to 256x256 with cv2 bicubic); its labels (0 background, 1 RV, 2 myocardium, 3 LV) are resized with
nearest neighbour. The patient split is the one ``prepare`` uses (``split_patients`` with the same seed), so
the segmenter never sees a validation or test patient of the super-resolution models.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heart_sr_tf.data.acdc import Patient, load_frames, load_labels, scan_patients
from heart_sr_tf.data.intensity import intensity_window, normalise
from heart_sr_tf.data.slices import HR_SIZE, resize_slice
from heart_sr_tf.data.splits import split_patients
from heart_sr_tf.errors import DataError

CLASSES = ("background", "RV", "myocardium", "LV")


@dataclass
class LabelledFrame:
    """One 3D frame on the protocol grid: ``image`` ``[slices, size, size]`` in [0, 1], ``labels`` the same
    shape (uint8), the native ``labels_native`` ``[x, y, slices]``, and the native voxel size in mm."""

    patient: str
    group: str
    frame: int  # 1-based, as in Info.cfg
    phase: str  # "ED" or "ES"
    image: np.ndarray
    labels: np.ndarray
    labels_native: np.ndarray
    spacing: tuple[float, float, float]
    window: tuple[float, float]  # the protocol's intensity window of the native volume
    native: np.ndarray | None = None  # the native volume [x, y, slices], kept only when asked for

    @property
    def grid_pixel_mm(self) -> tuple[float, float]:
        """The in-plane size (mm) of one pixel of the 256x256 protocol grid, along its rows and its columns."""
        nx, ny, _ = self.labels_native.shape
        sx, sy, _ = self.spacing
        return sx * nx / self.image.shape[1], sy * ny / self.image.shape[2]

    @property
    def grid_voxel_ml(self) -> float:
        """The volume of one voxel of the 256x256 protocol grid, in ml."""
        rows, columns = self.grid_pixel_mm
        return rows * columns * self.spacing[2] / 1000.0

    @property
    def native_voxel_ml(self) -> float:
        sx, sy, sz = self.spacing
        return sx * sy * sz / 1000.0


def resize_labels(labels: np.ndarray, size: int = HR_SIZE) -> np.ndarray:
    """A 2D label map resized to ``size x size`` with nearest neighbour (no label is invented)."""
    return cv2.resize(np.ascontiguousarray(labels, dtype=np.uint8), (size, size), interpolation=cv2.INTER_NEAREST)


def split_of(acdc_dir: Path, split: str, seed: int = 0) -> list[Patient]:
    """The patients of ``split`` under ``acdc_dir``, as ``prepare`` assigns them with ``seed``."""
    patients, _ = scan_patients(acdc_dir)
    assignment = split_patients([(p.id, p.info.group, p.source_split) for p in patients], seed=seed)
    chosen = [p for p in patients if assignment[p.id] == split]
    if not chosen:
        raise DataError(acdc_dir, f"the {split} split holds no patients")
    return chosen


def labelled_frames(patient: Patient, size: int = HR_SIZE, keep_native: bool = False) -> list[LabelledFrame]:
    """The ED and ES frames of ``patient`` (those with labels), on the protocol grid."""
    frames, spacing = load_frames(patient)
    labels = load_labels(patient, frames[0][1].shape)
    by_number = dict(frames)
    out = []
    for number, volume_labels in sorted(labels.items()):
        if number not in by_number:
            raise DataError(patient.folder, f"labels for frame {number}, but the scan has no such frame")
        volume = by_number[number]
        window = intensity_window(volume)
        scaled = normalise(volume, window)
        depth = volume.shape[2]
        image = np.stack([resize_slice(scaled[:, :, z], size) for z in range(depth)])
        grid = np.stack([resize_labels(volume_labels[:, :, z], size) for z in range(depth)])
        phase = "ED" if number == patient.info.ed else "ES" if number == patient.info.es else f"frame{number}"
        out.append(
            LabelledFrame(
                patient.id,
                patient.info.group,
                number,
                phase,
                image,
                grid,
                volume_labels,
                tuple(float(s) for s in spacing),
                window,
                volume if keep_native else None,
            )
        )
    return out


def load_split(acdc_dir: Path, split: str, seed: int = 0, limit: int | None = None) -> list[LabelledFrame]:
    """Every labelled frame of the split's patients (the first ``limit`` patients when given)."""
    patients = split_of(acdc_dir, split, seed)[:limit]
    frames = []
    for patient in patients:
        frames += labelled_frames(patient)
    return frames


def slice_arrays(frames: list[LabelledFrame]) -> tuple[np.ndarray, np.ndarray]:
    """``(images [N, size, size, 1] float32, labels [N, size, size] uint8)``: every slice of ``frames``."""
    images = np.concatenate([f.image for f in frames])[..., None].astype(np.float32)
    labels = np.concatenate([f.labels for f in frames])
    return images, labels


def label_centres(labels: np.ndarray) -> np.ndarray:
    """``[N, 2]`` (row, column): the centre of each slice's labelled pixels, or -1 where it has none."""
    centres = np.full((len(labels), 2), -1, np.int32)
    for i, label in enumerate(labels):
        rows, cols = np.nonzero(label)
        if rows.size:
            centres[i] = (int(rows.mean()), int(cols.mean()))
    return centres


def segmentation_dataset(
    images: np.ndarray, labels: np.ndarray, crop: int, batch_size: int, seed: int = 0, jitter: int = 40
):
    """Endless shuffled batches of ``crop x crop`` patches, ``(image [B, c, c, 1], labels [B, c, c] int32)``.

    A patch is centred on the slice's heart (its labels' centre) moved by up to ``jitter`` pixels, or placed
    at random on a slice without labels, so that small patches still show the heart with its surroundings;
    then dihedral flips, a random intensity gamma and contrast (what differs between scanners).
    """
    import tensorflow as tf

    size = images.shape[1]
    centres = label_centres(labels)
    ds = tf.data.Dataset.from_tensor_slices((images, labels.astype(np.int32), centres))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    half = crop // 2

    def augment(image, label, centre):
        shift = tf.random.uniform([2], -jitter, jitter + 1, dtype=tf.int32)
        anywhere = tf.random.uniform([2], half, size - crop + half + 1, dtype=tf.int32)
        middle = tf.where(centre[0] >= 0, centre + shift, anywhere)
        start = tf.clip_by_value(middle - half, 0, size - crop)
        stacked = tf.concat([image, tf.cast(label[..., None], tf.float32)], axis=-1)
        stacked = tf.slice(stacked, [start[0], start[1], 0], [crop, crop, 2])
        stacked = tf.image.random_flip_left_right(stacked)
        stacked = tf.image.random_flip_up_down(stacked)
        stacked = tf.image.rot90(stacked, tf.random.uniform([], 0, 4, dtype=tf.int32))
        image, label = stacked[..., :1], tf.cast(tf.round(stacked[..., 1]), tf.int32)
        gamma = tf.exp(tf.random.uniform([], -0.4, 0.4))
        image = tf.pow(tf.clip_by_value(image, 0.0, 1.0), gamma)
        image = tf.clip_by_value(image * tf.random.uniform([], 0.85, 1.15), 0.0, 1.0)
        return image, label

    ds = ds.map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.batch(batch_size, drop_remainder=True).prefetch(tf.data.AUTOTUNE)
