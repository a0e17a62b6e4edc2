"""A scan from disk, whatever its format: a NIfTI file, or a DICOM series (a folder, or one file of it).

Either way the result is the same :class:`Scan`: ``data`` float32 ``(x, y[, slices[, frames]])`` in the
scanner's units, and a NIfTI ``image`` that carries the geometry (affine, zooms) and the data type the output is
written in. A DICOM series also keeps its headers (``dicom``), so a derived DICOM series can be written back.

The slices are always ``data``'s third axis. A NIfTI file stores them there when written in acquisition order
(dcm2niix, ACDC), but a file reoriented to the nearest canonical axes (``fslreorient2std``, nibabel's
``as_closest_canonical``) may hold a short-axis stack's slices along its first or second axis. The slice axis is
the one whose voxels are clearly the longest (at least twice any other) and fewest; it is moved to the third
place on reading (``slice_axis`` says where it was; ``zooms`` follow), and :meth:`Scan.file_layout` puts an
array of the same layout back in the file's order for writing.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import nibabel as nib
import numpy as np

from heart_sr_tf.data.dicom import DicomSeries, is_dicom, made_by_heart_sr, read_series
from heart_sr_tf.data.dicom_zip import is_zip_export
from heart_sr_tf.data.file_kind import check_scan_path
from heart_sr_tf.data.nifti import check_volume, image_data, load_image, zooms_mm
from heart_sr_tf.errors import DataError


@dataclass(frozen=True)
class ScanSource:
    """Where a scan is: a NIfTI file or a DICOM series' folder (or file), and, for a folder holding several
    series (a study exported flat), which one (``series``: its SeriesInstanceUID, or a SeriesNumber). ``label``
    names such a series in tables and output names (``series-7_cine_sax``)."""

    path: Path
    series: str | None = None
    label: str | None = field(default=None, compare=False)

    def __str__(self) -> str:
        return str(self.path) if self.series is None else f"{self.path} (series {self.label or self.series})"

    @property
    def name(self) -> str:
        """The scan's short name: the file's or folder's, and the series' label after it."""
        return self.path.name if self.series is None else f"{self.path.name}/{self.label or self.series}"


def as_source(scan) -> ScanSource:
    """A path (str or Path) or a :class:`ScanSource`, as a :class:`ScanSource`."""
    return scan if isinstance(scan, ScanSource) else ScanSource(Path(scan))


@dataclass
class Scan:
    path: Path
    data: np.ndarray
    image: nib.Nifti1Image
    dicom: DicomSeries | None = None
    slice_axis: int = 2  # where the file keeps the slices (``data`` has them third)
    header_notes: tuple[str, ...] = ()  # what reading its NIfTI header found (nibabel's repairs, its voxel sizes)

    @property
    def zooms(self) -> tuple[float, ...]:
        """The voxel sizes in mm (and s between frames) in ``data``'s order (slice spacing third)."""
        return tuple(float(z) for z in _to_third(list(zooms_mm(self.image.header)), self.slice_axis))

    @property
    def slice_thickness(self) -> float | None:
        """The slices' thickness in mm as the scan states it (:meth:`stated_thickness`), else None."""
        return self.stated_thickness()[0]

    def stated_thickness(self) -> tuple[float | None, str]:
        """The slices' thickness in mm and where it was read: a DICOM series' SliceThickness (the median of its
        slices', when every slice states a positive one), or a NIfTI's BIDS sidecar (``NAME.json`` beside
        ``NAME.nii[.gz]``, as dcm2niix writes it). ``(None, where it looked)`` when neither states one (a NIfTI
        header holds none; an empty value, or 0, states none). A negative, infinite or non-numeric value is an
        error naming the file: it is not read as "contiguous" behind the user's back."""
        if self.dicom is None:
            return _sidecar_thickness(self.path)
        values = []
        for images in self.dicom.headers:
            value = _thickness_value(images[0].get("SliceThickness"), self.path, "the DICOM header's SliceThickness")
            if value is None:
                return None, "a DICOM header without a SliceThickness, or with 0"
            values.append(value)
        if not values:
            return None, "no DICOM header"
        return float(np.median(values)), "the header's SliceThickness"

    @property
    def declared_padding(self) -> np.ndarray | None:
        """``data``'s voxels that a DICOM series' headers declare padding (PixelPaddingValue, and its range limit),
        in ``data``'s shape; None where none is declared or none holds it."""
        if self.dicom is None or self.dicom.padding is None:
            return None
        mask = self.dicom.padding
        return mask[..., 0] if mask.ndim == self.data.ndim + 1 else mask

    def padding_note(self) -> str | None:
        """The line that says how many voxels a DICOM series declares padding and what upscaling does with them."""
        mask = self.declared_padding
        if mask is None:
            return None
        return (
            f"{self.path}: {int(np.count_nonzero(mask)):,} of its {mask.size:,} voxels hold the headers' "
            "PixelPaddingValue (no image there): left out of each frame's intensity window and passed through "
            "unchanged, still padding in a derived series"
        )

    def file_layout(self, array: np.ndarray, factors=None):
        """``array`` (``data``'s layout, or an upscaled one: per-axis ``factors`` in that layout) in the file's
        axis order, with the factors in that order too."""
        if self.slice_axis == 2 or array.ndim < 3:
            return array, factors
        back = np.moveaxis(array, 2, self.slice_axis)
        return back, None if factors is None else tuple(factors[axis] for axis in self.file_axes())

    def file_axes(self) -> list[int]:
        """For each of the file's first three axes, the axis of ``data`` that holds it."""
        order = _to_third([0, 1, 2], self.slice_axis)
        return [order.index(axis) for axis in range(3)]

    def made_by_heart_sr(self) -> str | None:
        """What this tool wrote into the scan when it is one of its own outputs (a super-resolved scan or a label
        map: the NIfTI ``descrip``, or a derived DICOM series' DerivationDescription), else None."""
        if self.dicom is not None:
            return made_by_heart_sr(self.dicom.headers[0][0])
        return nifti_made_by_heart_sr(self.image.header)

    def voxel_digest(self) -> str:
        """A digest of the voxels' values and the array's shape, whatever the file's format, header or stored
        type: two scans with one digest are one acquisition exported twice (or copied under another name)."""
        digest = hashlib.sha1(str(self.data.shape).encode())
        digest.update(np.ascontiguousarray(self.data, dtype=np.float32).view(np.uint8))
        return digest.hexdigest()

    def label_values(self, most: int = 8) -> np.ndarray | None:
        """The distinct values when the scan holds at most ``most``, all whole numbers, as a label map does
        (a segmentation passed by mistake for the image), else None."""
        values = np.unique(self.data[..., 0] if self.data.ndim == 4 else self.data)  # one frame is enough to tell
        if len(values) > most or not np.all(values == np.round(values)):
            return None
        return values

    def warnings(self) -> list[str]:
        """The lines to show before upscaling it: what reading a NIfTI header found (``header_notes``: a header
        nibabel repaired, voxel sizes it does not state), this tool's own derived series left out beside a DICOM
        scan (:meth:`left_out_note`), a label map given as the scan (:meth:`label_warning`), a single DICOM slice
        whose depth no header states (:meth:`depth_warning`), NaN voxels (:meth:`nan_note`), declared padding
        (:meth:`padding_note`), a MONOCHROME1 series read as shown (:meth:`inverted_note`), bits above BitsStored
        (:meth:`bits_note`)."""
        lines = (self.left_out_note(), self.label_warning(), self.depth_warning(), self.nan_note())
        lines += (self.padding_note(),)
        return self.read_notes() + [line for line in lines if line is not None]

    def read_notes(self) -> list[str]:
        """What reading it found and did, for every command that reads a lab's scan: its NIfTI header's repairs and
        voxel sizes (``header_notes``), a MONOCHROME1 series read as shown, bits above BitsStored left out."""
        return [line for line in (*self.header_notes, self.inverted_note(), self.bits_note()) if line is not None]

    def bits_note(self) -> str | None:
        """The line that says some pixels had bits set above BitsStored, which the reader left out."""
        if self.dicom is None or self.dicom.bits_above is None:
            return None
        first, count, bits = self.dicom.bits_above
        return (
            f"{self.path}: {count:,} pixels (the first in {first}) have bits set above BitsStored ({bits}), which the "
            "DICOM standard says are not part of the value (an overlay's?): read without them. If the headers' "
            "BitsStored is wrong instead, those pixels' values are wrong here: correct it and run again"
        )

    def inverted_note(self) -> str | None:
        """The line that says a MONOCHROME1 series (lowest value shown white) is read as it is shown."""
        if self.dicom is None or self.dicom.inverted_about is None:
            return None
        return (
            f"{self.path}: MONOCHROME1 (low values shown bright): read as it is shown, each value v as "
            f"{self.dicom.inverted_about:g} - v (its range kept), which a NIfTI written from it holds; a DICOM series "
            "written from it is MONOCHROME1 again, in the input's values"
        )

    def left_out_note(self) -> str | None:
        """The line that names this tool's own derived series found beside a DICOM scan and not read with it."""
        if self.dicom is None or not self.dicom.left_out:
            return None
        return (
            f"{self.path}: left out {self.dicom.left_out}: written by heart-sr, not upscaled again (--series picks "
            "it if you mean to)"
        )

    def nan_note(self) -> str | None:
        """The line that says how many voxels hold NaN (no value: read with ``allow_nan``) and what upscaling does
        with them."""
        count = int(np.count_nonzero(np.isnan(self.data)))
        if not count:
            return None
        return (
            f"{self.path}: {count:,} of its {self.data.size:,} voxels are NaN (no value: a resampling tool's "
            "padding?): left out of each frame's intensity window, shown to the model as the window's minimum, and "
            "NaN in the result wherever the nearest input voxel is"
        )

    def depth_warning(self) -> str | None:
        """The line that says a single-slice DICOM series states neither SpacingBetweenSlices nor SliceThickness,
        so the 1 mm its NIfTI view gives the slice's depth is this tool's choice, not the scanner's."""
        if self.dicom is None or self.dicom.depth_stated:
            return None
        return (
            f"{self.path}: a single slice whose headers state neither SpacingBetweenSlices nor SliceThickness: "
            "its depth is taken as 1 mm in a NIfTI written from it (the in-plane values are not affected)"
        )

    def label_warning(self) -> str | None:
        """The line that says a scan of few whole-number values may be a label map (:meth:`label_values`)."""
        values = self.label_values()
        if values is None:
            return None
        if len(values) == 1:  # (of the first frame: the others may differ, a blank first frame)
            if np.any((self.data != values[0]) & ~np.isnan(self.data)):
                return None
            return f"{self.path}: every voxel holds {values[0]:g}: no image to super-resolve; the result holds it too"
        return (
            f"{self.path}: holds only {len(values)} distinct values ({', '.join(f'{v:g}' for v in values)}): is it a "
            "label map? upscale treats it as an image and interpolates between its values"
        )


def read_scan(
    path,
    ndims=(2, 3, 4),
    series: int | str | None = None,
    min_inplane: int = 1,
    axis: int | None = None,
    allow_nan: bool = False,
) -> Scan:
    """The scan at ``path`` (a path, or a :class:`ScanSource` that may name its series), checked usable
    (``ndims``, in-plane size, finite, not all zero); its slices along ``axis`` when given (an upscaled scan keeps
    its input's: across slices, its voxels may be near-isotropic). Errors name the series too. ``allow_nan``: a
    NIfTI's NaN voxels (no value: a resampling tool's padding) are accepted, for upscaling, which keeps them NaN;
    a DICOM series holds none."""
    source = as_source(path)
    path, series = source.path, source.series if series is None else series
    check_scan_path(path)
    if path.exists() and (is_dicom(path) or is_zip_export(path)):
        try:
            dicom = read_series(path, series)
        except DataError as exc:
            if source.series is None:
                raise
            problem = str(exc).removeprefix(f"{path}: ")  # named once: the folder, and which series of it
            raise type(exc)(source, problem) from None  # (a subclass kept: NoCine)
        data = dicom.data[..., 0] if dicom.data.shape[3] == 1 else dicom.data
        check_volume(source, data, ndims=ndims, min_inplane=min_inplane)
        return Scan(path, data, nifti_image(dicom, data), dicom)
    if series is not None and path.exists():  # (a missing path: load_image says so)
        raise DataError(path, f"series {series} was asked for, but a NIfTI file holds one scan, not DICOM series")
    image, notes = load_image(path)
    data, zooms = image_data(path, image, ndims=ndims, min_inplane=1, allow_nan=allow_nan)
    axis = slice_axis(zooms, data.shape) if axis is None or data.ndim < 3 else axis
    if axis != 2:
        data = np.moveaxis(data, axis, 2)
    if min_inplane > 1:  # the in-plane size, once the slices are third
        check_volume(path, data, ndims=ndims, min_inplane=min_inplane, allow_nan=allow_nan)
    return Scan(path, data, image, slice_axis=axis, header_notes=tuple(notes))


def nifti_made_by_heart_sr(header) -> str | None:
    """What this tool wrote into a NIfTI header's ``descrip`` when the file is one of its outputs, else None."""
    text = header["descrip"].tobytes().split(b"\0")[0].decode("latin-1")
    return text if text.startswith("heart-sr") else None


def sidecar(path: Path) -> Path:
    """A NIfTI file's BIDS JSON sidecar: ``NAME.json`` beside ``NAME.nii`` or ``NAME.nii.gz``."""
    name = path.name.removesuffix(".gz").removesuffix(".nii")
    return path.with_name(f"{name}.json")


def sidecar_description(path: Path) -> str | None:
    """The SeriesDescription that a NIfTI file's BIDS sidecar states (dcm2niix writes it), else None: no sidecar, or
    one that is unreadable or states none (read for a filter only: :func:`_sidecar_thickness` says what is wrong
    with a sidecar when its thickness is needed)."""
    side = sidecar(Path(path))
    try:
        fields = json.loads(side.read_text(encoding="utf-8")) if side.is_file() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    value = fields.get("SeriesDescription") if isinstance(fields, dict) else None
    return value if isinstance(value, str) else None


def _sidecar_thickness(path: Path) -> tuple[float | None, str]:
    """SliceThickness from the BIDS sidecar beside a NIfTI file (:meth:`Scan.stated_thickness`)."""
    side = sidecar(Path(path))
    if not side.is_file():
        return None, f"no BIDS sidecar {side.name} beside it, and a NIfTI header holds none"
    try:
        fields = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(side, f"not a readable JSON sidecar (read for SliceThickness): {exc}") from None
    if not isinstance(fields, dict):
        raise DataError(side, f"not a BIDS sidecar: a JSON {type(fields).__name__}, not an object of fields")
    value = _thickness_value(fields.get("SliceThickness"), side, "SliceThickness")
    if value is None:
        return None, f"its sidecar {side.name} states no SliceThickness, or 0"
    return value, f"SliceThickness of the sidecar {side.name}"


def _thickness_value(value, where: Path, field: str) -> float | None:
    """A stated slice thickness in mm; None when it states none (absent, empty, or 0, as some writers put it)."""
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    bad = isinstance(value, (bool, str, list, dict))
    try:
        number = float(value)
    except (TypeError, ValueError):
        bad = True
    if bad or not np.isfinite(number) or number < 0:
        raise DataError(
            where,
            f"{field} is {value!r}, not a slice thickness in mm (--slice-thickness MM gives it instead)",
        )
    return number or None


def slice_axis(zooms, shape) -> int:
    """The axis that holds the slices: the third, unless another one's voxels are at least twice as long as any
    other's and it has the fewest of them (a reoriented short-axis stack)."""
    if len(shape) < 3 or len(zooms) < 3:
        return 2
    sizes = [float(z) for z in zooms[:3]]
    if not all(np.isfinite(sizes)) or min(sizes) <= 0:  # a header without voxel sizes tells nothing
        return 2
    longest = int(np.argmax(sizes))
    others = [k for k in range(3) if k != longest]
    if longest == 2 or sizes[longest] < 2 * max(sizes[k] for k in others):
        return 2
    return longest if all(shape[longest] < shape[k] for k in others) else 2


def _to_third(items: list, axis: int) -> list:
    """``items`` (per axis) with the one at ``axis`` moved to the third place, as ``np.moveaxis(a, axis, 2)``."""
    if axis == 2 or len(items) < 3:
        return items
    head = items[:3]
    moved = head[:axis] + head[axis + 1 :]
    return [*moved[:2], head[axis], *items[3:]]


def nifti_image(series: DicomSeries, data: np.ndarray) -> nib.Nifti1Image:
    """The series as NIfTI: its RAS affine (qform and sform, scanner space), zooms in mm (and s between
    phases), stored as int16 when every value is an integer in its range, else float32."""
    integer = np.all(data == np.round(data)) and data.min() >= -32768 and data.max() <= 32767
    image = nib.Nifti1Image(data.astype(np.int16) if integer else data, series.affine)
    image.set_qform(series.affine, 1)
    image.set_sform(series.affine, 1)
    image.header.set_zooms(series.zooms[: data.ndim])
    image.header.set_xyzt_units("mm", "sec")
    image.header.set_data_dtype(np.int16 if integer else np.float32)
    return image
