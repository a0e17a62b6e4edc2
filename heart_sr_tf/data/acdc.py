"""Reader for the ACDC layout: ``[training|testing]/patientXXX/`` with Info.cfg and NIfTI volumes.

Every problem with a file raises :class:`DataError` naming that file, so that a run over
many patients can report the bad ones and keep the good ones.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heart_sr_tf.data.nifti import load_nifti, nifti_suffix
from heart_sr_tf.errors import DataError

GROUPS = ("NOR", "DCM", "HCM", "MINF", "RV")
_PATIENT_DIR = re.compile(r"^patient\d+$")
_FRAME_FILE = re.compile(r"^(patient\d+)_frame(\d+)\.nii(\.gz)?$")
_REQUIRED_INFO = ("ED", "ES", "Group", "NbFrame")


@dataclass(frozen=True)
class PatientInfo:
    """The content of one ``Info.cfg``. ``ed`` and ``es`` are 1-based frame numbers."""

    ed: int
    es: int
    group: str
    nb_frame: int


@dataclass
class Patient:
    """Where one patient's files are. Nothing is loaded until asked for."""

    id: str
    folder: Path
    info: PatientInfo
    source_split: str | None = None  # "training" / "testing" when the folder says so
    cine_path: Path | None = None
    frame_paths: dict[int, Path] = field(default_factory=dict)
    label_paths: dict[int, Path] = field(default_factory=dict)


def parse_info(path: Path) -> PatientInfo:
    """Parse an ACDC ``Info.cfg`` (``Key: value`` lines)."""
    path = Path(path)
    if not path.is_file():
        raise DataError(path, "missing Info.cfg")
    values: dict[str, str] = {}
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(path, f"unreadable Info.cfg ({exc})") from None
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        if ":" not in line:
            raise DataError(path, f"malformed Info.cfg: line {number} is not 'Key: value'")
        key, value = line.split(":", 1)
        values[key.strip()] = value.strip()
    missing = [k for k in _REQUIRED_INFO if k not in values]
    if missing:
        raise DataError(path, f"malformed Info.cfg: missing {', '.join(missing)}")
    try:
        ed, es, nb = int(values["ED"]), int(values["ES"]), int(values["NbFrame"])
    except ValueError as exc:
        raise DataError(path, f"malformed Info.cfg: {exc}") from None
    if min(ed, es, nb) < 1:
        raise DataError(path, "malformed Info.cfg: ED, ES and NbFrame must be positive")
    if max(ed, es) > nb:
        raise DataError(path, f"malformed Info.cfg: ED {ed} or ES {es} is past the last frame (NbFrame {nb})")
    if values["Group"] not in GROUPS:
        raise DataError(path, f"malformed Info.cfg: unknown Group {values['Group']!r}, expected one of {GROUPS}")
    return PatientInfo(ed=ed, es=es, group=values["Group"], nb_frame=nb)


def find_patients(root: Path) -> list[Patient]:
    """List the patients under ``root``: ``root/{training,testing}/patientXXX`` or ``root/patientXXX``.

    Raises DataError for a patient whose Info.cfg is missing or malformed; use
    :func:`scan_patients` to collect those instead.
    """
    patients, errors = scan_patients(root)
    if errors:
        raise errors[0]
    return patients


def _scan_name(name: str) -> bool:
    """A file name a lab's scan has (NIfTI, DICOM, a zip of DICOM): for a hint, not a check."""
    dicom = name.lower().endswith((".dcm", ".ima", ".zip")) or name.upper() == "DICOMDIR"
    return dicom or nifti_suffix(name) is not None


def scan_patients(root: Path) -> tuple[list[Patient], list[DataError]]:
    """Like :func:`find_patients`, but returns the broken patients' errors instead of raising."""
    root = Path(root)
    if not root.is_dir():
        raise DataError(root, "not a directory")
    folders: list[tuple[Path, str | None]] = []
    for split in ("training", "testing"):
        if (root / split).is_dir():
            folders += [(p, split) for p in sorted((root / split).iterdir()) if _PATIENT_DIR.match(p.name)]
    folders += [(p, None) for p in sorted(root.iterdir()) if _PATIENT_DIR.match(p.name) and p.is_dir()]
    if not folders:
        hint = ""
        if any(_scan_name(p.name) for p in root.iterdir()):
            hint = "; a folder of a lab's own scans is read with --scans (prepare, evaluate)"
        raise DataError(root, f"no patientXXX folders found (expected training/, testing/ or patient folders){hint}")
    patients, errors = [], []
    for folder, split in folders:
        try:
            patients.append(_describe(folder, split))
        except DataError as exc:
            errors.append(exc)
    return patients, errors


def _describe(folder: Path, split: str | None) -> Patient:
    info = parse_info(folder / "Info.cfg")
    patient = Patient(id=folder.name, folder=folder, info=info, source_split=split)
    for path in sorted(folder.iterdir()):
        name = path.name
        if name in (f"{folder.name}_4d.nii.gz", f"{folder.name}_4d.nii"):
            patient.cine_path = path
            continue
        label = re.match(r"^(patient\d+)_frame(\d+)_gt\.nii(\.gz)?$", name)
        if label:
            patient.label_paths[int(label.group(2))] = path
            continue
        frame = _FRAME_FILE.match(name)
        if frame:
            patient.frame_paths[int(frame.group(2))] = path
    if patient.cine_path is None and not patient.frame_paths:
        raise DataError(folder, "no image volumes (expected patientXXX_4d.nii.gz or patientXXX_frameYY.nii.gz)")
    return patient


def load_frames(patient: Patient, min_inplane: int = 3) -> tuple[list[tuple[int, np.ndarray]], tuple]:
    """Return ``[(frame_number, volume_xyz), ...]`` and the spatial spacing (mm) of ``patient``.

    Uses every frame of the 4D cine when present, else the ED/ES frame files.
    """
    if patient.cine_path is not None:
        data, zooms = load_nifti(patient.cine_path, ndims=(4,), min_inplane=min_inplane)
        if data.shape[3] != patient.info.nb_frame:
            raise DataError(
                patient.cine_path, f"{data.shape[3]} frames, but its Info.cfg says NbFrame {patient.info.nb_frame}"
            )
        frames = [(t + 1, data[..., t]) for t in range(data.shape[3])]
        return frames, zooms[:3]
    frames, spacing = [], None
    for number, path in sorted(patient.frame_paths.items()):
        data, zooms = load_nifti(path, ndims=(3,), min_inplane=min_inplane)
        frames.append((number, data))
        spacing = spacing or zooms[:3]
    return frames, spacing


def load_labels(patient: Patient, image_shape: tuple[int, ...]) -> dict[int, np.ndarray]:
    """Load the ED/ES label volumes (0 background, 1 RV, 2 myocardium, 3 LV), checked against the image shape."""
    labels = {}
    for number, path in sorted(patient.label_paths.items()):
        data, _ = load_nifti(path, ndims=(3, 4), min_inplane=1, allow_zero=True)
        if tuple(data.shape) != tuple(image_shape):
            raise DataError(path, f"label shape {data.shape} differs from image shape {tuple(image_shape)}")
        labels[number] = data.astype(np.uint8)
    return labels
