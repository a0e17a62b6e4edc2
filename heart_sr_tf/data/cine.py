"""Whole cines on the protocol's grid: every frame of one slice as a volume ``[h, w, T]`` in [0, 1].

The temporal (frames-axis) 3D models train and are scored on these. A full-size cine is put on the
protocol's grid as every 2D slice is (its own per-frame window, cv2 bicubic to 256x256). A cine cropped
around the heart by its publisher (``acdc-cine-cropped``) is put on the grid of the full-size scan it was cut
from: its ED frame is found inside the patient's full-size ED volume (turned back if the publisher turned it),
whose intensity window it takes, and it is resized by the same factors (``256 / H``, ``256 / W``), so its
pixels match the 2D models' slices. A cine whose full-size ED volume is not at hand is taken as full-size; one
whose ED frame is not found in it is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from heart_sr_tf.data.acdc import Patient, find_patients, load_frames
from heart_sr_tf.data.intensity import intensity_window, normalise
from heart_sr_tf.data.slices import HR_SIZE
from heart_sr_tf.errors import DataError


@dataclass
class SliceCine:
    """One slice's whole cardiac cycle: ``images[:, :, t]`` is frame ``t + 1``."""

    patient: str
    slice: int
    images: np.ndarray  # [h, w, T] float32 in [0, 1]


def cine_patients(roots: Iterable[Path], patient_ids: Iterable[str] | None = None) -> list[Patient]:
    """The patients with a 4D cine under any of ``roots`` (the first root holding a patient wins)."""
    wanted = None if patient_ids is None else set(patient_ids)
    found: dict[str, Patient] = {}
    for root in roots:
        for patient in find_patients(Path(root)):
            if patient.cine_path is None or patient.id in found:
                continue
            if wanted is None or patient.id in wanted:
                found[patient.id] = patient
    return [found[k] for k in sorted(found)]


def full_size_patients(full_roots: Iterable[Path]) -> dict[str, list[Patient]]:
    """patient id -> that patient in each of ``full_roots`` (in their order): scanned once for many cines."""
    out: dict[str, list[Patient]] = {}
    for root in full_roots:
        for patient in find_patients(Path(root)):
            out.setdefault(patient.id, []).append(patient)
    return out


def _full_size_frame(patient: Patient, full: dict[str, list[Patient]]) -> np.ndarray | None:
    """The patient's full-size ED volume from another ACDC folder, if one holds it."""
    for other in full.get(patient.id, []):
        if patient.info.ed in other.frame_paths:
            only_ed = {patient.info.ed: other.frame_paths[patient.info.ed]}
            frames, _ = load_frames(Patient(other.id, other.folder, other.info, frame_paths=only_ed))
            return frames[0][1]
    return None


def _oriented(image: np.ndarray, turns: int, flip: bool) -> np.ndarray:
    """``image`` (in-plane first) turned ``turns`` quarter turns, then columns reversed if ``flip``."""
    out = np.rot90(image, turns, axes=(0, 1))
    return out[:, ::-1] if flip else out


def _crop_orientation(crop: np.ndarray, full: np.ndarray) -> tuple[int, bool] | None:
    """How the 3D ``crop`` was turned from ``full`` (``(turns, flip)`` that bring it back), or None when it is
    not a crop of ``full`` at all. Some publishers turned portrait scans to landscape; the crops were also
    stored with a rescale slope, so values may differ by a rounding step: 1% of the full volume's range."""
    tolerance = 0.01 * float(np.ptp(full))
    for turns in range(4):
        for flip in (False, True):
            piece = np.ascontiguousarray(_oriented(crop, turns, flip), np.float32)
            if any(c > f for c, f in zip(piece.shape, full.shape, strict=True)):
                continue
            for z in range(full.shape[2] - piece.shape[2] + 1):
                plane = np.ascontiguousarray(full[:, :, z], np.float32)
                scores = cv2.matchTemplate(plane, np.ascontiguousarray(piece[:, :, 0]), cv2.TM_SQDIFF)
                row, col = np.unravel_index(int(np.argmin(scores)), scores.shape)
                window = full[row : row + piece.shape[0], col : col + piece.shape[1], z : z + piece.shape[2]]
                if np.allclose(window, piece, rtol=0, atol=tolerance):
                    return turns, flip
    return None


def _resize(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    out = cv2.resize(np.ascontiguousarray(image, np.float32), (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)
    return np.clip(out, 0.0, 1.0)


def protocol_cine(
    patient: Patient, full_patients: dict[str, list[Patient]] | None = None, size: int = HR_SIZE
) -> list[SliceCine]:
    """Every slice of ``patient``'s cine on the protocol grid (see the module's text); ``full_patients`` (from
    :func:`full_size_patients`) holds the full-size scans a cropped cine is put back into."""
    frames, _ = load_frames(patient)
    cine = np.stack([volume for _, volume in frames], axis=3)  # [X, Y, Z, T]
    full = _full_size_frame(patient, full_patients or {})
    if full is None or full.shape[:2] == cine.shape[:2]:
        windows = [intensity_window(cine[..., t]) for t in range(cine.shape[3])]
        shape = (size, size)
    else:
        orientation = _crop_orientation(cine[..., patient.info.ed - 1], full)
        if orientation is None:
            raise DataError(
                patient.cine_path,
                f"its ED frame {patient.info.ed} is not a crop of the full-size ED volume {full.shape}; "
                "cannot put it on the protocol grid",
            )
        cine = np.ascontiguousarray(_oriented(cine, *orientation))
        window = intensity_window(full)
        windows = [window] * cine.shape[3]
        shape = (round(cine.shape[0] * size / full.shape[0]), round(cine.shape[1] * size / full.shape[1]))
    out = []
    for z in range(cine.shape[2]):
        images = np.stack(
            [_resize(normalise(cine[:, :, z, t], windows[t]), shape) for t in range(cine.shape[3])], axis=2
        )
        out.append(SliceCine(patient.id, z, images.astype(np.float32)))
    return out


def cine_slices(
    roots: Iterable[Path], full_roots: Iterable[Path] = (), patient_ids: Iterable[str] | None = None
) -> Iterator[SliceCine]:
    """Every slice cine of the chosen patients, one patient at a time."""
    full = full_size_patients(full_roots)
    for patient in cine_patients(roots, patient_ids):
        yield from protocol_cine(patient, full)


def degraded_cines(
    cines: Iterable[SliceCine], degradation, seed: int = 0
) -> list[tuple[SliceCine, np.ndarray, np.ndarray]]:
    """``(cine, lr [h, w, T], hr [H', W', T])`` for each cine, every frame degraded as a 2D slice is (NumPy
    reference, noise from one seeded generator): the fixed held-out set that validation and evaluation score."""
    rng = np.random.default_rng(seed)
    return [(cine, *degradation.pair_volume_np(cine.images, rng)) for cine in cines]


def frame_windows(lr: np.ndarray, depth: int) -> np.ndarray:
    """``lr [h, w, T]`` as ``[T, h, w, depth]``: for each frame t, the ``depth`` frames centred on it, wrapping
    around the cardiac cycle (a cine's last frame precedes its first). A temporal model trained on ``depth``
    frames is applied to each window and keeps the centre frame's output, so it sees what it saw in training."""
    frames = lr.shape[2]
    index = (np.arange(frames)[:, None] + np.arange(depth)[None, :] - depth // 2) % frames
    return np.moveaxis(lr[:, :, index], 2, 0)  # [h, w, T, depth] -> [T, h, w, depth]
