"""Writing an upscaled scan as a derived DICOM series beside the original, for a viewer or PACS.

The new series is in the original study (StudyInstanceUID and every patient tag kept), with its own
SeriesInstanceUID and SOPInstanceUIDs (pydicom's ``generate_uid``), ImageType ``DERIVED\\SECONDARY``, a
SeriesDescription saying what was done, and a Source Image Sequence naming the input image (or, between input
slices, the two) each image was made from (its SOP class and instance, and its frame in an enhanced file).
The geometry follows the NIfTI output's: output voxel ``(f*i, f*j)`` sits where input voxel ``(i, j)`` sat, so
ImagePositionPatient and ImageOrientationPatient of each slice stay, PixelSpacing is divided by the factor and
Rows and Columns multiplied by it. Across slices, slice k of the input is slice ``g*k`` of the output, and the
slices in between are placed ``spacing / g`` apart along the same line (ImagePositionPatient, SliceLocation and
SpacingBetweenSlices to match). Every phase keeps its TriggerTime.

Pixels are stored in the input's type, with each image's RescaleSlope and RescaleIntercept, so the values
read back are the upscaled values in the input's units (to the input's own quantisation). Where an image's values
do not fit its template's range (a series scaled image by image, across slices), that image gets a coarser slope
that holds them: no value is clipped, and the other maps from stored values its header holds (a Real World Value
Mapping, Philips' private scale slope) are restated to match.

The series goes to a temporary folder beside OUT and is renamed to OUT when whole. A marker file says that the
folder is the tool's output: only such a folder is replaced (with ``--overwrite``).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import warnings
from pathlib import Path

import numpy as np

from heart_sr_tf.data.dicom import DicomSeries, rescale
from heart_sr_tf.data.dicom_padding import padding_range, restated, set_padding
from heart_sr_tf.errors import DataError, HeartSRError, os_reason
from heart_sr_tf.outputs import check_place
from heart_sr_tf.volumes.grid import OutputGrid

MARKER = ".heart-sr-series"  # in every output folder the tool writes; nothing else is ever replaced
# The tool's own file names, for a folder whose marker lists none (as versions before the listing wrote it).
OWN_NAMES = re.compile(r"(IM\d{4}_\d{4}|SEG\d{4})\.dcm")
SERIES_OFFSET = 1000  # the derived series' number: the original's plus this, as scanners number derived series


def is_dicom_output(out_path: Path) -> bool:
    """OUT names a DICOM series folder: it ends in ``/``, is an existing folder, or has no suffix."""
    text = str(out_path)
    return text.endswith(os.sep) or Path(out_path).is_dir() or not Path(text).suffix


PHILIPS_GROUP, PHILIPS_CREATOR = 0x2005, "Philips MR Imaging DD 001"
PHILIPS_SCALE_SLOPE = 0x0E  # (2005,100E) in that block: Philips' scale slope, for its "precise" floating values
PHILIPS_RESCALE_CREATOR = "Philips MR Imaging DD 005"  # (2005,140A) and (2005,1409): copies of RescaleSlope and
PHILIPS_RESCALE_SLOPE, PHILIPS_RESCALE_INTERCEPT = 0x0A, 0x09  # RescaleIntercept, which some readers prefer


def refuse_output_folder(out_dir: Path, overwrite: bool) -> None:
    """A DICOM OUT must be new, empty, or (with ``overwrite``) a series folder this tool wrote."""
    out_dir = Path(out_dir)
    if out_dir.is_symlink() and not out_dir.exists():
        raise HeartSRError(f"{out_dir}: a link to {os.readlink(out_dir)}, which does not exist; give a new folder")
    if out_dir.exists() and not out_dir.is_dir():
        raise HeartSRError(f"{out_dir}: is a file; a DICOM output is a folder (a NIfTI output ends in .nii.gz)")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not (out_dir / MARKER).is_file():
            raise HeartSRError(f"{out_dir}: a folder that holds files the tool did not write; give a new folder")
        if foreign := foreign_files(out_dir):
            shown = ", ".join(foreign[:3]) + (", ..." if len(foreign) > 3 else "")
            raise HeartSRError(
                f"{out_dir}: an earlier output that now also holds {len(foreign)} file(s) the tool did not write "
                f"({shown}); move them out (--overwrite would delete them) or give a new folder"
            )
        if not overwrite:
            raise HeartSRError(f"{out_dir}: holds an earlier output; pass --overwrite to replace it")
    check_place(out_dir.parent, named=out_dir)


def write_marker(folder: Path, series_uid: str) -> None:
    """Mark ``folder`` (a whole series just written) as the tool's: the series UID, then every file it holds."""
    names = sorted(entry.name for entry in folder.iterdir() if entry.name != MARKER)
    (folder / MARKER).write_text("".join(f"{line}\n" for line in [series_uid, *names]))


def foreign_files(out_dir: Path) -> list[str]:
    """The entries of an output folder of the tool that it did not write (a file a user put there since): those
    its marker does not list (or, for a marker that lists none, not named as the tool names its files)."""
    listed = set((out_dir / MARKER).read_text(errors="replace").splitlines()[1:])
    return sorted(
        entry.name
        for entry in out_dir.iterdir()
        if entry.name != MARKER
        and (entry.name not in listed if listed else not (entry.is_file() and OWN_NAMES.fullmatch(entry.name)))
    )


def write_dicom_series(
    series: DicomSeries,
    data: np.ndarray,
    grid: OutputGrid,
    tmp_dir: Path,
    out_dir: Path,
    what: str,
    overwrite: bool = False,
    padding: np.ndarray | None = None,
) -> Path:
    """``data[x, y, z, T]`` (the upscaled scan in the input's units, on ``grid``) as the derived series
    ``out_dir``, written in ``tmp_dir`` first (which must exist, empty); ``out_dir`` is checked again before it is
    replaced (:func:`replace_folder`). ``padding`` (``data``'s shape): the voxels that hold the input's declared
    padding, passed through; every other voxel is stored off the padding values (:func:`_stored`)."""
    from pydicom.uid import ExplicitVRLittleEndian, generate_uid

    fx, fy, fz = grid.factors
    depth, phases = data.shape[2], data.shape[3]
    series_uid = generate_uid()
    columns = np.diag([-1.0, -1.0, 1.0]) @ series.affine[:3, :3]  # LPS, from one input voxel to the next
    step = columns[:, 2] / fz  # ... and from one output slice to the next
    origin = np.array([float(v) for v in series.headers[0][0].ImagePositionPatient])
    first = origin + columns[:, :2] @ np.asarray(grid.offsets[:2])  # where output pixel (0, 0) lies, in slice 0
    number = int(series.headers[0][0].get("SeriesNumber") or 0) + SERIES_OFFSET  # (a stack's: its first series')
    positions = grid.positions(2, depth)  # each output slice's place among the input slices
    locations = _slice_locations(series, positions)
    count = len(series.headers)
    for k in range(depth):
        below = int(np.clip(np.floor(positions[k]), 0, count - 1))
        inside = 0 < positions[k] < count - 1 and positions[k] != below
        nearest = int(np.clip(np.round(positions[k]), 0, count - 1))  # whose header the image starts from
        for t in range(phases):
            template = series.headers[nearest][t]
            ds = _copy(template)
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            for keyword in ("SmallestImagePixelValue", "LargestImagePixelValue", "IconImageSequence"):
                if keyword in ds:
                    delattr(ds, keyword)
            values = data[:, :, k, t]
            if series.inverted_about is not None:  # MONOCHROME1 read as shown: back to its values
                values = series.inverted_about - values.astype(np.float64)
            pixels, slope, intercept = _stored(
                series.path, template, values, None if padding is None else padding[:, :, k, t]
            )
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds.set_pixel_data(pixels, _photometric(template), int(template.BitsStored))
            if (slope, intercept) != rescale(series.path, template):
                ds.RescaleSlope, ds.RescaleIntercept = _ds(slope), _ds(intercept)
                _restate_mappings(ds, rescale(series.path, template), (slope, intercept))
                # the padding passed through keeps its real value: a new stored one
                set_padding(ds, restated(template, rescale(series.path, template), (slope, intercept)))
            ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
            sources = series.headers[below : below + (2 if inside else 1)]  # the input slices it lies between
            ds.SourceImageSequence = [_source(slice_[t]) for slice_ in sources]
            ds.SeriesInstanceUID = series_uid
            ds.SeriesNumber = number
            ds.SeriesDescription = f"heart-sr {what}"[:64]
            ds.DerivationDescription = f"heart-sr-tf: {what}, from series {series.series_numbers}"
            ds.ImageType = ["DERIVED", "SECONDARY", *list(template.get("ImageType", []))[2:]]
            ds.InstanceNumber = 1 + k * phases + t
            ds.PixelSpacing = [_ds(float(template.PixelSpacing[0]) / fy), _ds(float(template.PixelSpacing[1]) / fx)]
            ds.ImagePositionPatient = [_ds(v) for v in first + positions[k] * columns[:, 2]]
            if locations is not None:
                ds.SliceLocation = _ds(locations[k])
            if fz > 1 or "SpacingBetweenSlices" in ds:
                ds.SpacingBetweenSlices = _ds(float(np.linalg.norm(step)))
            if fz > 1:  # the made slices tile the acquired slabs: each is as thick as the spacing, and a reader that
                ds.SliceThickness = _ds(float(np.linalg.norm(step)))  # sums slice areas times it counts each voxel once
            try:
                ds.save_as(tmp_dir / f"IM{k:04d}_{t:04d}.dcm", enforce_file_format=True)
            except OSError as exc:
                raise DataError(out_dir, f"cannot write ({os_reason(exc)})") from None
    write_marker(tmp_dir, series_uid)
    return replace_folder(tmp_dir, out_dir, overwrite)


def _copy(template):
    """A deep copy of an input header to make an output image's from: a pickle round trip, the same dataset as
    ``copy.deepcopy`` gives (tested) in a quarter of its time on a scanner's header of 150 elements."""
    return pickle.loads(pickle.dumps(template, protocol=pickle.HIGHEST_PROTOCOL))


def _restate_mappings(ds, before: tuple[float, float], after: tuple[float, float]) -> None:
    """An image stored with another slope and intercept than its template's (``before`` -> ``after``): the other
    maps from stored values its header copied make the values they made from the input, not values off by the ratio
    of the slopes. A Real World Value Mapping's slope, intercept and stored range are restated (a LUT one, which
    cannot be, is removed); so are Philips' private scale slope (2005,100E), whose "precise" value, the displayed
    one over RescaleSlope x it, dcm2niix reads by default (after the mapping), and its private copies of
    RescaleSlope and RescaleIntercept (2005,140A and 2005,1409)."""
    (slope0, inter0), (slope, inter) = before, after
    if (block := _private_block(ds, PHILIPS_CREATOR)) is not None and PHILIPS_SCALE_SLOPE in block:
        element = block[PHILIPS_SCALE_SLOPE]
        element.value = float(element.value) * slope0 / slope
    if (block := _private_block(ds, PHILIPS_RESCALE_CREATOR)) is not None:  # its copies of RescaleSlope, -Intercept
        for offset, value in ((PHILIPS_RESCALE_SLOPE, slope), (PHILIPS_RESCALE_INTERCEPT, inter)):
            if offset in block:
                block[offset].value = _ds(value)
    if "RealWorldValueMappingSequence" not in ds:
        return
    kept = []
    for item in ds.RealWorldValueMappingSequence:
        if "RealWorldValueSlope" not in item:
            continue  # a LUT of the stored values
        m, b = float(item.RealWorldValueSlope), float(item.get("RealWorldValueIntercept") or 0.0)
        item.RealWorldValueSlope = m * slope / slope0
        item.RealWorldValueIntercept = b + (inter - inter0) * m / slope0
        for keyword, rounded in (
            ("RealWorldValueFirstValueMapped", np.floor),
            ("RealWorldValueLastValueMapped", np.ceil),
        ):
            if keyword in item:
                stored = rounded((float(item.get(keyword)) * slope0 + inter0 - inter) / slope)
                limits = (-(2**15), 2**15 - 1) if int(ds.get("PixelRepresentation", 0)) == 1 else (0, 2**16 - 1)
                setattr(item, keyword, int(np.clip(stored, *limits)))
        kept.append(item)
    ds.RealWorldValueMappingSequence = kept


def _private_block(ds, creator: str):
    try:
        return ds.private_block(PHILIPS_GROUP, creator)
    except KeyError:
        return None


def _source(header):
    """A Source Image Sequence item naming the input image ``header`` (its frame, in an enhanced file)."""
    from pydicom.dataset import Dataset

    item = Dataset()
    item.ReferencedSOPClassUID = getattr(header, "heart_sr_sop_class", None) or header.SOPClassUID
    item.ReferencedSOPInstanceUID = header.SOPInstanceUID
    frame = getattr(header, "heart_sr_frame", None)
    if frame is not None:
        item.ReferencedFrameNumber = frame + 1
    return item


def _photometric(template) -> str:
    """The input's grey scale: MONOCHROME1 (low values shown bright) stays so, or a viewer would show the derived
    series inverted; anything else is MONOCHROME2."""
    return (
        "MONOCHROME1" if str(template.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1" else "MONOCHROME2"
    )


def _ds(value: float) -> str:
    """A Decimal String of at most 16 characters."""
    text = f"{value:.10g}"
    return text if len(text) <= 16 else f"{value:.6e}"


def _slice_locations(series: DicomSeries, positions: np.ndarray):
    """SliceLocation of each output slice (at ``positions`` among the input slices): the input's, continued
    linearly between and past its slices."""
    values = [h[0].get("SliceLocation") for h in series.headers]
    if any(v in (None, "") for v in values):
        return None
    values = np.array([float(v) for v in values])
    gap = float(np.mean(np.diff(values))) if len(values) > 1 else 0.0
    base = np.clip(np.floor(positions).astype(int), 0, len(values) - 1)
    return values[base] + (positions - base) * gap


STORED_TYPES = {8: (np.uint8, np.int8), 16: (np.uint16, np.int16)}  # by BitsAllocated: what pydicom writes


def check_derivable(series: DicomSeries) -> None:
    """Before any work: every image's pixels can be stored again as its header says (integer pixel data of 8 or
    16 bits allocated), so the derived series keeps its input's pixel type. Before, a 32-bit series ran through
    the model and then failed writing, in a traceback."""
    for headers in series.headers:
        for header in headers:
            allocated = int(header.get("BitsAllocated", 0))
            if allocated not in STORED_TYPES or not 0 < int(header.get("BitsStored", 0)) <= allocated:
                raise DataError(
                    series.path, f"images of BitsAllocated {header.get('BitsAllocated')} and BitsStored "
                    f"{header.get('BitsStored')}: a derived DICOM series is written in its input's pixel type, and "
                    "only 8 or 16 bits are; write a NIfTI (OUT ending in .nii.gz) instead"
                )  # fmt: skip


def _stored(
    source: Path, template, values: np.ndarray, padding: np.ndarray | None = None
) -> tuple[np.ndarray, float, float]:
    """``values[x, y]`` in real units -> the template's stored pixel type ``[rows, columns]``, with the slope and
    intercept that read them back: the template's own, unless the values do not fit its range (a series scaled
    image by image, e.g. a slice made between two differently scaled ones); then a coarser slope that holds them,
    never a clipped value. Where the template declares padding values (PixelPaddingValue), a pixel that is not
    ``padding`` and rounds onto one is stored as the nearest value outside them (a viewer would hide it as
    padding): one step of the stored values for a single padding value, as much as rounding moves it anyway."""
    slope0, intercept0 = slope, intercept = rescale(source, template)
    bits, signed = int(template.BitsStored), int(template.get("PixelRepresentation", 0)) == 1
    dtype = STORED_TYPES[int(template.BitsAllocated)][signed]
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    values = values.astype(np.float64)
    lowest, highest = float(values.min()), float(values.max())
    if lowest < intercept + slope * (low - 0.5) or highest > intercept + slope * (high + 0.5):
        if lowest < intercept + slope * low and low == 0:
            intercept = float(np.floor(lowest))
        needed = max((highest - intercept) / high, (lowest - intercept) / low if low < 0 else 0.0, slope)
        slope = float(_ds(needed * (1 + 1e-6)))  # as the header will hold it, never below what is needed
    exact = (values - intercept) / slope
    stored = np.clip(np.round(exact), low, high)
    if padding_range(template) is not None:
        restate = restated(template, (slope0, intercept0), (slope, intercept)).values()
        stored = _off_padding(stored, exact, (min(restate), max(restate)), padding, (low, high))
    return np.ascontiguousarray(stored.T.astype(dtype)), slope, intercept


def _off_padding(stored, exact, declared: tuple[int, int], padding, limits: tuple[int, int]) -> np.ndarray:
    """``stored`` with every pixel that is not ``padding`` (None: none is) and lies among the ``declared`` padding
    values moved to the nearest stored value outside them, within the type's ``limits``."""
    inside = (stored >= declared[0]) & (stored <= declared[1])
    if padding is not None:
        inside &= ~padding
    if not inside.any():
        return stored
    below, above = declared[0] - 1, declared[1] + 1
    if below < limits[0]:
        target = np.full(stored.shape, above, stored.dtype)
    elif above > limits[1]:
        target = np.full(stored.shape, below, stored.dtype)
    else:
        target = np.where(exact - below < above - exact, below, above).astype(stored.dtype)
    return np.where(inside, target, stored)


def staging_folder(out_dir: Path) -> Path:
    """A new, empty temporary folder beside ``out_dir`` for a series this tool writes there (an interrupted run's is
    removed: only this tool writes that name), after checking that ``out_dir`` is new or the tool's own."""
    refuse_output_folder(out_dir, overwrite=True)
    tmp_dir = out_dir.with_name(f".heart-sr-{out_dir.name}.part")
    shutil.rmtree(tmp_dir, ignore_errors=True)
    tmp_dir.mkdir(parents=True)
    return tmp_dir


def replace_folder(tmp_dir: Path, out_dir: Path, overwrite: bool = True) -> Path:
    """Move the whole series (written in ``tmp_dir``) into place as ``out_dir``; an earlier output of the tool is
    removed only after that. ``out_dir`` is checked again first, as :func:`refuse_output_folder` checked it before
    the work (``overwrite``: an earlier output of the tool may be replaced): a folder that appeared or changed while
    the work ran is left as it is, and the series is not written."""
    try:
        refuse_output_folder(out_dir, overwrite)
    except HeartSRError as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise HeartSRError(f"{exc} (found when the series was ready: {out_dir} is left as it is, and the series was "
                           "not written)") from None  # fmt: skip
    old = None
    if out_dir.exists():
        old = out_dir.with_name(f"{tmp_dir.name}.old")
        out_dir.rename(old)
    tmp_dir.rename(out_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
    return out_dir
