"""Which scans a cohort holds and where each result goes: a folder, a glob, or a CSV manifest."""

from __future__ import annotations

import csv
import difflib
import glob
import io
import os
import re
from dataclasses import dataclass, field, replace
from functools import partial
from pathlib import Path

from heart_sr_tf.cardiac_metrics import given_body
from heart_sr_tf.cohort.series_filter import SeriesFilter
from heart_sr_tf.data.dicom import SeriesEntry, folder_series, is_dicom, joined_entries
from heart_sr_tf.data.dicom_zip import is_zip_export
from heart_sr_tf.data.file_kind import check_scan_path
from heart_sr_tf.data.file_state import digest_files, tree_state
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.data.scan import ScanSource, sidecar, sidecar_description
from heart_sr_tf.data.threads import ordered_map
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.progress import progress_bar

LIST_BAR = 20  # DICOM folders from which listing their series shows a bar (a header read per file)


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    patient: str | None = None  # a manifest's ``patient`` column; or the PatientID of a series in a folder of several
    # patients' series
    series: str | None = None  # which series of a folder holding several: its SeriesInstanceUID (a manifest's
    # ``series`` column may give a SeriesNumber)
    label: str | None = None  # that series' name in tables and outputs (``series-7_cine_sax``)
    dicom: bool = False  # the output is a derived DICOM series' folder (DICOM input), not a NIfTI file
    description: str | None = None  # a listed DICOM series' SeriesDescription
    patient_id: str | None = None  # a listed DICOM series' PatientID
    state: str = field(default="", compare=False)  # its input's files as they are (``data.file_state``): a result
    # is reused only while they are unchanged
    body: tuple[float, float] | None = None  # a manifest's patient height (m) and weight (kg), for ``--measure``
    thickness: float | None = None  # a manifest's slice thickness (mm), for ``--through-plane``: before the header's

    @property
    def target(self) -> str:
        """The output as ``upscale`` takes it: a DICOM series' folder ends in the path separator."""
        return str(self.output) + os.sep if self.dicom else str(self.output)

    @property
    def source(self) -> ScanSource:
        return ScanSource(self.input, self.series, self.label)

    @property
    def key(self) -> str:
        """The scan's row in the cohort's status file: its path, and which series when its folder holds several."""
        return str(self.source)


def find_jobs(
    inputs: str,
    out_dir: Path,
    quiet: bool = False,
    dicom_out: bool = False,
    series: SeriesFilter | None = None,
    notes: list[str] | None = None,
) -> list[Job]:
    """INPUTS as a CSV manifest (``input`` column, optional ``output``, ``patient``, ``series``, ``height_cm``,
    ``weight_kg``, ``slice_thickness_mm``), a folder (its NIfTI files and DICOM series folders, recursively) or a
    glob; each output under ``out_dir`` keeps the input's relative path. A folder holding several image series (a
    study exported flat) gives one scan per series, each written into a folder of the folder's name
    (``study/series-7_cine_sax.nii.gz``). The cohort's own results are never among its scans, even with ``out_dir``
    inside the inputs' folder. Each job carries its input's state (:func:`input_state`: a folder's every file, a
    NIfTI's sidecar), so that a scan changed since its result was written is done again. With ``dicom_out``, a DICOM
    scan's result is a derived DICOM series in a folder of the same name without ``.nii.gz``; a manifest's own
    output is a DICOM folder when it ends in ``/`` or has no extension (as for ``upscale``). ``notes`` gets a line
    for each set of one-slice series that look like one stack but are not (see :func:`listed_jobs`)."""
    jobs = listed_jobs(inputs, Path(out_dir), quiet, dicom_out, series, notes)
    inputs_read = list(dict.fromkeys(job.input for job in jobs))  # (a flat study's series share one folder)
    states = dict(
        zip(inputs_read, ordered_map(partial(input_state, leave_out=Path(out_dir)), inputs_read), strict=True)
    )
    jobs = [replace(job, state=states[job.input] + _given_state(job)) for job in jobs]
    for job in jobs:
        if job.output.resolve() == job.input.resolve():
            raise HeartSRError(f"{job.key}: its output would overwrite it; choose another --out-dir")
    check_written(jobs)
    return jobs


def check_written(jobs: list[Job], also=lambda job: ()) -> None:
    """Before any work: no two scans write one path. Paths are compared as the file system resolves them (``..``,
    symlinks, an absolute path against a relative one), so that no result silently replaces another's. ``also(job)``:
    the job's other outputs beside its result (``--measure``'s files)."""
    owner: dict[Path, tuple[Job, Path]] = {}
    for job in jobs:
        for path in (job.output, *also(job)):
            if (key := path.resolve()) in owner:
                first, written = owner[key]
                raise HeartSRError(f"{job.key} and {first.key}: both would be written to {written}")
            owner[key] = (job, path)


def find_scans(
    inputs: str, quiet: bool = False, series: SeriesFilter | None = None, notes: list[str] | None = None
) -> list[ScanSource]:
    """The scans INPUTS names, found as a cohort finds them, where nothing is written (``evaluate --scans``):
    two scans of one name in different folders are no clash here."""
    return [job.source for job in listed_jobs(inputs, None, quiet, series=series, notes=notes)]


def listed_jobs(
    inputs: str,
    out_dir: Path | None,
    quiet: bool = False,
    dicom_out: bool = False,
    series: SeriesFilter | None = None,
    notes: list[str] | None = None,
) -> list[Job]:
    """Every scan of INPUTS with its output under ``out_dir`` (``.`` and nothing left out when None). A cine stack
    exported one series per slice is one scan (in one folder, or in sibling folders); where three or more parallel
    one-slice series do not make one stack, ``notes`` says why."""
    root = Path(".") if out_dir is None else out_dir
    path = Path(inputs)
    check_scan_path(path, "INPUTS names a scan file, a folder, a glob or a CSV manifest")  # (never opened)
    if path.suffix == ".csv" and path.is_file():
        return _manifest(path, root, dicom_out, confined=out_dir is not None)
    elif path.is_dir():
        scans = [(scan, root / _output_name(scan.relative_to(path))) for scan in _scans_under(path, out_dir)]
        if _holds_dicom_files(path):  # the folder given is itself a series (scanner exports often name files IM0001)
            scans.insert(0, (path, root / f"{path.resolve().name}.nii.gz"))
    else:
        matches = sorted(Path(p) for p in glob.glob(inputs, recursive=True))
        if not matches:
            raise HeartSRError(f"{inputs}: no such folder or CSV manifest, and a glob matching nothing")
        scans = [(p, root / _output_name(Path(p.name))) for p in matches if _is_scan(p) and not _inside(p, out_dir)]
    latest = series is not None and series.latest
    listed = _series_listed([scan for scan, _ in scans], quiet, notes, latest)
    stacks = _stacks_across_folders(scans, listed, notes, latest)
    jobs = [job for scan, output in scans for job in stacks.get(scan, _jobs_of(scan, output, listed.get(scan), latest))]
    if not jobs:
        raise HeartSRError(f"{inputs}: holds no NIfTI scan (.nii, .nii.gz) and no DICOM series")
    if series is not None:
        jobs = [job for job in jobs if series.keeps(job)]
        if not jobs:
            raise HeartSRError(f"{inputs}: no scan left: {series.line()}")
    return [_as_dicom(job) if dicom_out else job for job in jobs]


def _as_dicom(job: Job) -> Job:
    """A DICOM scan's job writing a derived DICOM series into its NIfTI output's name without the extension."""
    if nifti_suffix(job.input) is not None:
        return job  # a NIfTI scan has no DICOM headers to derive a series from
    name = job.output.name[: -len(nifti_suffix(job.output) or "")] or job.output.name
    return replace(job, output=job.output.with_name(name), dicom=True)


def _series_listed(
    scans: list[Path], quiet: bool, notes: list[str] | None, latest: bool = False
) -> dict[Path, list[SeriesEntry]]:
    """The image series of each DICOM folder among ``scans``, from their headers (a few folders at a time on
    threads: a network drive's latency overlaps); a bar when there are many (``latest``: as
    :func:`~heart_sr_tf.data.dicom.folder_series`)."""
    folders = [scan for scan in scans if scan.is_dir() or is_zip_export(scan)]
    listed = {}
    with progress_bar(len(folders), "list series", "folder", disable=quiet or len(folders) < LIST_BAR) as bar:
        found = ordered_map(partial(_folder_series, latest=latest), folders)
        for folder, (entries, lines) in zip(folders, found, strict=True):
            listed[folder] = entries
            if notes is not None:
                notes += lines
            bar.update(1)
    return listed


def _folder_series(folder: Path, latest: bool = False) -> tuple[list[SeriesEntry], list[str]]:
    lines: list[str] = []
    return folder_series(folder, lines, latest), lines


def _stacks_across_folders(
    scans: list, listed: dict[Path, list[SeriesEntry]], notes: list[str] | None, latest: bool = False
) -> dict[Path, list[Job]]:
    """Sibling folders each holding one series, one slice's (a cine stack exported one series per slice, each
        series in a folder of its own: ``study/sax_5/``, ``study/sax_6/``, ...), joined into one scan of their parent
        folder: for each folder so joined, its jobs instead of its own (the stack's job for the first, none for the
        others); the stack is written beside what its folders' results would have been. With ``latest``, the folder of
    a slice acquired again later, in a series the stack takes, has no job either."""
    siblings: dict[Path, list[SeriesEntry]] = {}
    for scan, _ in scans:
        entries = listed.get(scan)
        if entries is not None and len(entries) == 1 and scan.is_dir():  # (not archives: read as the folder is)
            siblings.setdefault(scan.parent, []).append(entries[0])
    folder_of = {entries[0].uid: scan for scan, entries in listed.items() if len(entries) == 1 and scan.is_dir()}
    output_of = dict(scans)
    instead: dict[Path, list[Job]] = {}
    for parent, entries in siblings.items():
        apart: list[str] = []
        found, left_out = joined_entries(entries, apart, latest) if len(entries) > 1 else ([], set())
        instead.update({folder_of[uid]: [] for uid in left_out})
        if notes is not None:
            notes += [f"{parent}: {line} (each in a folder of its own)" for line in apart]
        several = len({entry.patient for entry in found}) > 1  # several patients' series folders side by side
        for entry, label in zip(found, series_labels(found, several), strict=True):
            folders = sorted(folder_of[uid] for uid in entry.uids)
            instead.update({folder: [] for folder in folders})
            where = output_of[folders[0]].parent / f"{label}.nii.gz"
            patient = entry.patient if several and entry.patient else None
            instead[folders[0]] = [Job(parent, where, patient, entry.uid, label, description=entry.description,
                                       patient_id=entry.patient)]  # fmt: skip
    return instead


def _jobs_of(scan: Path, output: Path, entries: list[SeriesEntry] | None, latest: bool = False) -> list[Job]:
    """A NIfTI file's job; a DICOM folder's (its ``entries``): one, or one per image series when it holds several
    (each written into a folder named as ``output`` without its extension); none when it holds no image (a
    DICOMDIR). With ``latest``, a folder's one stack names its series: the folder may hold one left out of it (a
    slice acquired again). So does a folder's one series when a folder inside it holds DICOM files too: that is a
    scan of its own, and a folder is read with everything below it (an earlier ``upscale IN IN/sr/``'s derived
    series would make two)."""
    if entries is None:  # a NIfTI file: its sidecar may name the series it was converted from
        return [Job(scan, output, description=sidecar_description(scan))]
    if len(entries) == 1 and (latest and len(entries[0].uids) > 1 or _holds_nested_series(scan)):
        (label,) = series_labels(entries)
        entry = entries[0]
        return [Job(scan, output, None, entry.uid, label, description=entry.description, patient_id=entry.patient)]
    if len(entries) <= 1:
        return [Job(scan, output, description=entries[0].description, patient_id=entries[0].patient)] if entries else []
    folder = output.with_name(output.name[: -len(nifti_suffix(output))])
    patients = {entry.patient for entry in entries}
    several = len(patients) > 1  # a folder of several patients' studies: their series numbers repeat
    return [
        Job(
            scan,
            folder / f"{label}.nii.gz",
            entry.patient if several and entry.patient else None,
            entry.uid,
            label,
            description=entry.description,
            patient_id=entry.patient,
        )
        for entry, label in zip(entries, series_labels(entries, several), strict=True)
    ]


def series_labels(entries: list[SeriesEntry], with_patient: bool = False) -> list[str]:
    """A file-safe name for each series, distinct within its folder: ``series-7_cine_sax`` (its SeriesNumber and
    SeriesDescription; ``series-5-16_cine_sax`` for a stack joined from series 5 to 16), after its PatientID when
    asked, and with the end of its UID where those repeat."""

    def safe(text: str) -> str:
        return re.sub(r"[^A-Za-z0-9-]+", "_", text).strip("_")[:48]  # no dots: never taken for an extension

    labels = []
    for entry in entries:
        parts = [safe(entry.patient)] if with_patient and safe(entry.patient) else []
        parts.append(f"series-{safe(entry.numbers_text)}" if entry.number is not None else "series")
        parts += [safe(entry.description)] if safe(entry.description) else []
        labels.append("_".join(parts))
    return [
        f"{label}_{safe(entry.uid)[-12:]}" if labels.count(label) > 1 else label
        for label, entry in zip(labels, entries, strict=True)
    ]


def _inside(path: Path, folder: Path | None) -> bool:
    """``path`` is ``folder`` or lies in it (never, for no folder)."""
    if folder is None:
        return False
    folder, path = Path(folder).resolve(), Path(path).resolve()
    return path == folder or folder in path.parents


def _is_scan(path: Path) -> bool:
    return _is_file_scan(path) or (path.is_dir() and _holds_dicom_files(path))


def _holds_dicom_files(folder: Path) -> bool:
    return any(is_dicom(p) for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _scans_under(root: Path, out_dir: Path | None) -> list[Path]:
    """NIfTI files, and folders that directly hold DICOM files (each a series), in a stable order; not inside
    ``out_dir`` when it lies below ``root`` (a cohort's results inside its inputs' folder would be taken for scans
    when it resumes), and not hidden (``._scan.nii.gz``, the AppleDouble files macOS leaves on shared drives, are
    not scans; nor are ``.git`` or the tool's own temporary files)."""
    below = out_dir if out_dir is not None and _inside(out_dir, root) and not _inside(root, out_dir) else None

    def kept(path: Path) -> bool:
        return not _inside(path, below) and not any(part.startswith(".") for part in path.relative_to(root).parts)

    scans = []
    for folder in sorted([root, *(p for p in root.rglob("*") if p.is_dir() and kept(p))]):
        if folder != root and _holds_dicom_files(folder):
            scans.append(folder)
        scans += sorted(p for p in folder.iterdir() if kept(p) and _is_file_scan(p))
    return scans


def _holds_nested_series(folder: Path) -> bool:
    """A folder with a folder below it (not hidden) that directly holds DICOM files."""
    return folder.is_dir() and any(
        _holds_dicom_files(sub)
        for sub in folder.rglob("*")
        if sub.is_dir() and not any(part.startswith(".") for part in sub.relative_to(folder).parts)
    )


def _is_file_scan(path: Path) -> bool:
    """A NIfTI file, or a zip archive of DICOM files (as UK Biobank ships cines)."""
    return (path.is_file() and nifti_suffix(path) is not None) or is_zip_export(path)


def _output_name(relative: Path) -> Path:
    """A NIfTI result for every input: ``a/b.nii.gz`` -> ``a/b.nii.gz``, a DICOM folder ``a/s1`` -> ``a/s1.nii.gz``,
    a zip archive ``a/s2.zip`` -> ``a/s2.nii.gz``."""
    if nifti_suffix(relative) is not None:
        return relative
    name = relative.stem if relative.suffix.lower() == ".zip" else relative.name
    return relative.with_name(name + ".nii.gz")


MANIFEST_COLUMNS = ("input", "output", "patient", "series", "height_cm", "weight_kg", "slice_thickness_mm")


def read_manifest(path: Path) -> list[tuple[int, dict[str, str]]]:
    """A CSV manifest's rows with their line numbers, as spreadsheets save them: a UTF-8 byte-order mark (Excel's
    "CSV UTF-8"), columns separated by commas, semicolons (where the decimal mark is a comma) or tabs, column
    names in any case; rows with every cell empty (a spreadsheet's trailing lines) left out. Refused in one line: a
    column whose name is a near miss of one read (its values would be left out unsaid), a row with more cells than
    the header has columns (a separator inside a value shifts every cell after it: "170,5" for a height), and no
    row at all."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        why = "not UTF-8 text: save it as CSV UTF-8" if isinstance(exc, UnicodeDecodeError) else exc
        raise HeartSRError(f"{path}: unreadable CSV manifest ({why})") from None
    header = text.splitlines()[0] if text.strip() else ""
    delimiter = next(
        (d for d in (",", ";", "\t") if "input" in (c.strip().strip('"').lower() for c in header.split(d))), ","
    )
    try:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
        table = [(reader.line_num, row) for row in reader]
    except csv.Error as exc:
        raise HeartSRError(f"{path}: unreadable CSV manifest ({exc})") from None
    if not table or "input" not in (names := [c.strip().lower() for c in table[0][1]]):
        found = ", ".join(repr(c) for c in (table[0][1] if table else []))
        raise HeartSRError(
            f"{path}: a manifest needs an 'input' column (and optionally "
            f"{', '.join(repr(c) for c in MANIFEST_COLUMNS[1:])}); found {found or 'no column'}"
        )
    for name in names:  # a near miss of a column read ("height" for "height_cm") would be left out unsaid
        close = difflib.get_close_matches(name, MANIFEST_COLUMNS, n=1, cutoff=0.6)
        if name not in MANIFEST_COLUMNS and close and close[0] not in names:
            raise HeartSRError(f"{path}: column {name!r} is not read; did you mean {close[0]!r}?")
    rows = []
    for number, row in table[1:]:
        if not any(cell.strip() for cell in row):
            continue
        if any(cell.strip() for cell in row[len(names) :]):  # a comma inside a value: the cells after it shift
            raise HeartSRError(
                f"{path}:{number}: {len(row)} cells, but the header names {len(names)} columns: a value holding "
                f"the separator {delimiter!r} (a decimal comma, a path with a comma)? quote it or use ';'"
            )
        rows.append((number, {name: cell.strip() for name, cell in zip(names, row)}))
    if not rows:
        raise HeartSRError(f"{path}: a manifest without rows: no scan to upscale")
    return rows


def input_state(path: Path, leave_out: Path | None = None) -> str:
    """A scan's files as they are (:func:`tree_state`), and for a NIfTI file its BIDS sidecar when it has one: the
    sidecar's SliceThickness chooses the through-plane model, so a sidecar added or edited redoes the scan."""
    state = tree_state(path, leave_out)
    side = sidecar(path) if nifti_suffix(path) is not None else None
    return state if side is None or not side.is_file() else f"{state}|sidecar {digest_files([(side.name, side)])}"


def _given_state(job: Job) -> str:
    """What a job's state adds for its manifest height and weight and slice thickness: a result made with others is
    done again."""
    body = "" if job.body is None else f"|body {job.body[0]:g} m {job.body[1]:g} kg"
    return body + ("" if job.thickness is None else f"|thickness {job.thickness:g} mm")


def given_thickness(cell: str | None, where: str) -> float | None:
    """A manifest's slice thickness in mm (empty: not given), a comma allowed as the decimal mark; a HeartSRError
    naming ``where`` when it is no positive number."""
    text = (cell or "").strip()
    if not text:
        return None
    try:
        value = float(text.replace(",", "."))
    except ValueError:
        value = float("nan")
    if not (0 < value < float("inf")):
        raise HeartSRError(f"{where}: slice_thickness_mm {text!r}: not a slice thickness in mm (a positive number)")
    return value


def _manifest(path: Path, out_dir: Path, dicom_out: bool = False, confined: bool = False) -> list[Job]:
    """The manifest's jobs; ``confined`` (a cohort writing them): every output inside ``out_dir``."""
    jobs = []
    for number, row in read_manifest(path):
        scan = Path(row.get("input") or "")
        if not row.get("input"):
            raise HeartSRError(f"{path}:{number}: empty input")
        scan = scan if scan.is_absolute() else path.parent / scan
        series = (row.get("series") or "").strip() or None  # a SeriesNumber or SeriesInstanceUID
        named = _output_name(Path(scan.name))
        if series is not None:  # its own file beside the folder's other series
            picked = re.sub(r"[^A-Za-z0-9.-]+", "_", series)  # (several: "5,6,7" names a stack)
            named = named.with_name(f"{named.name[: -len(nifti_suffix(named))]}_series-{picked}.nii.gz")
        given = (row.get("output") or "").strip()
        output = Path(given or named)
        patient = (row.get("patient") or "").strip() or None
        output = Path(os.path.normpath(output if output.is_absolute() else out_dir / output))  # (``d/../x``: x)
        if confined and (not _inside(output, out_dir) or _inside(out_dir, output)):  # ``..``, elsewhere, itself
            raise HeartSRError(
                f"{path}:{number}: output {given!r} lies outside --out-dir {out_dir}: a cohort writes only inside "
                "its own folder, whose status file and lock cover what it writes"
            )
        job = Job(scan, output, patient, series)
        job = replace(job, body=given_body(row.get("height_cm"), row.get("weight_kg"), f"{path}:{number}"))
        job = replace(job, thickness=given_thickness(row.get("slice_thickness_mm"), f"{path}:{number}"))
        if given:  # the manifest's own output: a folder (ends in /, or no extension) is a DICOM series
            job = replace(job, dicom=given.endswith(("/", os.sep)) or not Path(given).suffix)
        jobs.append(_as_dicom(job) if dicom_out and not given else job)
    return jobs
