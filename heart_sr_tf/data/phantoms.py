"""Synthetic cardiac cine in the ACDC layout: the built-in default data.

A torso with lungs, a beating left ventricle inside its myocardium, and a right ventricle,
with smooth tissue texture and Rician noise. Deterministic per seed. It lets the whole tool
run on a fresh machine; it does not replace real data.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np

from heart_sr_tf.data.acdc import GROUPS
from heart_sr_tf.data.nifti import write_nifti
from heart_sr_tf.errors import DataError, os_reason
from heart_sr_tf.outputs import check_place

SHAPE = (176, 208)  # in-plane (x, y), deliberately not square
SLICES = 6
FRAMES = 10
SPACING = (1.6, 1.6, 8.0, 1.0)


def _texture(rng: np.random.Generator, shape, sigma: float) -> np.ndarray:
    noise = rng.standard_normal(shape).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), sigma)
    return smooth / (smooth.std() + 1e-6)


def _ellipse(xx, yy, cx, cy, rx, ry) -> np.ndarray:
    return ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 <= 1.0


def phantom_patient(index: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, dict]:
    """One synthetic patient: cine image (x, y, z, t) int16, labels (x, y, z, t) uint8, Info.cfg values."""
    rng = np.random.default_rng([seed, index])
    group = GROUPS[index % len(GROUPS)]
    h, w = SHAPE
    xx, yy = np.meshgrid(np.arange(h, dtype=np.float32), np.arange(w, dtype=np.float32), indexing="ij")
    cx, cy = h * rng.uniform(0.45, 0.55), w * rng.uniform(0.47, 0.55)
    lv_radius = {"DCM": 21.0, "HCM": 12.0}.get(group, 16.0) * rng.uniform(0.9, 1.1)
    wall = {"HCM": 11.0, "DCM": 5.0}.get(group, 7.5)
    rv_scale = 1.35 if group == "RV" else 1.0
    contraction = 0.15 if group in ("DCM", "MINF") else 0.3
    es = int(rng.integers(4, 6))
    texture = [_texture(rng, SHAPE, s) for s in (2.0, 6.0)]
    image = np.zeros((h, w, SLICES, FRAMES), dtype=np.float32)
    labels = np.zeros((h, w, SLICES, FRAMES), dtype=np.uint8)
    torso = _ellipse(xx, yy, h / 2, w / 2, h * 0.46, w * 0.47)
    lungs = _ellipse(xx, yy, h * 0.45, w * 0.2, h * 0.22, w * 0.13) | _ellipse(
        xx, yy, h * 0.45, w * 0.8, h * 0.22, w * 0.13
    )
    for t in range(FRAMES):
        # ED at frame 1, ES at frame ``es``: a smooth contraction cycle
        phase = np.clip(t / (es - 1), 0, None) if t < es else max(0.0, 1 - (t - es + 1) / (FRAMES - es + 1))
        squeeze = 1 - contraction * np.sin(np.pi * phase / 2) ** 2
        for z in range(SLICES):
            taper = 1 - 0.5 * z / SLICES  # base to apex
            r_lv = lv_radius * taper * squeeze
            r_myo = r_lv + wall * taper / squeeze**0.5
            lv = _ellipse(xx, yy, cx, cy, r_lv, r_lv * 1.05)
            myo = _ellipse(xx, yy, cx, cy, r_myo, r_myo * 1.05) & ~lv
            rv_body = _ellipse(xx, yy, cx - 2, cy - r_myo * 1.2, r_myo * 0.9 * rv_scale, r_myo * 1.1 * rv_scale)
            rv = rv_body & ~_ellipse(xx, yy, cx, cy, r_myo + 1.5, r_myo * 1.05 + 1.5) & (z < SLICES - 1)
            frame = np.where(torso, 0.32 + 0.05 * texture[1], 0.02)
            frame = np.where(lungs, 0.06 + 0.02 * texture[0], frame)
            frame = np.where(myo, 0.2 + 0.03 * texture[0], frame)
            frame = np.where(lv, 0.85 + 0.04 * texture[0], frame)
            frame = np.where(rv, 0.78 + 0.04 * texture[0], frame)
            frame = cv2.GaussianBlur(frame.astype(np.float32), (0, 0), 0.7)
            n1, n2 = rng.normal(0, 0.02, (2, h, w))
            image[:, :, z, t] = np.sqrt((frame + n1) ** 2 + n2**2)
            labels[:, :, z, t] = np.select([rv, myo, lv], [1, 2, 3], 0)
    info = {"ED": 1, "ES": es, "Group": group, "Height": 170.0, "NbFrame": FRAMES, "Weight": 70.0}
    return np.round(image * 1000).astype(np.int16), labels, info


def write_phantoms(out: Path, patients: int = 10, seed: int = 0) -> list[Path]:
    """Write ``patients`` synthetic patients to ``out/training/patientXXX`` in the ACDC layout.

    ``out`` must be new, empty, or phantoms written before (it then holds ``MARKER``): a folder of real scans is
    never written into. Every problem with the place is one DataError naming it."""
    out = Path(out)
    check_place(out)
    try:
        if out.exists() and not out.is_dir():
            raise DataError(out, "is a file, not a folder")
        if out.is_dir() and any(out.iterdir()) and not (out / MARKER).is_file():
            raise DataError(out, "is not empty and was not written by `phantoms`; refusing to write into it")
        out.mkdir(parents=True, exist_ok=True)
        (out / MARKER).write_text("synthetic phantoms written by heart-sr-tf\n")
        return _write(out, patients, seed)
    except OSError as exc:
        raise DataError(out, f"cannot write phantoms there ({os_reason(exc)})") from None


MARKER = ".heart-sr-phantoms"


def _write(out: Path, patients: int, seed: int) -> list[Path]:
    folders = []
    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    for index in range(patients):
        pid = f"patient{index + 1:03d}"
        folder = out / "training" / pid
        folder.mkdir(parents=True, exist_ok=True)
        image, labels, info = phantom_patient(index, seed)
        _save(image, affine, SPACING, folder / f"{pid}_4d.nii.gz")
        for frame in (info["ED"], info["ES"]):
            _save(image[..., frame - 1], affine, SPACING[:3], folder / f"{pid}_frame{frame:02d}.nii.gz")
            _save(labels[..., frame - 1], affine, SPACING[:3], folder / f"{pid}_frame{frame:02d}_gt.nii.gz")
        (folder / "Info.cfg").write_text("".join(f"{k}: {v}\n" for k, v in info.items()))
        folders.append(folder)
    return folders


def _save(data: np.ndarray, affine: np.ndarray, zooms, path: Path) -> None:
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms(zooms)
    tmp = path.with_name(path.name + ".part.nii.gz")
    write_nifti(image, tmp, path.name)
    tmp.replace(path)
