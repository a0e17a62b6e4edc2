"""Reading any NIfTI scan as float32, checked to be usable as an image volume (the ACDC reader and data/scan.py)."""

from __future__ import annotations

import gzip
import logging
import threading
import zlib
from pathlib import Path

import nibabel as nib
import numpy as np
from nibabel.imageglobals import logger as nibabel_logger
from nibabel.spatialimages import HeaderDataError, HeaderTypeError, ImageDataError

from heart_sr_tf.data.file_kind import check_scan_path
from heart_sr_tf.errors import DataError
from heart_sr_tf.memory import available_memory


def nifti_suffix(name) -> str | None:
    """The NIfTI extension a file name ends in, as it is written (``.nii.gz``, ``.nii``, ``.NII.GZ``, ...): matched
    in any case, as nibabel reads and writes them (Windows tools and some exports write capitals); None for
    another name."""
    name = Path(name).name
    for extension in (".nii.gz", ".nii"):
        if name.lower().endswith(extension):
            return name[-len(extension) :]
    return None


def is_gzip_name(name) -> bool:
    """A name nibabel writes gzip-compressed: ending in ``.gz`` in any case."""
    return str(name).lower().endswith(".gz")


def write_nifti(image, path: Path, name: str) -> None:
    """Write ``image`` (a NIfTI-1 or NIfTI-2 image) to ``path``, a temporary file, as the file ``name`` it will
    become: gzip-compressed when ``name`` ends in ``.gz``, with ``name`` less ``.gz`` as the gzip header's file
    name, as ``gzip`` itself records it. Opened by its own path, the stream recorded the temporary file's name,
    and ``gunzip -N`` restored a result as a hidden ``.heart-sr-....part-N.nii``. Compressed by ISA-L's igzip
    when installed: the same gzip stream at the size of zlib's level 1, about ten times faster (nibabel and the
    standard library compress at that level too)."""
    with open(path, "wb") as raw:
        if not is_gzip_name(name):
            image.to_stream(raw)
            return
        try:
            from isal.igzip import IGzipFile as Compressor
        except ImportError:
            Compressor = gzip.GzipFile
        with Compressor(filename=name[: -len(".gz")], mode="wb", fileobj=raw, compresslevel=1) as stream:
            image.to_stream(stream)


def same_kind(image, data: np.ndarray, affine: np.ndarray, header):
    """A new image of ``image``'s own kind (NIfTI-1 or NIfTI-2: a NIfTI-2 header in a NIfTI-1 image makes
    nibabel complain on every save)."""
    kind = nib.Nifti2Image if isinstance(image, nib.Nifti2Image) else nib.Nifti1Image
    return kind(data, affine, header)


def _check_image(path: Path, image) -> None:
    if not isinstance(image, nib.Nifti1Image | nib.Nifti2Image):
        raise DataError(path, f"not a NIfTI file but {type(image).__name__}; convert it to .nii or .nii.gz first")
    if image.get_data_dtype().fields is not None:
        raise DataError(path, f"a colour ({image.get_data_dtype()}) image; cardiac cine is one channel")
    if image.get_data_dtype().kind == "c":
        raise DataError(
            path, f"complex-valued voxels ({image.get_data_dtype()}); upscale a magnitude image (the imaginary "
            "part would be lost)"
        )  # fmt: skip


SPATIAL_TO_MM = {"meter": 1000.0, "mm": 1.0, "micron": 0.001}  # (unknown: mm, as NIfTI readers take it)
TIME_TO_S = {"sec": 1.0, "msec": 0.001, "usec": 1e-6}


def zooms_mm(header) -> tuple[float, ...]:
    """A NIfTI header's voxel sizes in mm (and s between frames), whatever units it states them in (its
    ``xyzt_units``: metres or microns as some tools write, millimetres, or none said, read as millimetres)."""
    spatial, temporal = header.get_xyzt_units()
    scales = [SPATIAL_TO_MM.get(spatial, 1.0)] * 3 + [TIME_TO_S.get(temporal, 1.0)]
    return tuple(float(z) * (scales[k] if k < 4 else 1.0) for k, z in enumerate(header.get_zooms()))


UNREADABLE = (
    OSError, EOFError, ValueError, OverflowError, zlib.error, nib.filebasedimages.ImageFileError, HeaderDataError,
    HeaderTypeError, ImageDataError,
)  # fmt: skip  # what nibabel raises for a file it cannot read (a corrupt header: a datatype code it does not know,
# a negative dimension, a data offset inside the header)


_NIBABEL_LOGGER = threading.Lock()


class _Collect(logging.Handler):
    def __init__(self):
        super().__init__()
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING and (line := record.getMessage()) not in self.lines:
            self.lines.append(line)


def load_image(path: Path):
    """``nib.load``, quietly: the image, and the repairs nibabel made to its header on reading (``sform_code 9 not
    valid; setting to 0``), which it would print to stderr itself, with no file named, before any line of ours.
    A file nibabel cannot read at all is a DataError naming it."""
    path = Path(path)
    check_scan_path(path)
    collect = _Collect()
    with _NIBABEL_LOGGER:  # one reader at a time swaps the logger's handlers (ACDC and scans are read by threads)
        handlers = list(nibabel_logger.handlers)
        for handler in handlers:
            nibabel_logger.removeHandler(handler)
        nibabel_logger.addHandler(collect)
        propagate, nibabel_logger.propagate = nibabel_logger.propagate, False
        try:
            image = nib.load(str(path))  # (the header only: the voxels are read later, outside the lock)
        except FileNotFoundError:
            raise DataError(path, "file not found") from None
        except UNREADABLE as exc:
            raise DataError(
                path, f"truncated or unreadable NIfTI ({type(exc).__name__}: {exc}){_misnamed(path)}"
            ) from None
        finally:
            nibabel_logger.removeHandler(collect)
            for handler in handlers:
                nibabel_logger.addHandler(handler)
            nibabel_logger.propagate = propagate
    _check_image(path, image)
    return image, _voxel_sizes(path, image, collect.lines)


def _misnamed(path: Path) -> str:
    """The hint for a file whose name says the opposite of its compression (nibabel goes by the name): a ``.gz``
    that is not gzip, or a gzip stream named ``.nii``."""
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == b"\x1f\x8b"
    except OSError:
        return ""
    if is_gzip_name(path) and not gzipped:
        return f"; it is not gzip-compressed: name it {path.name[:-3]}"
    if not is_gzip_name(path) and gzipped and nifti_suffix(path) is not None:
        return f"; it is gzip-compressed: name it {path.name}.gz"
    return ""


def _voxel_sizes(path: Path, image, repairs: list[str]) -> list[str]:
    """The repairs' lines, and the voxel sizes settled: the header's pixdim, unless it states none (0, which
    nibabel sets to 1, or not a number), when the sform's spacing is taken instead (set in the header, so the
    output states it too). A usable pixdim is the voxel size whatever the sform's spacing, as ITK reads it: ACDC's
    files hold a unit sform, a placeholder, beside their true pixdim, and this tool's outputs of them that sform
    scaled with the grid (a unit sform is no voxel size for the rule above either). Lines name the file."""
    header = image.header
    spatial = min(3, len(image.shape))
    stated = [float(z) for z in header.get_zooms()[:spatial]]
    placed = None
    if int(header["sform_code"]) > 0:
        norms = np.linalg.norm(header.get_sform()[:3, :spatial], axis=0)
        usable = np.all(np.isfinite(norms)) and np.all(norms > 0) and not np.allclose(norms, 1.0, rtol=0, atol=1e-6)
        placed = [float(n) for n in norms] if usable else None
    zeros = [line for line in repairs if "pixdim" in line and "non-zero" in line]  # (nibabel has set them to 1)
    zero = bool(zeros) and 1.0 in stated  # (a 2D image's third pixdim of 0 is no voxel size of its own)
    lines = [
        f"{path}: nibabel repaired its header on reading: {line}" for line in repairs if not (zero and line in zeros)
    ]
    to_mm = SPATIAL_TO_MM.get(header.get_xyzt_units()[0], 1.0)

    def mm(sizes) -> str:
        return " x ".join(f"{z * to_mm:.4g}" for z in sizes) + " mm"

    if not np.all(np.isfinite(stated)) or zero:
        if placed is not None:
            header.set_zooms([*placed, *header.get_zooms()[spatial:]])
            lines.append(
                f"{path}: its header's pixdim states no voxel size (0, which nibabel reads as 1, or not a number): "
                f"the sform's spacing is used, {mm(placed)}"
            )
        elif zero and np.all(np.isfinite(stated)):
            lines.append(f"{path}: its header states no voxel size (pixdim 0), nor does an sform: taken as 1 mm, as "
                         "nibabel does; volumes and the slice spacing are then in voxels, not mm")  # fmt: skip
        else:
            raise DataError(path, "its header's pixdim is not a number, and no sform states a voxel size: the "
                            "voxels' size and place are unknown; fix the header")  # fmt: skip
    return lines


def load_nifti(
    path: Path, ndims: tuple[int, ...] = (3, 4), min_inplane: int = 3, allow_zero: bool = False, allow_nan: bool = False
) -> tuple[np.ndarray, tuple]:
    """Load a NIfTI volume as float32 and check it is usable.

    Returns the array (x, y, slices[, frames]) and the header zooms (mm, mm, mm[, s]). Trailing axes of one voxel
    beyond the fourth (a cine some tools write as ``(x, y, z, t, 1)``) are dropped: they hold nothing.
    ``min_inplane`` is the smallest in-plane size accepted: one degradation block. ``allow_nan``: NaN voxels (no
    value, as a resampling tool pads outside the field of view) are accepted, for a use that keeps them NaN.
    """
    image, _ = load_image(path)
    return image_data(path, image, ndims, min_inplane, allow_zero, allow_nan)


def image_data(
    path: Path, image, ndims: tuple[int, ...] = (3, 4), min_inplane: int = 3, allow_zero: bool = False,
    allow_nan: bool = False,
) -> tuple[np.ndarray, tuple]:  # fmt: skip
    """:func:`load_nifti` of an image loaded already (:func:`load_image`)."""
    path = Path(path)
    _check_size(path, image)
    try:
        with np.errstate(over="ignore", invalid="ignore"):  # out-of-range values become inf: refused below
            data = np.asarray(image.dataobj, dtype=np.float32)
        zooms = zooms_mm(image.header)
        if data.ndim > 4 and all(n == 1 for n in data.shape[4:]):  # (x, y, z, t, 1): no voxel in the extra axes
            data, zooms = data.reshape(data.shape[:4]), zooms[:4]
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except UNREADABLE as exc:
        raise DataError(path, f"truncated or unreadable NIfTI ({type(exc).__name__}: {exc})") from None
    except MemoryError:
        raise DataError(path, f"{_voxels(image)}: more than this machine's memory holds") from None
    check_volume(path, data, ndims=ndims, min_inplane=min_inplane, allow_zero=allow_zero, allow_nan=allow_nan)
    return data, zooms


def _check_size(path: Path, image) -> None:
    """Before the voxels are read: a file shorter than its header's voxels need (uncompressed: its size tells), or
    voxels that need more memory than is available (a damaged header's dimensions, say), is one line; nibabel
    would try to allocate them all first and fail with MemoryError, in a traceback."""
    count = int(np.prod(image.shape, dtype=np.float64))
    itemsize = image.get_data_dtype().itemsize
    if not is_gzip_name(path):
        offset = int(getattr(image.dataobj, "offset", 0) or 0)  # (where the voxels start)
        try:
            size = path.stat().st_size
        except OSError:
            size = None
        if size is not None and size < offset + count * itemsize:
            raise DataError(
                path, f"truncated: {_voxels(image)} from byte {offset:,} need {offset + count * itemsize:,} bytes, "
                f"and the file holds {size:,}"
            )  # fmt: skip
    needed = count * (itemsize + 4)  # (the stored voxels, then their float32 values)
    if needed > 1 << 30 and (free := available_memory()) is not None and needed > free:
        raise DataError(
            path, f"{_voxels(image)}: reading them needs {needed / 1e9:.1f} GB of memory and {free / 1e9:.1f} GB "
            "are available here (is its header's size right?)"
        )  # fmt: skip


def _voxels(image) -> str:
    """What a header says the voxels are: ``its header says 30000 x 30000 x 300 x 30 int16 voxels``."""
    return f"its header says {' x '.join(map(str, image.shape))} {image.get_data_dtype()} voxels"


def check_volume(
    path, data: np.ndarray, ndims=(3, 4), min_inplane: int = 3, allow_zero: bool = False, allow_nan: bool = False
) -> None:
    """Raise DataError when ``data`` cannot be used as an image volume (``allow_nan``: NaN voxels are no error,
    unless every voxel is NaN; infinite ones always are)."""
    if data.ndim not in ndims:
        want = " or ".join(f"{d}D" for d in ndims)
        raise DataError(path, f"expected a {want} volume, got a {data.ndim}D array of shape {data.shape}")
    if min(data.shape[:2]) < min_inplane:
        raise DataError(
            path, f"in-plane size {data.shape[0]}x{data.shape[1]} is smaller than one {min_inplane}x{min_inplane} block"
        )
    bad = np.isinf(data) if allow_nan else ~np.isfinite(data)
    if bad.any():
        first = ", ".join(str(int(i)) for i in np.unravel_index(int(np.argmax(bad)), data.shape))
        what = "infinite voxels (values beyond float32's range)"
        what = what if allow_nan else "NaN or infinite voxels (or values beyond float32's range)"
        hint = "" if allow_nan else " (a resampling tool's NaN padding with 0, say)"
        raise DataError(
            path, f"{int(np.sum(bad))} {what}, the first at ({first}): replace them{hint} and run again; no voxel's "
            "value is changed behind your back"
        )  # fmt: skip
    valued = ~np.isnan(data) if allow_nan else True  # (no copy of the data: masks only)
    if allow_nan and not valued.any():
        raise DataError(path, "every voxel is NaN: no value to upscale")
    if not allow_zero and not np.any((data != 0) & valued):
        raise DataError(path, "all voxels are zero")
