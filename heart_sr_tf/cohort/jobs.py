"""Which scans a cohort holds and where each result goes: a folder, a glob, or a CSV manifest."""

from __future__ import annotations

import csv
import glob
import os
from dataclasses import dataclass
from pathlib import Path

from heart_sr_tf.data.dicom import is_dicom
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.errors import HeartSRError


@dataclass(frozen=True)
class Job:
    input: Path
    output: Path
    patient: str | None = None  # a manifest's ``patient`` column, when it has one


def find_jobs(inputs: str, out_dir: Path) -> list[Job]:
    """INPUTS as a CSV manifest (``input`` column, optional ``output``), a folder (its NIfTI files and DICOM
    series folders, recursively) or a glob; each output under ``out_dir`` keeps the input's relative path. The
    cohort's own results are never among its scans, even with ``out_dir`` inside the inputs' folder."""
    jobs = _listed(inputs, Path(out_dir))
    seen: dict[Path, Path] = {}
    for job in jobs:
        if job.output in seen:
            raise HeartSRError(f"{job.input} and {seen[job.output]}: both would be written to {job.output}")
        seen[job.output] = job.input
        if job.output.resolve() == job.input.resolve():
            raise HeartSRError(f"{job.input}: its output would overwrite it; choose another --out-dir")
    return jobs


def find_scans(inputs: str) -> list[Path]:
    """The scans INPUTS names, found as a cohort finds them, where nothing is written (``evaluate --scans``):
    two scans of one name in different folders are no clash here."""
    return [job.input for job in _listed(inputs, None)]


def find_scan_patients(inputs: str) -> list[tuple[str, Path]]:
    """The scans INPUTS names, each with the patient it belongs to (``prepare --scans``: a patient's scans all go
    to one split): a manifest's ``patient`` column; else the first folder below the scans' common folder
    (``lab/P01/cine.nii.gz`` and ``lab/P01/sax/`` belong to P01); else, for a scan lying in that folder itself,
    its own name without the extension (``lab/P02.nii.gz`` is P02)."""
    jobs = _listed(inputs, None)
    where = {job.input: Path(os.path.abspath(job.input)) for job in jobs}  # links kept: a folder of links is a layout
    root = Path(os.path.commonpath([str(path.parent) for path in where.values()]))
    listed = []
    for job in jobs:
        relative = where[job.input].relative_to(root)
        suffix = nifti_suffix(relative)
        own = relative.name[: -len(suffix)] if suffix else relative.name
        listed.append((job.patient or (relative.parts[0] if len(relative.parts) > 1 else own), job.input))
    return listed


def _listed(inputs: str, out_dir: Path | None) -> list[Job]:
    """Every scan of INPUTS with its output under ``out_dir`` (``.`` and nothing left out when None)."""
    root = Path(".") if out_dir is None else out_dir
    path = Path(inputs)
    if path.suffix == ".csv" and path.is_file():
        jobs = _manifest(path, root)
    elif path.is_dir():
        scans = _scans_under(path, out_dir)
        jobs = [Job(scan, root / _output_name(scan.relative_to(path))) for scan in scans]
        if _holds_dicom_files(path):  # the folder given is itself a series (scanner exports often name files IM0001)
            jobs.insert(0, Job(path, root / f"{path.resolve().name}.nii.gz"))
    else:
        matches = sorted(Path(p) for p in glob.glob(inputs, recursive=True))
        if not matches:
            raise HeartSRError(f"{inputs}: no such folder or CSV manifest, and a glob matching nothing")
        scans = [p for p in matches if _is_scan(p) and not _inside(p, out_dir)]
        jobs = [Job(scan, root / _output_name(Path(scan.name))) for scan in scans]
    if not jobs:
        raise HeartSRError(f"{inputs}: holds no NIfTI scan (.nii, .nii.gz) and no DICOM series")
    return jobs


def _inside(path: Path, folder: Path | None) -> bool:
    """``path`` is ``folder`` or lies in it (never, for no folder)."""
    if folder is None:
        return False
    folder, path = Path(folder).resolve(), Path(path).resolve()
    return path == folder or folder in path.parents


def _is_scan(path: Path) -> bool:
    return (path.is_file() and nifti_suffix(path) is not None) or (path.is_dir() and _holds_dicom_files(path))


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
        scans += sorted(p for p in folder.iterdir() if p.is_file() and nifti_suffix(p) is not None and kept(p))
    return scans


def _output_name(relative: Path) -> Path:
    """A NIfTI result for every input: ``a/b.nii.gz`` -> ``a/b.nii.gz``, a DICOM folder ``a/s1`` -> ``a/s1.nii.gz``."""
    return relative if nifti_suffix(relative) is not None else relative.with_name(relative.name + ".nii.gz")


def _manifest(path: Path, out_dir: Path) -> list[Job]:
    try:
        with path.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise HeartSRError(f"{path}: unreadable CSV manifest ({exc})") from None
    if not rows or "input" not in rows[0]:
        raise HeartSRError(f"{path}: a manifest needs an 'input' column (and optionally 'output')")
    jobs = []
    for number, row in enumerate(rows, start=2):
        scan = Path(row["input"] or "")
        if not row["input"]:
            raise HeartSRError(f"{path}:{number}: empty input")
        scan = scan if scan.is_absolute() else path.parent / scan
        output = Path(row.get("output") or _output_name(Path(scan.name)))
        patient = (row.get("patient") or "").strip() or None
        jobs.append(Job(scan, output if output.is_absolute() else out_dir / output, patient))
    return jobs
