"""Super-resolve every slice (and every frame) of a scan (NIfTI, or a DICOM series: data/scan.py), keeping its
geometry and every voxel's value. The result is a NIfTI file, or a derived DICOM series (dicom_writer.py).

The scan's own in-plane grid is taken as the LR grid. Each 3D frame goes through the intensity
protocol on the way in (clip to [min, 99.5th percentile], scale to [0, 1]) and back to its own range on
the way out. The part of each voxel above the clip is not thrown away: it is interpolated on its own with
aligned bicubic (local, so a bright outlier does not ring across the slice) and added back, and the result is
bounded by the frame's own range: the output keeps the input's intensity range, bright outliers included.

Voxel ``(i, j)`` of the input sits at output voxel ``(s*i, s*j)``, so the affine's in-plane columns are
divided by s (the origin and orientation stay) and the in-plane zooms too. Across slices (``through_plane``,
see through_plane.py) input slice k sits at output slice ``g*k`` and the slice column and zoom are divided by g.
The header and data type are kept; integers are stored with the input's own slope and intercept (``scl_slope``,
``scl_inter``), so the output has the input's quantisation step and its range fits (it is bounded by the input's).

The output is checked writable before any inference, written to a temporary file beside it and renamed
over it atomically; an interrupted run leaves no temporary file (a SIGKILL's is removed by the next run).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import time
from pathlib import Path

import numpy as np

from heart_sr_tf.data.intensity import denormalise, intensity_window, normalise, padding_mask
from heart_sr_tf.data.interpolation import aligned_bicubic
from heart_sr_tf.data.nifti import is_gzip_name, nifti_suffix, same_kind, write_nifti
from heart_sr_tf.data.scan import Scan, read_scan
from heart_sr_tf.errors import DataError, HeartSRError, os_reason
from heart_sr_tf.memory import available_memory
from heart_sr_tf.outputs import check_place, place_file, refuse_existing, refuse_input
from heart_sr_tf.processes import process_alive
from heart_sr_tf.progress import progress_bar
from heart_sr_tf.volumes.dicom_writer import check_derivable, is_dicom_output, refuse_output_folder, write_dicom_series
from heart_sr_tf.volumes.grid import OutputGrid

IN_PLANE_BATCH = 16  # slices per model call by default


def check_output(in_path: Path, out_path: Path, overwrite: bool = False) -> Path:
    """Refuse an output that exists (unless ``overwrite``), would overwrite the input (or a hard link to it), is
    not NIfTI, has a name the file system cannot hold, or cannot be written; return the temporary file the result
    goes to first (created empty now, so a bad OUT fails before inference)."""
    refuse_output(in_path, out_path, overwrite)
    parent = out_path.parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise HeartSRError(f"{out_path}: cannot create its folder ({exc.strerror})") from None
    remove_stale_parts(out_path)
    suffix = ".nii.gz" if is_gzip_name(out_path) else ".nii"
    tmp = parent / f"{_part_prefix(out_path)}{os.getpid()}{suffix}"
    try:
        tmp.touch(exist_ok=False)
    except OSError as exc:
        raise HeartSRError(f"{out_path}: cannot write there ({exc.strerror})") from None
    return tmp


def refuse_output(in_path: Path, out_path: Path, overwrite: bool = False) -> None:
    """The checks of :func:`check_output` that write nothing: run them before loading any model."""
    in_path, out_path = Path(in_path), Path(out_path)
    if nifti_suffix(out_path) is None:
        raise HeartSRError(
            f"{out_path}: the output must be a .nii or .nii.gz file, or a folder for a DICOM series (end it in /)"
        )
    if len(os.fsencode(out_path.name)) > NAME_MAX:
        raise HeartSRError(f"{out_path.name[:40]}...: the output's name is longer than {NAME_MAX} bytes")
    refuse_input(out_path, in_path)
    refuse_existing(out_path, overwrite)
    check_place(out_path.parent, named=out_path)


NAME_MAX = 255  # bytes in one file name on Linux and macOS file systems


def _part_prefix(out_path: Path) -> str:
    """The temporary files of one output: short, whatever the length of its name (``.heart-sr-<hash>.part-``)."""
    return f".heart-sr-{hashlib.sha1(os.fsencode(out_path.name)).hexdigest()[:12]}.part-"


def remove_stale_parts(out_path: Path) -> None:
    """Remove the temporary files of earlier runs for the same output whose process is gone (killed with
    SIGKILL)."""
    prefix = _part_prefix(out_path)
    for part in out_path.parent.glob(f"{prefix}*"):
        pid = part.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not process_alive(int(pid)):
            if part.is_dir():
                shutil.rmtree(part, ignore_errors=True)
            else:
                part.unlink(missing_ok=True)


def check_in_plane(source, degradation) -> None:
    """A model trained for ``degradation`` (None: a served one, unknown) upscales in-plane: a through-plane model
    is refused in one line naming ``source``."""
    if degradation is not None and degradation.kind == "through_plane":
        raise HeartSRError(f"{source}: a through-plane model; give it as --through-plane-model")


class InPlane:
    """In-plane x s of every slice of every frame ``[x, y, z, T]`` with a 2D model (whole frames for a 3D model);
    aligned bicubic for the part above the intensity clip."""

    desc, unit = "upscale", "slice"

    def __init__(self, predictor, batch_size: int):
        check_in_plane(predictor.source, predictor.degradation)
        self.predictor, self.batch_size = predictor, batch_size
        self.factors = (predictor.scale, predictor.scale, 1)
        self.offsets = (0.0, 0.0, 0.0)  # input pixel i at output pixel s*i

    def units(self, shape) -> int:  # progress units: slices
        return shape[2] * shape[3]

    def model(self, scaled: np.ndarray, bar) -> np.ndarray:
        """``[x, y, z, T]`` in [0, 1] -> ``[s*x, s*y, z, T]``; the slices of all frames share the model calls."""
        x, y, z, frames = scaled.shape
        s = self.predictor.scale
        if self.predictor.axis == "frames":  # a temporal model sees each slice's whole cine
            out = np.zeros((s * x, s * y, z, frames), np.float32)
            for k in range(z):
                out[:, :, k] = self.predictor.frames(scaled[:, :, k])
                bar.update(frames)
            return out
        if self.predictor.volumetric:  # a 3D model along slices sees each whole frame
            out = np.stack([self.predictor.volume(scaled[None, ..., t, None])[0, ..., 0] for t in range(frames)], 3)
            bar.update(z * frames)
            return out
        lr = np.moveaxis(scaled.reshape(x, y, z * frames), 2, 0)[..., None]
        out = np.zeros((z * frames, s * x, s * y), np.float32)
        for start in range(0, len(lr), self.batch_size):
            batch = np.ascontiguousarray(lr[start : start + self.batch_size], dtype=np.float32)
            out[start : start + len(batch)] = self.predictor(batch)[..., 0]
            bar.update(len(batch))
        return np.moveaxis(out, 0, 2).reshape(s * x, s * y, z, frames)

    def interpolate(self, excess: np.ndarray) -> np.ndarray:
        s = self.predictor.scale
        return aligned_bicubic(excess, s, (s * excess.shape[0], s * excess.shape[1]), clip=False)


def upscale_file(
    scan: Scan | Path,
    out_path: Path,
    predictor=None,
    batch_size: int = 16,
    quiet: bool = False,
    through_plane=None,
    timings: dict | None = None,
    overwrite: bool = False,
    series: int | str | None = None,
) -> Path:
    """Upscale a scan (a NIfTI file or DICOM series, or a :class:`Scan` already read) into OUT: in-plane with
    ``predictor``, across slices with ``through_plane`` (a :class:`~heart_sr_tf.volumes.through_plane.ThroughPlane`),
    or both (across slices first, at the scan's own in-plane resolution the through-plane model was trained for,
    then in-plane on every new slice). OUT is a NIfTI file, or a folder for a derived DICOM series (DICOM input).

    ``timings``, when given, receives the seconds spent reading, in the models and writing.
    """
    dicom_out = is_dicom_output(out_path)  # before Path() drops a trailing separator, which names a folder
    out_path = Path(out_path)
    timings = {} if timings is None else timings
    if batch_size < 1:
        raise HeartSRError(f"--batch-size: must be at least 1, got {batch_size}")
    clock = time.perf_counter()
    if not isinstance(scan, Scan):
        scan = read_scan(scan, ndims=(2, 3, 4) if through_plane is None else (3, 4), series=series)
    data = scan.data
    if through_plane is not None and (data.ndim < 3 or data.shape[2] < 2):
        raise DataError(scan.path, f"through-plane upscaling needs at least 2 slices, got shape {data.shape}")
    steps = [through_plane] if through_plane is not None else []
    steps += [InPlane(predictor, batch_size)] if predictor is not None else []
    if not steps:  # (the result's memory is then the scan's own, which writing converts in place)
        raise HeartSRError("nothing to upscale with: give an in-plane model, a through-plane model or both")
    check_space(out_path, expected_bytes(scan, steps, dicom_out, is_gzip_name(out_path)))
    check_memory(scan.path, result_voxels(scan, steps) * 4)  # (the result is held as float32 before it is written)
    tmp = _check_any_output(scan, out_path, overwrite, dicom_out)
    timings["read"] = time.perf_counter() - clock
    try:
        clock = time.perf_counter()
        grid, padding = OutputGrid(), scan.declared_padding
        for step in steps:
            data, padding = _super_resolve(data, step, quiet, padding)
            grid = grid.then(step)
        timings["model"] = time.perf_counter() - clock
        clock = time.perf_counter()
        if dicom_out:
            volume = data.reshape(data.shape[:3] + (-1,)) if data.ndim > 2 else data[:, :, None, None]
            padding = None if padding is None else padding.reshape(volume.shape)
            write_dicom_series(scan.dicom, volume, grid, tmp, out_path, _what(steps), overwrite, padding)
        else:
            layout, axes = scan.file_layout(data)[0], grid.reordered(scan.file_axes())
            _write(scan.image, layout, axes, tmp, out_path.name, _what(steps))
            place_file(tmp, out_path, overwrite)
        timings["write"] = time.perf_counter() - clock
    except OSError as exc:
        raise DataError(out_path, f"cannot write ({os_reason(exc)})") from None
    finally:
        if tmp.is_dir():
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            tmp.unlink(missing_ok=True)
    return out_path


def refuse_any_output(scan: Scan, out_path, overwrite: bool, dicom_out: bool | None = None) -> None:
    """Before any model loads: a NIfTI OUT as :func:`refuse_output`, a DICOM OUT folder (``dicom_out``, else
    :func:`is_dicom_output`) as :func:`~heart_sr_tf.volumes.dicom_writer.refuse_output_folder`, and only from
    DICOM input whose pixels it can store again (:func:`~heart_sr_tf.volumes.dicom_writer.check_derivable`)."""
    if not (is_dicom_output(out_path) if dicom_out is None else dicom_out):
        refuse_output(scan.path, out_path, overwrite)
        return
    if scan.dicom is None:
        raise HeartSRError(
            f"{out_path}: a DICOM output folder needs DICOM input (a NIfTI has no DICOM headers to derive a "
            "series from); end OUT in .nii.gz for NIfTI"
        )
    if Path(out_path).resolve() == Path(scan.path).resolve():
        raise HeartSRError(f"{out_path}: refusing to write into the input series' folder")
    refuse_output_folder(Path(out_path), overwrite)
    check_derivable(scan.dicom)


def _check_any_output(scan: Scan, out_path: Path, overwrite: bool, dicom_out: bool) -> Path:
    """The temporary file (NIfTI) or folder (DICOM) the result goes to first, created now."""
    if not dicom_out:
        return check_output(scan.path, out_path, overwrite)
    refuse_any_output(scan, out_path, overwrite, dicom_out)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        remove_stale_parts(out_path)
        tmp = out_path.parent / f"{_part_prefix(out_path)}{os.getpid()}"
        tmp.mkdir()
    except OSError as exc:
        raise HeartSRError(f"{out_path}: cannot write there ({exc.strerror})") from None
    return tmp


GZIP_RATIO = 4  # what gzip may at best make of an upscaled scan (measured 1.5 to 3 on ACDC): a lower bound


def result_voxels(scan: Scan, steps) -> int:
    """How many voxels the upscaled scan has."""
    voxels = int(np.prod(scan.data.shape, dtype=np.int64))
    for step in steps:
        voxels *= int(np.prod(step.factors))
    return voxels


def expected_bytes(scan: Scan, steps, dicom_out: bool, gzip: bool) -> int:
    """A lower bound of what the result takes on disk: its voxels at the input's stored size (a DICOM series' bits
    allocated, a NIfTI's data type), a gzipped NIfTI at best ``GZIP_RATIO`` times smaller."""
    voxels = result_voxels(scan, steps)
    if dicom_out and scan.dicom is not None:  # (a NIfTI scan's DICOM OUT is refused by the output check)
        itemsize = max(1, int(scan.dicom.headers[0][0].get("BitsAllocated") or 16) // 8)
    else:
        itemsize = scan.image.header.get_data_dtype().itemsize
    return voxels * itemsize // (GZIP_RATIO if gzip and not dicom_out else 1)


def check_space(out_path: Path, needed: int) -> None:
    """Refuse, before any inference, an output whose file system has less room than ``needed`` bytes."""
    folder = next((p for p in [Path(out_path).parent, *Path(out_path).parent.parents] if p.exists()), None)
    if folder is None:
        return
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise HeartSRError(
            f"{out_path}: the result needs at least {needed / 1e6:.1f} MB and {free / 1e6:.1f} MB are free there"
        )


def check_memory(scan_path, needed: int) -> None:
    """Refuse, before any inference, a result larger than the memory available (a control group's limit
    included): the run would be killed by the system part-way, with no line of ours."""
    free = available_memory()
    if free is not None and needed > free:
        raise HeartSRError(
            f"{scan_path}: its upscaled result needs at least {needed / 1e9:.1f} GB of memory and {free / 1e9:.1f} GB "
            "are available here (the system's, or its container's or job's memory limit); upscale it with more "
            "memory, or its frames split into several files"
        )


def model_label(source) -> str:
    """A model as results name it: ``rrdb_kspace/3`` for a version folder, else the folder's name."""
    source = Path(str(source))
    return f"{source.parent.name}/{source.name}" if source.name.isdigit() else source.name


def _what(steps) -> str:
    """What was done, for the derived series' description and the NIfTI header's ``descrip``."""
    parts = []
    for step in steps:
        name = model_label(step.predictor.source)
        direction = "across slices" if step.factors[2] > 1 else "in-plane"
        parts.append(f"x{max(step.factors)} {direction} {name}")
    return ", ".join(parts)


def _super_resolve(
    data: np.ndarray, step, quiet: bool, declared: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """``[x, y, ...]`` float32 -> ``[fx*x, fy*y, fz*z, ...]`` in the input's intensity units, and where the
    ``declared`` padding (a DICOM series' PixelPaddingValue; ``data``'s shape) went (None when none was given).

    Each frame is scaled by its own intensity window; the model sees all frames' images (in shared calls),
    and each frame's result goes back to its own range, with the part above the clip added back. Padding voxels
    (see ``data/intensity.py``; NaN voxels among them; and the ``declared`` ones) are left out of the window,
    shown to the model as the window's minimum, and passed through: every output voxel whose nearest input
    voxel is padding holds that voxel's value."""
    volume = data.reshape(data.shape[:3] + (-1,)) if data.ndim > 2 else data[:, :, None, None]
    frames = volume.shape[3]
    marked = None if declared is None else declared.reshape(volume.shape)
    padding = [padding_mask(volume[..., t]) for t in range(frames)]
    if marked is not None:
        padding = [padding[t] | marked[..., t] for t in range(frames)]
    windows = [intensity_window(volume[..., t], padding[t]) for t in range(frames)]
    scaled = np.stack([normalise(volume[..., t], w) for t, w in enumerate(windows)], axis=3)
    for t in range(frames):
        scaled[..., t][padding[t]] = 0.0  # (NaN padding too: the model sees the window's minimum there)
    with progress_bar(step.units(volume.shape), step.desc, step.unit, disable=quiet) as bar:
        out = step.model(scaled, bar)
    grid = OutputGrid().then(step)  # where the step's output voxels lie, for the padding passed through
    went = None if marked is None else np.zeros(out.shape, bool)
    for t, window in enumerate(windows):
        frame = volume[..., t]
        result = denormalise(out[..., t], window)
        excess = np.where(padding[t], 0.0, np.maximum(frame - window[1], 0.0))  # what the clip took away,
        if excess.any():  # interpolated on its own
            result += np.maximum(step.interpolate(excess), 0.0)
        # the image's own range bounds the result: interpolation overshoot never invents a brighter voxel
        image = frame[~padding[t]] if padding[t].any() else frame
        if image.size:
            result = np.clip(result, image.min(), image.max())
        if padding[t].any():
            nearest = np.ix_(*(grid.nearest(axis, n) for axis, n in enumerate(frame.shape)))
            result = np.where(padding[t][nearest], frame[nearest], result)
            if went is not None:
                went[..., t] = marked[..., t][nearest]
        out[..., t] = result

    def shaped(array):
        return array.reshape(array.shape[:3] + data.shape[3:]) if data.ndim > 2 else array[:, :, 0, 0]

    return shaped(out), None if went is None else shaped(went)


def stored_scaling(image) -> tuple[float, float]:
    """The slope and intercept that turn ``image``'s stored values into real ones (1 and 0 when it has none).
    nibabel moves them from a loaded header into the array proxy and leaves NaN in the header's ``scl_*``."""
    slope = getattr(image.dataobj, "slope", None)
    inter = getattr(image.dataobj, "inter", None)
    if slope is None:
        slope, inter = image.header.get_slope_inter()
    slope = float(slope) if slope is not None and np.isfinite(slope) and slope != 0 else 1.0
    inter = float(inter) if inter is not None and np.isfinite(inter) else 0.0
    return slope, inter


def to_stored(values: np.ndarray, dtype, slope: float, inter: float) -> np.ndarray:
    """Real values -> an integer ``dtype``'s stored values under ``slope`` and ``inter``: rounded to the nearest
    step (halves to even), clipped to the type's range. ``values`` (float32) is used as the scratch space and
    holds no result afterwards: no temporary the size of the scan is made (four of them cost a 300-slice cine
    0.1-0.4 s, mostly first touches of new memory)."""
    info = np.iinfo(dtype)
    if inter != 0.0:
        np.subtract(values, inter, out=values)
    if slope != 1.0:
        np.divide(values, slope, out=values)
    np.rint(values, out=values)
    np.clip(values, info.min, info.max, out=values)
    return values.astype(dtype)


def _write(image, out: np.ndarray, grid: OutputGrid, tmp: Path, name: str, what: str) -> None:
    """``out`` (float32, real values; consumed: an integer type's conversion is done in its memory) as a NIfTI
    of ``image``'s kind, header and stored type at ``tmp``, to become the file ``name``, on the upscaled
    ``grid``."""
    header = image.header.copy()
    header["descrip"] = os.fsencode(f"heart-sr {what}")[:79]  # a super-resolved file says so, wherever it goes
    dtype = image.get_data_dtype()
    slope, inter = stored_scaling(image)
    integer = np.issubdtype(dtype, np.integer)
    if integer:  # stored as the input was: same data type, slope and intercept
        out = to_stored(out, dtype, slope, inter)
    slice_dim = header.get_dim_info()[2]
    if slice_dim is not None and slice_dim < len(grid.factors) and grid.factors[slice_dim] != 1:
        for key in ("slice_code", "slice_start", "slice_end", "slice_duration"):  # the acquired slices' timing:
            header[key] = 0  # the made slices have none
    zooms = list(header.get_zooms())[: out.ndim]  # a trailing axis of one voxel, dropped on reading, is not written
    for axis, factor in enumerate(grid.factors[: len(zooms)]):
        zooms[axis] = zooms[axis] / factor
    result = same_kind(image, out, grid.affine(image.affine), header)
    result.header.set_zooms(zooms)
    result.header.set_data_dtype(dtype)
    result.header.set_slope_inter(*((slope, inter) if integer else (1.0, 0.0)))  # floats hold real values
    for method in ("qform", "sform"):  # each as the input has it: a form it leaves unset stays unset (nibabel
        matrix, code = getattr(image, f"get_{method}")(coded=True)  # would set the sform as "aligned")
        if code:
            getattr(result, f"set_{method}")(grid.affine(matrix), int(code))
        else:
            getattr(result, f"set_{method}")(None, 0)
    write_nifti(result, tmp, name)
