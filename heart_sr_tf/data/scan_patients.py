"""A lab's own scans as the patients of a training dataset: no ACDC layout, no labels, no Info.cfg.

Each patient holds one or more scans (NIfTI files or DICOM series); all of a patient's scans go to one split, so
that a model is never scored on a patient it trained on. Every slice of every frame becomes a stored slice on the
protocol's grid, exactly as :func:`heart_sr_tf.data.slices.scan_frames` puts a scan there for ``evaluate --scans``.
Without labels there is no heart box, unless a segmenter drew one per scan (``prepare --scans --heart-boxes``):
otherwise such a dataset has full slices only.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from heart_sr_tf.data.scan import Scan, ScanSource, as_source, read_scan
from heart_sr_tf.data.slices import HR_SIZE, Slice, scan_frames
from heart_sr_tf.data.threads import ordered_map
from heart_sr_tf.errors import DataError

GROUP = "scans"  # the one stratum of the split: a lab's scans carry no diagnosis
NDIMS = (3, 4)  # a stack of slices, or a cine of them


@dataclass(frozen=True)
class ScanPatient:
    """One patient's scans, in the order given."""

    id: str
    scans: tuple[ScanSource, ...]
    group: str = GROUP
    source_split: str | None = None
    boxes: tuple = ()  # each scan's heart box on the protocol grid (or None), when a segmenter gave them


def group_scans(listed: list[tuple[str, ScanSource | Path]]) -> list[ScanPatient]:
    """``(patient id, scan)`` pairs as patients, in order of first appearance."""
    patients: dict[str, list[ScanSource]] = {}
    for pid, scan in listed:
        patients.setdefault(pid, []).append(as_source(scan))
    return [ScanPatient(pid, tuple(scans)) for pid, scans in patients.items()]


def read_training_scan(path: ScanSource | Path) -> Scan:
    """A scan checked fit to train on: 3D or 4D, readable, finite, not all zero, not one of this tool's outputs (a
    super-resolved scan as the full-resolution truth would teach a model its own guesses), and not a label map (a
    segmentation in an image's place would teach it to draw labels)."""
    scan = read_scan(path, ndims=NDIMS, min_inplane=3)
    made = scan.made_by_heart_sr()
    if made is not None:
        raise DataError(path, f"was written by heart-sr ({made!r}), not acquired; left out")
    values = scan.label_values()
    if values is not None:
        raise DataError(
            path, f"holds only {len(values)} distinct whole-number values: a label map, not an image; left out"
        )
    return scan


def valid_scan_patients(
    patients: list[ScanPatient], strict: bool = False, on_patient=None, notes: list[str] | None = None
) -> tuple[list[ScanPatient], list[DataError]]:
    """The patients with the scans fit to train on, and the problem of each other scan (the first raised at once
    when ``strict``); ``notes`` gets what reading each kept scan found (:meth:`Scan.read_notes`). A bad scan is
    left out, not its patient's good ones: a label map or a super-resolved result written beside a lab's cine
    costs nothing but itself; a patient left without a scan is left out. Each scan is read once, a few patients
    at a time on worker threads."""
    good, errors = [], []
    seen: dict[str, tuple[str, ScanSource]] = {}  # the voxels' digest -> the first (patient, scan) holding them
    for patient, checked, problems in ordered_map(_check_patient, patients):
        kept = []
        for path, digest, read in checked:
            if digest in seen:  # the same scan exported twice, or copied under another name
                first, where = seen[digest]
                whose = "the same patient's" if first == patient.id else f"patient {first}'s"
                problems.append(DataError(path, f"holds the voxels of {whose} {where}, a copy; left out (a scan in "
                                                "two splits scores the model on what it trained on)"))  # fmt: skip
                continue
            seen[digest] = (patient.id, path)
            kept.append(path)
            if notes is not None:
                notes += read
        if problems and strict:
            raise problems[0]
        errors += problems
        if kept:
            good.append(replace(patient, scans=tuple(kept)))
        if on_patient is not None:
            on_patient(patient.id)
    return good, errors


def _check_patient(patient: ScanPatient) -> tuple[ScanPatient, list[tuple[ScanSource, str, list]], list[DataError]]:
    """The patient's scans fit to train on, each with a digest of its voxels and what reading it found, and the
    problem of each other."""
    kept, problems = [], []
    for path in patient.scans:
        try:
            scan = read_training_scan(path)
            kept.append((path, scan.voxel_digest(), scan.read_notes()))
        except DataError as exc:
            problems.append(exc)
    return patient, kept, problems


def scan_patient_slices(patient: ScanPatient, size: int = HR_SIZE) -> Iterator[Slice]:
    """Every slice of every frame of the patient's scans as a normalised ``size x size`` image (each 3D frame's
    own intensity window). Frames are numbered on across the patient's scans (a second scan's first frame follows
    the first scan's last), so that every stored slice has its own (frame, slice). All scans are read and checked
    before the first slice is yielded."""
    scans = [read_training_scan(path) for path in patient.scans]
    boxes = patient.boxes or (None,) * len(scans)
    offset = 0
    for scan, box in zip(scans, boxes, strict=True):
        spacing = tuple(float(z) for z in scan.zooms[:3])
        last = 0
        for frame, images in scan_frames(scan.data, size):
            for z, image in enumerate(images):
                yield Slice(image, patient.id, patient.group, z, offset + frame, spacing, box)
            last = frame
        offset += last
