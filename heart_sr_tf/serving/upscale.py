"""Super-resolve every slice (and every frame) of a NIfTI scan, keeping its geometry and every voxel's value.

The scan's own in-plane grid is taken as the LR grid. Each 3D frame goes through the intensity
protocol on the way in (clip to [min, 99.5th percentile], scale to [0, 1]) and back to its own range on
the way out. The part of each voxel above the clip is not thrown away: it is interpolated on its own with
aligned bicubic (local, so a bright outlier does not ring across the slice) and added back, and the result is
bounded by the frame's own range: the output keeps the input's intensity range, bright outliers included.

Voxel ``(i, j)`` of the input sits at output voxel ``(s*i, s*j)``, so the affine's in-plane columns are
divided by s (the origin and orientation stay) and the in-plane zooms too. The header and data type are
kept; scaled integers (``scl_slope``) are rescaled by nibabel to fit the data type.

The output is checked writable before any inference, written to a temporary file beside it and renamed
over it atomically; an interrupted run leaves no temporary file (a SIGKILL's is removed by the next run).
"""

from __future__ import annotations

import os
from pathlib import Path

import nibabel as nib
import numpy as np

from heart_sr_tf.data.acdc import load_nifti
from heart_sr_tf.data.intensity import denormalise, intensity_window, normalise
from heart_sr_tf.data.interpolation import aligned_bicubic
from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.progress import progress_bar


def upscaled_affine(affine: np.ndarray, scale: int) -> np.ndarray:
    """Same origin and orientation; in-plane voxel steps divided by ``scale``."""
    out = np.array(affine, dtype=np.float64)
    out[:3, :2] /= scale
    return out


def check_output(in_path: Path, out_path: Path) -> Path:
    """Refuse an output that would overwrite the input (or a hard link to it), is not NIfTI, or cannot be written;
    return the temporary file the result goes to first (created empty now, so a bad OUT fails before inference)."""
    if not str(out_path).endswith((".nii", ".nii.gz")):
        raise HeartSRError(f"{out_path}: the output must be a .nii or .nii.gz file")
    if out_path.exists():
        if out_path.is_dir():
            raise HeartSRError(f"{out_path}: is a folder, not a file")
        if in_path.exists() and os.path.samefile(in_path, out_path):
            raise HeartSRError(f"{out_path}: refusing to overwrite the input scan (it is the same file)")
    elif out_path.resolve() == in_path.resolve():
        raise HeartSRError(f"{out_path}: refusing to overwrite the input scan")
    parent = out_path.parent
    for ancestor in [parent, *parent.parents]:
        if ancestor.exists():
            if not ancestor.is_dir():
                raise HeartSRError(f"{out_path}: {ancestor} is a file, not a folder")
            break
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HeartSRError(f"{out_path}: cannot create its folder ({exc.strerror})") from None
    _remove_stale_parts(out_path)
    suffix = ".nii.gz" if str(out_path).endswith(".gz") else ".nii"
    tmp = parent / f".{out_path.name}.part-{os.getpid()}{suffix}"
    try:
        tmp.touch(exist_ok=False)
    except OSError as exc:
        raise HeartSRError(f"{out_path}: cannot write there ({exc.strerror})") from None
    return tmp


def _remove_stale_parts(out_path: Path) -> None:
    """Temporary files of earlier runs for the same output whose process is gone (killed with SIGKILL)."""
    for part in out_path.parent.glob(f".{out_path.name}.part-*"):
        pid = part.name.rsplit(".part-", 1)[1].split(".", 1)[0]
        if pid.isdigit() and not _alive(int(pid)):
            part.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def upscale_nifti(in_path: Path, out_path: Path, predictor, batch_size: int = 8, quiet: bool = False) -> Path:
    in_path, out_path = Path(in_path), Path(out_path)
    if batch_size < 1:
        raise HeartSRError(f"--batch-size: must be at least 1, got {batch_size}")
    data, _ = load_nifti(in_path, ndims=(2, 3, 4), min_inplane=1)
    image = nib.load(str(in_path))
    tmp = check_output(in_path, out_path)
    try:
        out = _super_resolve(data, predictor, batch_size, quiet)
        _write(image, out, predictor.scale, tmp)
        tmp.replace(out_path)
    except OSError as exc:
        raise DataError(out_path, f"cannot write ({exc})") from None
    finally:
        tmp.unlink(missing_ok=True)
    return out_path


def _super_resolve(data: np.ndarray, predictor, batch_size: int, quiet: bool) -> np.ndarray:
    """``[x, y, ...]`` float32 -> ``[s*x, s*y, ...]`` in the input's intensity units."""
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
                out[:, :, block] = denormalise(predictor.volume(scaled[None, ..., None])[0, ..., 0], window)
                bar.update(per_frame)
            else:
                lr = np.moveaxis(scaled, 2, 0)[..., None]
                for start in range(0, len(lr), batch_size):
                    sr = predictor(np.ascontiguousarray(lr[start : start + batch_size], dtype=np.float32))[..., 0]
                    z0 = t * per_frame + start
                    out[:, :, z0 : z0 + len(sr)] = np.moveaxis(denormalise(sr, window), 0, 2)
                    bar.update(len(sr))
            excess = np.maximum(volume[:, :, block] - window[1], 0.0)  # what the clip took away
            for z in np.flatnonzero(excess.reshape(-1, excess.shape[2]).any(axis=0)):
                hr_shape = (s * excess.shape[0], s * excess.shape[1])
                back = aligned_bicubic(excess[:, :, z], s, hr_shape, clip=False)
                out[:, :, t * per_frame + z] += np.maximum(back, 0.0)
            # the frame's own range bounds the result: interpolation overshoot never invents a brighter voxel
            np.clip(out[:, :, block], volume[:, :, block].min(), volume[:, :, block].max(), out=out[:, :, block])
    return out.reshape(out.shape[:2] + data.shape[2:])


def _write(image, out: np.ndarray, s: int, path: Path) -> None:
    header = image.header.copy()
    dtype = image.get_data_dtype()
    slope, inter = image.header.get_slope_inter()
    scaled = (slope not in (None, 1.0) and np.isfinite(slope)) or (inter not in (None, 0.0) and np.isfinite(inter))
    if np.issubdtype(dtype, np.integer) and not scaled:
        info = np.iinfo(dtype)
        out = np.clip(np.round(out), info.min, info.max).astype(dtype)
    zooms = list(header.get_zooms())
    zooms[0], zooms[1] = zooms[0] / s, zooms[1] / s
    result = nib.Nifti1Image(out, upscaled_affine(image.affine, s), header)
    result.header.set_zooms(zooms)
    result.header.set_data_dtype(dtype)
    if scaled:  # let nibabel choose a slope and intercept that hold the new range in the same data type
        result.header.set_slope_inter(np.nan, np.nan)
    for method in ("qform", "sform"):
        matrix, code = getattr(image, f"get_{method}")(coded=True)
        if code:
            getattr(result, f"set_{method}")(upscaled_affine(matrix, s), int(code))
    nib.save(result, str(path))
