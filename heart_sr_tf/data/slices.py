"""From normalised volumes to the paper's 256x256 2D slices and the per-patient heart box."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np

from heart_sr_tf.data.acdc import Patient, load_frames, load_labels
from heart_sr_tf.data.intensity import normalise

HR_SIZE = 256
HEART_MARGIN = 10
GRID_PIXEL_MM = 1.35  # ACDC's median protocol-grid pixel (field of view / 256): 1.27 x 1.45 mm
SMALLEST_GRID_PIXEL_MM = 0.87  # the smallest in ACDC: a finer grid means a field of view smaller than any seen


@dataclass
class Slice:
    """One 2D image in [0, 1], resized to ``size x size``, with where it came from."""

    image: np.ndarray  # (size, size) float32
    patient: str
    group: str
    slice: int  # 0-based index along the volume's third axis
    frame: int  # 1-based frame number, as in Info.cfg
    spacing: tuple[float, float, float]  # original voxel size in mm (x, y, slice)
    box: tuple[int, int, int, int] | None  # heart box (row0, row1, col0, col1), ends exclusive


def resize_slice(image: np.ndarray, size: int | tuple[int, int] = HR_SIZE) -> np.ndarray:
    """Resize one 2D slice to ``size x size`` (or ``(rows, columns)``) with cv2 bicubic and clip to [0, 1]."""
    rows, columns = (size, size) if isinstance(size, int) else size
    image = np.ascontiguousarray(image, dtype=np.float32)
    out = cv2.resize(image, (columns, rows), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def grid_axis(n: int, zoom: float) -> tuple[int, int]:
    """``(size, offset)`` of a field of view of ``n`` pixels of ``zoom`` mm along one axis on the 256 grid the
    segmenter works on: all of it (the protocol), or, for a field of view smaller than ACDC's, at ``GRID_PIXEL_MM``
    in the middle."""
    fov = n * float(zoom)
    if fov / HR_SIZE >= SMALLEST_GRID_PIXEL_MM:
        return HR_SIZE, 0
    size = max(1, min(HR_SIZE, round(fov / GRID_PIXEL_MM)))
    return size, (HR_SIZE - size) // 2


def heart_box(
    labels: list[np.ndarray], size: int = HR_SIZE, margin: int = HEART_MARGIN
) -> tuple[int, int, int, int] | None:
    """Bounding box of the union of all label volumes, in ``size x size`` slice coordinates.

    The box is widened by ``margin`` pixels on every side and clamped to the image.
    Returns ``(row0, row1, col0, col1)`` with exclusive ends, or None when nothing is labelled.
    """
    if not labels:
        return None
    mask = np.zeros(labels[0].shape[:2], dtype=bool)
    for volume in labels:
        mask |= np.any(volume > 0, axis=tuple(range(2, volume.ndim)))
    if not mask.any():
        return None
    height, width = mask.shape
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    r0 = math.floor(rows[0] * size / height) - margin
    r1 = math.ceil((rows[-1] + 1) * size / height) + margin
    c0 = math.floor(cols[0] * size / width) - margin
    c1 = math.ceil((cols[-1] + 1) * size / width) + margin
    return max(r0, 0), min(r1, size), max(c0, 0), min(c1, size)


def scan_frames(data: np.ndarray, size: int = HR_SIZE) -> Iterator[tuple[int, np.ndarray]]:
    """``(frame, images [slices, size, size])`` for every frame of a scan's ``data`` (``[x, y[, slices[,
    frames]]]``, slices third) on the protocol's grid, as :func:`patient_slices` makes ACDC's: each 3D frame's own
    window, then each slice resized to ``size x size``. Frames are numbered from 1."""
    frames = data.reshape(data.shape[:2] + (1, 1)) if data.ndim == 2 else data
    frames = frames[..., None] if frames.ndim == 3 else frames
    for t in range(frames.shape[3]):
        scaled = normalise(frames[..., t])
        yield t + 1, np.stack([resize_slice(scaled[:, :, z], size) for z in range(frames.shape[2])])


def scan_slices(data: np.ndarray, size: int = HR_SIZE) -> Iterator[tuple[int, int, np.ndarray]]:
    """``(slice, frame, image)`` for every slice of every frame of :func:`scan_frames`."""
    for frame, images in scan_frames(data, size):
        for z, image in enumerate(images):
            yield z, frame, image


def patient_slices(patient: Patient, size: int = HR_SIZE, margin: int = HEART_MARGIN) -> Iterator[Slice]:
    """Every (slice, frame) of a patient as a normalised ``size x size`` image.

    The intensity window is computed per 3D frame. All files are loaded and checked before
    the first slice is yielded, so a bad file never leaves a patient half-written.
    """
    frames, spacing = load_frames(patient)
    labels = load_labels(patient, frames[0][1].shape)
    box = heart_box(list(labels.values()), size=size, margin=margin)
    for number, volume in frames:
        scaled = normalise(volume)
        for z in range(volume.shape[2]):
            yield Slice(
                image=resize_slice(scaled[:, :, z], size),
                patient=patient.id,
                group=patient.info.group,
                slice=z,
                frame=number,
                spacing=tuple(float(s) for s in spacing),
                box=box,
            )
