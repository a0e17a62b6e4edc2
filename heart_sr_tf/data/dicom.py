"""Reading a DICOM cine series (a folder of single-frame images, from any vendor) into the array and geometry a
NIfTI gives: ``[x, y, slice, phase]`` float32 with RescaleSlope/Intercept applied, and a RAS affine.

- An enhanced multi-frame file (one file, every slice and phase) is read frame by frame from its functional
  groups (position, orientation, spacing, trigger delay, rescale; per frame or shared) as if each frame were a
  classic image; a derived series is written back as classic images.
- Files are grouped by SeriesInstanceUID; a folder holding several image series is refused (each is listed)
  unless ``series`` picks one by its SeriesNumber or SeriesInstanceUID (:func:`folder_series` lists a folder's
  series, so that a cohort takes each as a scan). Files that are not DICOM, and DICOM objects without pixels
  (DICOMDIR, reports), are left aside; files written without the Part 10 preamble (raw datasets) are read.
- Slices are ordered by ImagePositionPatient projected on the slice normal (the cross product of
  ImageOrientationPatient's row and column directions); the phases of each slice by TriggerTime, else by
  InstanceNumber.
- Array axis 0 runs along the columns (ImageOrientationPatient's row direction, PixelSpacing[1] apart), axis 1
  along the rows (its column direction, PixelSpacing[0] apart), axis 2 from the first slice to the last: the
  affine is DICOM's patient LPS geometry turned to NIfTI's RAS (x and y negated), as nibabel and dicom2nifti do.

Every check runs on the headers and pixels before any inference; each failure is one :class:`DataError` line
naming the file (or folder) and the problem.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from heart_sr_tf.data.dicom_component import image_component
from heart_sr_tf.data.dicom_geometry import ORIENTATION_TOLERANCE, POSITION_TOLERANCE, SPACING_TOLERANCE
from heart_sr_tf.data.dicom_grey import shown_inverted
from heart_sr_tf.data.dicom_high_bits import bits_above
from heart_sr_tf.data.dicom_map import quantitative_map
from heart_sr_tf.data.dicom_padding import padding_pixels
from heart_sr_tf.data.dicom_stacks import (
    joined_units,
    parse_pick,
    picks_series,
    series_number,
    series_numbers_text,
    series_shape,
    stack_description,
    stack_units,
)
from heart_sr_tf.data.dicom_zip import in_archive, is_zip_export, unpacked
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.errors import DataError, NoCine

NOT_A_STACK = "not one stack of parallel slices"  # a series whose images lie in several planes (a localiser)
LOCALISER_ANGLE = 30.0  # degrees between two images' planes from which a series is a localiser, not a tilted stack


@dataclass
class DicomSeries:
    """One cine series: ``data[x, y, slice, phase]``, its RAS ``affine``, and the header of every image
    (``headers[slice][phase]``, pixel data removed) for writing a derived series."""

    path: Path
    data: np.ndarray
    affine: np.ndarray
    zooms: tuple[float, ...]
    headers: list[list]
    depth_stated: bool = True  # False: one slice stating neither SpacingBetweenSlices nor SliceThickness (1 mm taken)
    left_out: str = ""  # this tool's derived series found beside it, not read (``series 1007 '...' (6 images)``)
    inverted_about: float | None = None  # MONOCHROME1 (low values shown bright): ``data`` holds top - value, as shown
    bits_above: tuple[str, int, int] | None = None  # pixels with bits set above BitsStored: (first file, count, bits)
    padding: np.ndarray | None = None  # ``data``'s voxels its headers declare padding (PixelPaddingValue), if any

    @property
    def series_numbers(self) -> str:
        """Its SeriesNumber (``7``), or those of the series a stack joins (``5-16``)."""
        return series_numbers_text([series_number(ds) for ds in self._series_firsts()])

    @property
    def description(self) -> str:
        firsts = self._series_firsts()
        joined = f" (a stack of {len(firsts)} series, one per slice)" if len(firsts) > 1 else ""
        text = stack_description([ds.get("SeriesDescription", "") for ds in firsts])
        return f"series {self.series_numbers} {text!r}{joined}"

    def _series_firsts(self) -> list:
        """The first header of each series it was read from (several: a stack joined from per-slice series)."""
        return list({str(ds.get("SeriesInstanceUID", "")): ds for ds in (s[0] for s in self.headers)}.values())


def is_dicom(path: Path) -> bool:
    """A folder (a series is read from folders), a file with DICOM's ``DICM`` preamble marker, or a file that
    starts like a dataset written without the preamble (:func:`_raw_dataset`)."""
    path = Path(path)
    if path.is_dir():
        return True
    start = _start(path)
    return _has_marker(start) or _raw_dataset(start)


def _start(path: Path) -> bytes:
    """A file's first 132 bytes (the preamble and the ``DICM`` marker), or none when it cannot be read."""
    try:
        with open(path, "rb") as handle:
            return handle.read(132)
    except OSError:
        return b""


def _has_marker(start: bytes) -> bool:
    """A file starting with ``start`` carries DICOM's ``DICM`` marker after the 128-byte preamble."""
    return start[128:132] == b"DICM"


# A DICOM file without the Part 10 preamble and file meta (a "raw" dataset, as some older scanners, archives and
# tools write) begins with its first element's tag: group 0x0002 (file meta without the preamble) or 0x0008
# (identification, the first group of any image), little endian, with an even element number.
RAW_GROUPS = (b"\x02\x00", b"\x08\x00")


def _raw_dataset(start: bytes) -> bool:
    """Whether a file's first bytes ``start`` are those of a DICOM dataset written without the preamble."""
    return len(start) >= 8 and start[:2] in RAW_GROUPS and start[2] % 2 == 0 and start[128:132] != b"DICM"


def _dcmread(file: Path, stop_before_pixels: bool = False):
    """``pydicom.dcmread``, also of a raw dataset (no preamble, no file meta): pydicom reads it when forced, and its
    transfer syntax is then the encoding pydicom found (implicit or explicit VR), so its pixel data decodes."""
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian

    try:
        return pydicom.dcmread(file, stop_before_pixels=stop_before_pixels)
    except InvalidDicomError:
        if not _raw_dataset(_start(file)):
            raise
    ds = pydicom.dcmread(file, stop_before_pixels=stop_before_pixels, force=True)
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = ds.original_encoding
        ds.file_meta.TransferSyntaxUID = (
            ImplicitVRLittleEndian if implicit else ExplicitVRLittleEndian if little else ExplicitVRBigEndian
        )
    return ds


@dataclass(frozen=True)
class SeriesEntry:
    """One image series among a folder's files, as :func:`folder_series` lists it (headers only); or several
    series joined into one stack, one per slice (:mod:`~heart_sr_tf.data.dicom_stacks`)."""

    uids: tuple[str, ...]  # SeriesInstanceUID (several: a stack, in slice order)
    numbers: tuple[int | None, ...]  # SeriesNumber of each
    description: str  # SeriesDescription (the first series')
    patient: str  # PatientID
    files: int
    shape: tuple | None = field(default=None, compare=False, repr=False)  # a lone series' (``series_shape``)

    @property
    def uid(self) -> str:
        """What ``--series`` (and a manifest's series column) takes to read this entry: its UID, or its UIDs."""
        return ",".join(self.uids)

    @property
    def number(self) -> int | None:
        return self.numbers[0]

    @property
    def numbers_text(self) -> str:
        return series_numbers_text(list(self.numbers))


def read_series(path: Path, series: int | str | None = None) -> DicomSeries:
    """The cine series in folder (or single file) ``path``; ``series`` picks one: a SeriesNumber (an int, or a
    string of digits) or a SeriesInstanceUID (which stays unique where numbers repeat: a folder of several
    patients' studies); several, separated by commas, or a range of numbers (``5-16``), are read as one stack. A
    folder whose series are all one stack, one series per slice, is read as that stack. A zip archive of DICOM
    files is read as the folder it unpacks into."""
    path = Path(path)
    if is_zip_export(path):
        with unpacked(path) as folder:
            return replace(read_series(folder, series), path=path)
    images = _image_headers(path)
    groups: dict[str, list] = {}
    for file, ds in images:
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append((file, ds))
    if series is not None:
        picks = parse_pick(series)
        for pick in picks:
            found = sum(picks_series(pick, uid, g[0][1]) for uid, g in groups.items())
            what = pick[1] if len(pick) == 2 else f"{pick[1]}-{pick[2]}"
            if not found:
                raise DataError(path, f"--series {series}: no series {what} here; {_listing(groups)}")
            if found > 1 and pick[0] == "number":
                raise DataError(
                    path, f"--series {series}: {found} series numbered {what} here (several studies' series); pick "
                    f"by SeriesInstanceUID: {', '.join(u for u, g in groups.items() if picks_series(pick, u, g[0][1]))}"
                )  # fmt: skip
        groups = {uid: g for uid, g in groups.items() if any(picks_series(p, uid, g[0][1]) for p in picks)}
    left_out = ""
    if series is None and len(groups) > 1:  # this tool's own results beside the scan (``upscale IN IN/sr/``)
        ours = {uid: g for uid, g in groups.items() if made_by_heart_sr(g[0][1]) is not None}
        if ours and len(ours) < len(groups):
            left_out = _listing(ours)
            groups = {uid: g for uid, g in groups.items() if uid not in ours}
    if series is None and len(groups) > 1:
        units = stack_units({uid: [ds for _, ds in g] for uid, g in groups.items()})
        if len(units) > 1:
            raise DataError(
                path,
                f"{len(units)} image series here; pick one with --series N (or a manifest's series column; given "
                f"this folder, cohort, prepare --scans and evaluate --scans take each as a scan): {_listing(groups)}",
            )
    return replace(_assemble(path, [image for g in groups.values() for image in g]), left_out=left_out)


def made_by_heart_sr(ds) -> str | None:
    """What this tool wrote into the DerivationDescription of a derived series' header ``ds``, else None."""
    text = str(ds.get("DerivationDescription", ""))
    return text if text.startswith("heart-sr") else None


def latest_stack(path: Path) -> tuple[str | None, list[str]]:
    """``--repeated-slices latest`` for one scan: when the series under ``path`` (a folder or a zip archive) are one
    stack once each slice acquired more than once is taken from its latest series, the ``--series`` that reads that
    stack and the lines naming the series left out; else ``(None, [])`` (read as the folder is)."""
    path = Path(path)
    if is_zip_export(path):
        with unpacked(path) as folder:
            found, lines = latest_stack(folder)
            return found, [in_archive(line, folder) for line in lines]
    groups: dict[str, list] = {}
    for _, ds in _image_headers(path):
        groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    lines: list[str] = []
    units = stack_units(groups, lines, latest=True)
    if len(units) == 1 and len(units[0]) < len(groups):  # one stack, and series left out of it
        return ",".join(units[0]), lines
    return None, []


def folder_series(folder: Path, notes: list[str] | None = None, latest: bool = False) -> list[SeriesEntry]:
    """The image series among the files directly in ``folder`` (not below it), in SeriesNumber order (then
    PatientID), from their headers alone (no pixel data is read); series that are one stack, one per slice, are
    one entry (``notes`` says why parallel one-slice series there are not; with ``latest``, a slice acquired
    twice is taken from its later series and the earlier is no entry: ``notes`` names it). Non-image objects (a
    DICOMDIR, reports) are no series. A zip archive's series are those of all its files."""
    if is_zip_export(folder):
        with unpacked(folder) as inside:
            lines: list[str] = []
            found = _listed_series(sorted(p for p in inside.rglob("*") if p.is_file()), lines, latest)
        if notes is not None:
            notes += [f"{folder}: {in_archive(line, inside)}" for line in lines]
        return found
    apart: list[str] = []
    found = _listed_series(
        sorted(p for p in Path(folder).iterdir() if p.is_file() and not p.name.startswith(".")), apart, latest
    )
    if notes is not None:
        notes += [f"{folder}: {line}" for line in apart]
    return found


def _listed_series(files: list[Path], apart: list[str], latest: bool = False) -> list[SeriesEntry]:
    """The image series among ``files`` as :func:`folder_series` lists them; why parallel one-slice series do not
    join, in ``apart``."""
    series: dict[str, list] = {}
    for _, ds in _headers(files)[0]:
        series.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    shapes = {uid: series_shape(headers) for uid, headers in series.items()}
    entries = [
        SeriesEntry(
            tuple(unit),
            tuple(series_number(series[uid][0]) for uid in unit),
            stack_description([series[uid][0].get("SeriesDescription", "") for uid in unit]),
            str(series[unit[0]][0].get("PatientID", "") or "").strip(),
            sum(len(series[uid]) for uid in unit),
            shapes[unit[0]] if len(unit) == 1 else None,
        )
        for unit in joined_units(
            shapes, {uid: series_number(headers[0]) for uid, headers in series.items()}, apart, latest
        )
    ]
    return sorted(entries, key=lambda e: (e.number is None, e.number or 0, e.patient, e.description, e.uid))


def _headers(files: list[Path]) -> tuple[list, list, list]:
    """``(file, header)`` of each DICOM image among ``files`` (pixel data not read), what the other DICOM objects
    are, and ``(file, why)`` of each damaged one: it carries DICOM's ``DICM`` marker but its header cannot be read,
    or it is an image whose header ends before its size (cut short in a copy, say: pydicom reads what is there
    and stops). Other files that are not DICOM are left out (a raw dataset's first bytes are too
    weak a sign to call a file that fails to read a damaged DICOM one)."""
    from pydicom.errors import InvalidDicomError

    images, others, damaged = [], [], []
    for file in files:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                ds = _dcmread(file, stop_before_pixels=True)
        except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError) as exc:
            if _has_marker(_start(file)):
                damaged.append((file, f"its header cannot be read ({type(exc).__name__}: {exc})"))
            elif _empty_image_file(file):
                damaged.append((file, "an empty file where DICOM images lie (a copy that never finished?)"))
            continue
        if _is_image(ds):
            images.append((file, ds))
        elif (storage := _stored_image_class(ds)) is not None:  # (pydicom reads up to where the file ends)
            damaged.append((file, f"its file meta says {storage}, but it holds no Rows and Columns (cut short?)"))
        else:
            others.append(_kind(ds))
    return images, others, damaged


def _image_headers(path: Path) -> list:
    """``(file, header)`` of every DICOM image under ``path`` (each frame of an enhanced multi-frame file as an
    image of its own), pixel data not read yet."""
    if not path.exists():
        raise DataError(path, "no such file or folder")
    if path.is_file() and path.suffix.lower() == ".zip":  # (one that is a zip archive is read unpacked)
        raise DataError(path, "unreadable zip archive (no archive directory: cut short or damaged?)")
    under = path.parent if path.is_file() and _is_dicomdir(path) else path  # a DICOMDIR: the media it indexes
    files = (
        sorted(p for p in under.rglob("*") if p.is_file() and not p.name.startswith(".")) if under.is_dir() else [path]
    )
    found, others, damaged = _headers(files)
    if damaged:  # perhaps an image of the series: read without it, a slice or phase would be missing
        (file, why), more = damaged[0], f" (and {len(damaged) - 1} more)" if len(damaged) > 1 else ""
        raise DataError(
            file, f"a damaged DICOM file{more}: {why}; replace it from the scanner's "
            "export, or remove it if it is no image of the series"
        )  # fmt: skip
    images = []
    for file, ds in found:
        images += _frames_of(file, ds) if int(ds.get("NumberOfFrames") or 1) > 1 else [(file, ds)]
    if not images:
        found = f" (only: {', '.join(sorted(set(others)))})" if others else ""
        what = "is not a DICOM image" if path.is_file() else "holds no DICOM image"
        scans = [p.name for p in files if nifti_suffix(p) is not None] if path.is_dir() else []
        if scans:  # a folder of NIfTI scans given where one scan belongs
            found = f" but {len(scans)} NIfTI file(s) ({', '.join(scans[:3])}{', ...' if len(scans) > 3 else ''})"
            raise DataError(path, f"{what}{found}: a NIfTI scan is given as its file (a folder of them is cohort's)")
        raise DataError(path, f"{what}{found}; give the folder of a cine series")
    return images


def _is_dicomdir(path: Path) -> bool:
    """``path`` is a DICOMDIR, the index of a CD's or an export's files (which lie in the folders beside it)."""
    from pydicom.errors import InvalidDicomError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return "DirectoryRecordSequence" in _dcmread(path, stop_before_pixels=True)
    except (InvalidDicomError, OSError, EOFError, ValueError, TypeError, KeyError, AttributeError):
        return False


NOT_IMAGES = {  # objects with rows and columns that are no image to upscale
    "1.2.840.10008.5.1.4.1.1.66.4",  # Segmentation Storage (a DICOM SEG, ``--measure``'s say): labels
    "1.2.840.10008.5.1.4.1.1.30",  # Parametric Map Storage: quantitative values (T1, ECV...), floating point
}


def _is_image(ds) -> bool:
    """``stop_before_pixels`` leaves PixelData unread: an image is a dataset with Rows and Columns (and not a
    segmentation's labels or a parametric map's values)."""
    image = "Rows" in ds and "Columns" in ds and "DirectoryRecordSequence" not in ds
    return image and str(ds.get("SOPClassUID", "")) not in NOT_IMAGES


def _empty_image_file(path: Path) -> bool:
    """An empty file named as DICOM images are (no suffix, ``.dcm`` or ``.ima``, as scanners export them)."""
    try:
        return path.stat().st_size == 0 and path.suffix.lower() in ("", ".dcm", ".ima")
    except OSError:
        return False


def _stored_image_class(ds) -> str | None:
    """The name of the image storage class a dataset's file meta declares (MediaStorageSOPClassUID: "MR Image
    Storage"), else None: an object that is no image (_is_image) yet says it stores one is damaged."""
    uid = ds.file_meta.get("MediaStorageSOPClassUID") if hasattr(ds, "file_meta") else None
    name = getattr(uid, "name", "") or ""
    return name if "Image Storage" in name and str(uid) not in NOT_IMAGES else None


def _kind(ds) -> str:
    if "DirectoryRecordSequence" in ds:
        return "a DICOMDIR"
    sop = ds.get("SOPClassUID")
    return f"a {getattr(sop, 'name', None) or 'non-image object'}"


def _listing(groups: dict[str, list]) -> str:
    """The image series of ``groups`` (SeriesInstanceUID -> its ``(file, header)``s) for an error line; series
    that are one stack, one per slice, as one item with the ``--series`` that reads it."""
    headers = {uid: [ds for _, ds in g] for uid, g in groups.items()}
    parts, notes = [], []
    for unit in stack_units(headers, notes):
        description = stack_description([headers[uid][0].get("SeriesDescription", "") for uid in unit])
        description = description or "no description"
        count = sum(len(headers[uid]) for uid in unit)
        numbers = series_numbers_text([series_number(headers[uid][0]) for uid in unit])
        stack = f"a stack of {len(unit)} series, one per slice, --series {numbers}; " if len(unit) > 1 else ""
        parts.append(f"series {numbers} {description!r} ({stack}{count} images)")
    return "; ".join(parts + notes)


def _check_signal(members: list) -> None:
    """Refuses (:class:`NoCine`) a series any of whose images holds no magnitude signal: the phase, real or
    imaginary part of it (:mod:`~heart_sr_tf.data.dicom_component`: a flow study's velocities), or a quantitative
    map stored as an MR image (:mod:`~heart_sr_tf.data.dicom_map`: a T1 or ECV map's values are measurements)."""
    for kind_of, what, remedy in (
        (
            image_component,
            lambda part: f"{'an' if part == 'IMAGINARY' else 'a'} {part.lower()} image",
            "the models super-resolve magnitude cine, and its values would come out changed; give the magnitude series",
        ),
        (
            quantitative_map,
            lambda quantity: f"{'an' if quantity[0] in 'AEFHILMNORSX' else 'a'} {quantity} map",
            "its values are measured quantities, not signal, and super-resolution trained on cine would change them; "
            "give the cine series",
        ),
    ):  # fmt: skip  (a map's quantity is read letter by letter: "an ECV map", "an R2 map", "a T1 map")
        found = [(file, kind) for file, ds in members if (kind := kind_of(ds)) is not None]
        if found:
            file, (name, where) = found[0]
            share = "" if len(found) == len(members) else f" ({len(found)} of its {len(members)} images)"
            if share and kind_of is image_component:  # the rest are magnitude: both in one series, as flow studies
                remedy = (  # (Philips) are written; their magnitude images are no cine either
                    "the rest are magnitude images, and a series holding both is a flow (phase-contrast) study, not "
                    "a cine the models super-resolve; give the cine series"
                )
            raise NoCine(file, f"{what(name)} ({where}){share}: {remedy}")


def _vector(file: Path, ds, keyword: str, length: int) -> np.ndarray:
    value = ds.get(keyword)
    try:
        vector = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        vector = np.zeros(0)
    if vector.shape != (length,) or not np.all(np.isfinite(vector)):
        raise DataError(file, f"no usable {keyword} ({value!r}): the geometry cannot be known")
    return vector


def _shown(vector: np.ndarray) -> str:
    """A header's numbers as the header holds them (``[1, 0, 0, 1, 0, 0]``), for an error line."""
    return f"[{', '.join(f'{v:g}' for v in vector)}]"


def _assemble(path: Path, members: list) -> DicomSeries:
    _check_signal(members)
    inverted = shown_inverted(members)
    file0, ds0 = members[0]
    orientation = _vector(file0, ds0, "ImageOrientationPatient", 6)
    spacing = _vector(file0, ds0, "PixelSpacing", 2)
    if np.any(spacing <= 0):
        raise DataError(file0, f"PixelSpacing {_shown(spacing)} is not positive")
    row, col = orientation[:3], orientation[3:]
    if abs(np.linalg.norm(row) - 1) > 1e-2 or abs(np.linalg.norm(col) - 1) > 1e-2 or abs(row @ col) > 1e-2:
        raise DataError(file0, f"ImageOrientationPatient {_shown(orientation)} is not two orthogonal unit vectors")
    normal = np.cross(row, col)
    size = (int(ds0.Rows), int(ds0.Columns))
    positions: dict[float, list] = {}
    for file, ds in members:
        if (int(ds.get("Rows", 0)), int(ds.get("Columns", 0))) != size:
            raise DataError(
                file, f"{ds.get('Rows')}x{ds.get('Columns')} pixels, but {file0.name} has {size[0]}x{size[1]}: "
                "mixed image sizes in one series"
            )  # fmt: skip
        other = _vector(file, ds, "ImageOrientationPatient", 6)
        if np.abs(other - orientation).max() > ORIENTATION_TOLERANCE:
            cosine = abs(float(np.cross(other[:3], other[3:]) @ normal)) / max(np.linalg.norm(normal), 1e-9)
            angle = float(np.degrees(np.arccos(np.clip(cosine, 0.0, 1.0))))
            if angle >= LOCALISER_ANGLE:
                raise NoCine(file, f"its plane lies {angle:.0f} degrees from {file0.name}'s: {NOT_A_STACK}, "
                             "a localiser's planes")  # fmt: skip
            raise DataError(file, f"its orientation differs from {file0.name}'s: {NOT_A_STACK}")
        if np.abs(_vector(file, ds, "PixelSpacing", 2) - spacing).max() > 1e-4:
            raise DataError(file, f"its PixelSpacing differs from {file0.name}'s")
        position = _vector(file, ds, "ImagePositionPatient", 3)
        key = next((k for k in positions if abs(k - position @ normal) < POSITION_TOLERANCE), position @ normal)
        positions.setdefault(key, []).append((file, ds, position))
    keys = sorted(positions)
    triggers = [_text(ds.get("TriggerTime")) for _, ds in members]
    timed = all(triggers) and (len(set(triggers)) > 1 or len(members) == len(keys))  # (some images without one:
    # the times cannot order the phases, whose place the missing ones would lose; the InstanceNumber does)
    slices = [_phases(positions[k], timed) for k in keys]
    counts = {len(s) for s in slices}
    if len(counts) > 1:
        detail = ", ".join(f"{len(s)} at {k:.2f} mm" for k, s in zip(keys, slices, strict=True))
        raise DataError(path, f"the slices hold different numbers of phases ({detail}): an incomplete series")
    step, slice_spacing, depth_stated = _slice_step(path, keys, slices, ds0)
    _check_in_line(slices, step, float(spacing.min()))
    frames: dict = {}  # an enhanced file's decoded frames, read once
    above: dict = {}  # file -> its pixels with bits set above BitsStored (masked off, as the standard says)
    data, padding = None, None  # (filled image by image: no second copy of the series is held)
    for k, images in enumerate(slices):
        for t, (f, ds, _) in enumerate(images):
            values, mask = _pixels(f, ds, frames, above)
            if data is None:
                data = np.empty(values.shape + (len(slices), len(images)), np.float32)
            data[:, :, k, t] = values
            if mask is not None:  # pixels its header declares padding (PixelPaddingValue)
                padding = np.zeros(data.shape, bool) if padding is None else padding
                padding[:, :, k, t] = mask
    high = (next(iter(above)).name, sum(above.values()), int(ds0.BitsStored)) if above else None
    top = None
    if inverted:  # as it is shown: what the models and the segmenter were trained on
        top = float(data.min()) + float(data.max())
        data = np.subtract(np.float32(top), data, out=data)
    affine = np.eye(4)
    affine[:3, 0] = row * spacing[1]
    affine[:3, 1] = col * spacing[0]
    affine[:3, 2] = step
    affine[:3, 3] = slices[0][0][2]
    affine = np.diag([-1.0, -1.0, 1.0, 1.0]) @ affine  # LPS -> RAS
    zooms = (float(spacing[1]), float(spacing[0]), slice_spacing, _phase_interval(slices[0]))
    headers = [[ds for _, ds, _ in s] for s in slices]
    return DicomSeries(
        path, data, affine, zooms, headers, depth_stated, inverted_about=top, bits_above=high, padding=padding
    )


SHIFT_TOLERANCE = 0.25  # pixels: how far an image may lie from where the stack's one affine puts it


def _check_in_line(slices: list, step: np.ndarray, pixel: float) -> None:
    """Refuses a stack one affine cannot hold: an image lying, in its plane, more than a quarter pixel from where
    the first slice and the step between slices put it (slices shifted against each other, or a slice's phases
    at different places)."""
    origin = slices[0][0][2]
    for index, images in enumerate(slices):
        for file, _, position in images:
            off = float(np.linalg.norm(position - (origin + index * step)))
            if off > SHIFT_TOLERANCE * pixel:
                raise DataError(
                    file, f"it lies {off:.2f} mm from where the stack's slices put it (slice {index + 1}, whose "
                    "position runs on from the first slice's by the slice step): images shifted against each other "
                    "in their plane, which one volume's geometry cannot hold"
                )  # fmt: skip


def _phases(images: list, timed: bool = True) -> list:
    """The images at one position in phase order (TriggerTime, else InstanceNumber); duplicates refused. Not
    ``timed`` (every image of the series has the same TriggerTime, as an ungated real-time cine's 0, or some have
    none), the InstanceNumber alone orders them, and images without one cannot be ordered: refused."""
    if not timed and len(images) > 1:
        unnumbered = [file for file, ds, _ in images if _text(ds.get("InstanceNumber")) == ""]
        if unnumbered:
            raise DataError(
                unnumbered[0], "nothing orders the phases at its slice position: no InstanceNumber, and no TriggerTime "
                "on every image of the series"
            )  # fmt: skip

    def key(item):
        _, ds, _ = item
        trigger = ds.get("TriggerTime") if timed else None
        number = ds.get("InstanceNumber")
        return (float(trigger) if trigger not in (None, "") else np.inf, int(number) if number not in (None, "") else 0)

    ordered = sorted(images, key=key)
    keys = [key(item) for item in ordered]
    for (file, _, _), previous, current in zip(ordered[1:], keys, keys[1:], strict=False):
        if previous[0] == current[0] and (np.isfinite(current[0]) or previous[1] == current[1]):
            what = "trigger time" if np.isfinite(current[0]) else "instance number"
            raise DataError(file, f"a duplicate image: same slice position and {what} as another file")
    return ordered


def _text(value) -> str:
    """A header value as text, empty when absent or empty (a value of 0 is "0", not absent)."""
    return "" if value is None else str(value).strip()


def _positive_mm(value) -> float | None:
    """``|value|`` in mm when it is a finite non-zero number, else None."""
    try:
        size = abs(float(value))
    except (TypeError, ValueError):
        return None
    return size if np.isfinite(size) and size > 0 else None


def _slice_step(path: Path, keys: list, slices: list, ds0) -> tuple[np.ndarray, float, bool]:
    """The vector from one slice to the next, the spacing, and whether the series states it (one slice may not:
    1 mm is then taken); gaps and uneven spacing are refused."""
    if len(keys) == 1:  # one slice: its slab's depth (a legacy negative spacing gives the direction, not the depth)
        depths = (_positive_mm(ds0.get("SpacingBetweenSlices")), _positive_mm(ds0.get("SliceThickness")))
        thickness = next((size for size in depths if size), None)
        orientation = np.array([float(v) for v in ds0.ImageOrientationPatient])
        normal = np.cross(orientation[:3], orientation[3:])
        return normal * (thickness or 1.0), thickness or 1.0, thickness is not None
    gaps = np.diff(keys)
    median = float(np.median(gaps))
    bad = np.flatnonzero(np.abs(gaps - median) > SPACING_TOLERANCE * median)
    if bad.size:
        i = int(bad[0])
        raise DataError(
            path, f"uneven slice spacing: {gaps[i]:.3f} mm between the slices at {keys[i]:.2f} and "
            f"{keys[i + 1]:.2f} mm, where the others are {median:.3f} mm apart (a missing or extra slice)"
        )  # fmt: skip
    first, last = slices[0][0][2], slices[-1][0][2]
    return (last - first) / (len(keys) - 1), float(np.linalg.norm(last - first) / (len(keys) - 1)), True


def _phase_interval(phases: list) -> float:
    times = [float(ds.get("TriggerTime")) for _, ds, _ in phases if ds.get("TriggerTime") not in (None, "")]
    step = float(np.median(np.diff(times))) / 1000.0 if len(times) == len(phases) > 1 else 0.0
    return step if step > 0 else 1.0  # (trigger times all alike tell no interval)


def _pixels(file: Path, header, frames: dict, above: dict) -> tuple[np.ndarray, np.ndarray | None]:
    """One image's pixels ``[x, y]`` (columns first), rescaled to float32 with ``header``'s slope and intercept,
    and where they are declared padding (None: nowhere); a frame of an enhanced file is taken from its decoded
    frames (``frames`` caches them by file). ``above`` counts, by file, the pixels with bits set above
    BitsStored."""
    frame = getattr(header, "heart_sr_frame", None)
    if frame is None:
        pixels = _decoded(file, above=above)
    else:
        if file not in frames:
            frames.clear()  # one enhanced file's frames at a time
            frames[file] = _decoded(file, int(header.heart_sr_frames), above)
        pixels = frames[file][frame]
    if pixels.ndim != 2:
        raise DataError(file, f"pixel data of shape {pixels.shape}: a cine image is one channel, one frame")
    slope, intercept = rescale(file, header)
    padding = padding_pixels(header, pixels)
    values = (pixels.astype(np.float32) * np.float32(slope) + np.float32(intercept)).T
    return values, None if padding is None else padding.T


def rescale(file, header) -> tuple[float, float]:
    """RescaleSlope and RescaleIntercept (1 and 0 when absent or empty). A slope of 0 would make every pixel the
    intercept, and one that is not finite no value at all: an error naming the file, not a guess."""
    values = []
    for name, default in (("RescaleSlope", 1.0), ("RescaleIntercept", 0.0)):
        value = header.get(name)
        try:
            number = default if value is None or str(value).strip() == "" else float(value)
        except (TypeError, ValueError):
            number = float("nan")
        if not np.isfinite(number) or (name == "RescaleSlope" and number == 0):
            raise DataError(file, f"its {name} is {str(value)!r}: the pixels' values cannot be known from it")
        values.append(number)
    return values[0], values[1]


def _decoded(file: Path, count: int = 1, above: dict | None = None) -> np.ndarray:
    """The decoded pixel data of ``file``: ``[rows, columns]``, or ``[count, rows, columns]`` for ``count`` frames;
    compressed data needs its decoder. ``above`` gets the count of its pixels with bits set above BitsStored, when
    there are any (pydicom masks them off)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = _dcmread(file)
            pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        syntax = getattr(ds.file_meta.get("TransferSyntaxUID"), "name", "its transfer syntax")
        if isinstance(exc, NotImplementedError):  # no decoder exists for it (a video transfer syntax)
            raise DataError(file, f"pixel data in {syntax}, which no DICOM decoder here reads") from None
        if "plugins are missing dependencies" in str(exc):  # its decoders need a package not installed
            needs = "; ".join(line.strip() for line in str(exc).splitlines()[1:] if line.strip())
            raise DataError(
                file, f"compressed pixel data ({syntax}) and no decoder installed for it (pydicom's plugins: {needs})"
            ) from None
        raise DataError(file, f"compressed pixel data ({syntax}) that cannot be decoded (damaged?)") from None
    except (ValueError, AttributeError, OSError, EOFError, KeyError) as exc:
        raise DataError(file, f"unreadable pixel data ({type(exc).__name__}: {str(exc)[:120]})") from None
    expected = (int(ds.Rows), int(ds.Columns)) if count == 1 else (count, int(ds.Rows), int(ds.Columns))
    if int(ds.get("SamplesPerPixel", 1)) != 1 or pixels.shape != expected:
        raise DataError(file, f"pixel data of shape {pixels.shape}: a cine image is one channel, one frame")
    if above is not None and (n := bits_above(ds, count)):
        above[file] = n
    return pixels


# An enhanced multi-frame image keeps each frame's geometry, timing and rescale in functional groups, per frame
# or shared by all: classic keyword -> (functional group sequence, its attribute).
FUNCTIONAL_GROUPS = {
    "PixelSpacing": ("PixelMeasuresSequence", "PixelSpacing"),
    "SliceThickness": ("PixelMeasuresSequence", "SliceThickness"),
    "SpacingBetweenSlices": ("PixelMeasuresSequence", "SpacingBetweenSlices"),
    "ImageOrientationPatient": ("PlaneOrientationSequence", "ImageOrientationPatient"),
    "ImagePositionPatient": ("PlanePositionSequence", "ImagePositionPatient"),
    "RescaleSlope": ("PixelValueTransformationSequence", "RescaleSlope"),
    "RescaleIntercept": ("PixelValueTransformationSequence", "RescaleIntercept"),
    "TriggerTime": ("CardiacSynchronizationSequence", "NominalCardiacTriggerDelayTime"),
}
CLASSIC_SOP = {  # an enhanced SOP class -> the classic one whose single-frame images a derived series is written as
    "1.2.840.10008.5.1.4.1.1.4.1": "1.2.840.10008.5.1.4.1.1.4",  # Enhanced MR -> MR Image Storage
    "1.2.840.10008.5.1.4.1.1.4.4": "1.2.840.10008.5.1.4.1.1.4",  # Legacy Converted Enhanced MR -> MR
    "1.2.840.10008.5.1.4.1.1.2.1": "1.2.840.10008.5.1.4.1.1.2",  # Enhanced CT -> CT Image Storage
}


def _frames_of(file: Path, ds) -> list:
    """An enhanced multi-frame image as ``(file, header)`` per frame: each header a classic single-frame one
    (the file's own attributes, with the frame's geometry, trigger time and rescale from its functional groups),
    so the frames are assembled and written back exactly as classic images are."""
    import copy

    count = int(ds.NumberOfFrames)
    per_frame = list(ds.get("PerFrameFunctionalGroupsSequence", []))
    shared = ds.get("SharedFunctionalGroupsSequence", [None])[0]
    if len(per_frame) != count:
        raise DataError(file, f"{count} frames but {len(per_frame)} per-frame functional groups: a damaged file")
    base = copy.deepcopy(ds)
    for keyword in ("PerFrameFunctionalGroupsSequence", "SharedFunctionalGroupsSequence", "NumberOfFrames"):
        if keyword in base:
            delattr(base, keyword)
    sop = str(ds.get("SOPClassUID", ""))
    if sop in CLASSIC_SOP:
        base.SOPClassUID = CLASSIC_SOP[sop]
        if getattr(base, "file_meta", None) is not None:
            base.file_meta.MediaStorageSOPClassUID = CLASSIC_SOP[sop]
    out = []
    for index, groups in enumerate(per_frame):
        frame = copy.deepcopy(base)
        for keyword, (sequence, attribute) in FUNCTIONAL_GROUPS.items():
            for place in (groups, shared):
                items = place.get(sequence) if place is not None else None
                if items and attribute in items[0]:
                    setattr(frame, keyword, items[0][attribute].value)
                    break
        frame.InstanceNumber = _temporal_index(groups) or index + 1  # what orders the phases without trigger times
        kinds = [place.get("MRImageFrameTypeSequence") for place in (groups, shared) if place is not None]
        kind = next((items[0].get("ComplexImageComponent") for items in kinds if items), None)
        frame.heart_sr_component = kind  # (the frame's part of the signal: magnitude, phase...)
        frame.heart_sr_frame, frame.heart_sr_frames = index, count
        frame.heart_sr_sop_class = sop  # (the file's own class, which a derived image references)
        out.append((file, frame))
    return out


def _temporal_index(groups) -> int | None:
    """A frame's TemporalPositionIndex (Frame Content), its place in time among the frames at its position; None
    where it has none (the frames' order in the file then stands in: most files keep them in time order)."""
    content = groups.get("FrameContentSequence") if groups is not None else None
    value = content[0].get("TemporalPositionIndex") if content else None
    try:
        return int(value) if value not in (None, "") and int(value) > 0 else None
    except (TypeError, ValueError):
        return None


def joined_entries(
    entries: list[SeriesEntry], notes: list[str] | None = None, latest: bool = False
) -> tuple[list[SeriesEntry], set[str]]:
    """Lone series listed apart (each in a folder of its own, as many exports keep a series) joined where they are
    one stack, one series per slice: the stack's entry, in slice order (series that join nothing are not
    returned); and the UIDs of the series left out of every scan, each a slice acquired again later in a series
    that a stack takes (``notes`` and ``latest``: as :func:`~heart_sr_tf.data.dicom_stacks.joined_units`)."""
    lone = {e.uid: e for e in entries if len(e.uids) == 1 and e.shape is not None}
    units = joined_units(
        {uid: e.shape for uid, e in lone.items()}, {uid: e.number for uid, e in lone.items()}, notes, latest
    )
    left_out = set(lone) - {uid for unit in units for uid in unit}
    stacks = [
        SeriesEntry(
            tuple(unit),
            tuple(lone[uid].number for uid in unit),
            stack_description([lone[uid].description for uid in unit]),
            lone[unit[0]].patient,
            sum(lone[uid].files for uid in unit),
        )
        for unit in units
        if len(unit) > 1
    ]
    return stacks, left_out
