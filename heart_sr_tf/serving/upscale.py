"""Super-resolve every slice (and every frame) of a NIfTI scan, keeping its geometry.

The scan's own in-plane grid is taken as the LR grid. Each 3D frame goes through the intensity
protocol on the way in and back to its own intensity range on the way out. Voxel ``(i, j)`` of the
input sits at output voxel ``(s*i, s*j)``, so the affine's in-plane columns are divided by s (the
origin and orientation stay) and the in-plane zooms too.
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

from heart_sr_tf.data.acdc import load_nifti
from heart_sr_tf.data.intensity import denormalise, intensity_window, normalise
from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.progress import progress_bar


def upscaled_affine(affine: np.ndarray, scale: int) -> np.ndarray:
    """Same origin and orientation; in-plane voxel steps divided by ``scale``."""
    out = np.array(affine, dtype=np.float64)
    out[:3, :2] /= scale
    return out


def upscale_nifti(in_path: Path, out_path: Path, predictor, batch_size: int = 8, quiet: bool = False) -> Path:
    in_path, out_path = Path(in_path), Path(out_path)
    if out_path.resolve() == in_path.resolve():
        raise HeartSRError(f"{out_path}: refusing to overwrite the input scan")
    if not str(out_path).endswith((".nii", ".nii.gz")):
        raise HeartSRError(f"{out_path}: the output must be a .nii or .nii.gz file")
    data, _ = load_nifti(in_path, ndims=(2, 3, 4), min_inplane=1)
    image = nib.load(str(in_path))
    s = predictor.scale
    volume = data.reshape(data.shape[:2] + (-1,)) if data.ndim > 2 else data[..., None]
    frames = 1 if data.ndim < 4 else data.shape[3]
    per_frame = volume.shape[2] // frames
    out = np.zeros((s * data.shape[0], s * data.shape[1], volume.shape[2]), np.float32)
    with progress_bar(volume.shape[2], "upscale", "slice", disable=quiet) as bar:
        for t in range(frames):
            block = slice(t * per_frame, (t + 1) * per_frame)
            window = intensity_window(volume[:, :, block])
            scaled = normalise(volume[:, :, block], window)
            if predictor.volumetric:  # a 3D model sees the whole frame, D running along the slices
                sr = predictor.volume(scaled[None, ..., None])[0, ..., 0]
                out[:, :, block] = denormalise(sr, window)
                bar.update(per_frame)
                continue
            lr = np.moveaxis(scaled, 2, 0)[..., None]
            for start in range(0, len(lr), batch_size):
                sr = predictor(np.ascontiguousarray(lr[start : start + batch_size], dtype=np.float32))[..., 0]
                z0 = t * per_frame + start
                out[:, :, z0 : z0 + len(sr)] = np.moveaxis(denormalise(sr, window), 0, 2)
                bar.update(len(sr))
    out = out.reshape(out.shape[:2] + data.shape[2:])
    header = image.header.copy()
    dtype = image.get_data_dtype()
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        out = np.clip(np.round(out), info.min, info.max).astype(dtype)
    zooms = list(header.get_zooms())
    zooms[0], zooms[1] = zooms[0] / s, zooms[1] / s
    result = nib.Nifti1Image(out, upscaled_affine(image.affine, s), header)
    result.header.set_zooms(zooms)
    result.header.set_data_dtype(dtype)
    for method in ("qform", "sform"):
        matrix, code = getattr(image, f"get_{method}")(coded=True)
        if code:
            getattr(result, f"set_{method}")(upscaled_affine(matrix, s), int(code))
    out_path.parent.mkdir(parents=True, exist_ok=True)
    suffix = ".nii.gz" if str(out_path).endswith(".gz") else ".nii"
    tmp = out_path.with_name(f".{out_path.name}.part{suffix}")
    try:
        nib.save(result, str(tmp))
        tmp.replace(out_path)
    except OSError as exc:
        raise DataError(out_path, f"cannot write ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out_path
