"""Which patient each of a lab's scans belongs to (``prepare --scans`` splits by patient, never by scan)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from heart_sr_tf.cohort.jobs import listed_jobs
from heart_sr_tf.cohort.series_filter import SeriesFilter
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.data.scan import ScanSource
from heart_sr_tf.path_text import as_text

# A BIDS file name starts with its subject entity: sub-<label>_..., the label alphanumeric.
BIDS_SUBJECT = re.compile(r"^(sub-[A-Za-z0-9]+)(?:_|$)")


def find_scan_patients(
    inputs: str, quiet: bool = False, series: SeriesFilter | None = None, notes: list[str] | None = None
) -> list[tuple[str, ScanSource]]:
    """The scans INPUTS names, each with the patient it belongs to (``prepare --scans``: a patient's scans all go
    to one split): a manifest's ``patient`` column, or the PatientID of a series in a folder holding several
    patients' series; else the first folder below the scans' common folder (``lab/P01/cine.nii.gz`` and
    ``lab/P01/sax/`` belong to P01); else, for a scan lying in that folder itself, the BIDS subject its name starts
    with (``lab/sub-01_ses-2_cine.nii.gz`` is sub-01: a flat BIDS-named export, as dcm2niix writes one), else its
    own name without the extension (``lab/P02.nii.gz`` is P02). Where DICOM headers name several patients, folder
    patients whose series share a PatientID are one patient (``P01+P07``, a line in ``notes``): one person's scans
    never straddle two splits. (One PatientID for every series, as some anonymisers leave, tells nothing and is not
    used.) When every scan lies flat in one folder, each its own patient by its file name, ``notes`` says so."""
    apart: list[str] = []
    jobs = listed_jobs(inputs, None, quiet, series=series, notes=apart)
    if notes is not None:
        notes += [f"note: {line}" for line in apart]
    where = {job.input: Path(os.path.abspath(job.input)) for job in jobs}  # links kept: a folder of links is a layout
    root = Path(os.path.commonpath([str(path.parent) for path in where.values()]))
    listed, by_file_name = [], 0
    for job in jobs:
        relative = where[job.input].relative_to(root)
        suffix = nifti_suffix(relative)
        own = relative.name[: -len(suffix)] if suffix else relative.name
        subject = BIDS_SUBJECT.match(own)
        if job.patient is None and len(relative.parts) == 1:
            patient = subject.group(1) if subject else own
            by_file_name += not subject and not where[job.input].is_dir()
        else:
            patient = job.patient or relative.parts[0]
        listed.append((as_text(patient), job.source))  # (a Latin-1 file name: a patient TensorFlow can store)
    joined = _joined_by_patient_id(listed, [job.patient_id for job in jobs], notes)
    if notes is not None and by_file_name == len(joined) > 1 and len({pid for pid, _ in joined}) == len(joined):
        notes.append(
            f"note: every scan lies in {root} itself, so each is a patient of its own; if some are one person's (a "
            "cine and another scan of one visit), give each person a folder, name the files by BIDS subject "
            "(sub-01_...), or name the patients in a manifest's patient column: one person in two splits is scored "
            "on what trained the model"
        )
    return joined


def _joined_by_patient_id(listed: list, ids: list[str | None], notes: list[str] | None) -> list:
    """``listed``'s patients joined where their DICOM series share a PatientID (when the IDs tell patients apart)."""
    if len({i for i in ids if i}) < 2:
        return listed
    parent = {pid: pid for pid, _ in listed}

    def root(name: str) -> str:
        while parent[name] != name:
            name = parent[name]
        return name

    first: dict[str, str] = {}
    for (pid, _), patient_id in zip(listed, ids, strict=True):
        if patient_id:
            a, b = root(first.setdefault(patient_id, pid)), root(pid)
            if a != b:
                parent[max(a, b)] = min(a, b)
    groups: dict[str, list[str]] = {}
    for pid in parent:
        groups.setdefault(root(pid), []).append(pid)
    names = {pid: "+".join(sorted(members)) for members in groups.values() for pid in members}
    for members in groups.values():
        if len(members) > 1 and notes is not None:
            shared = sorted({i for (p, _), i in zip(listed, ids, strict=True) if p in members and i})
            notes.append(
                f"{', '.join(sorted(members))}: their DICOM series share PatientID {', '.join(shared)}; taken as one "
                f"patient, {names[members[0]]} (name patients in a manifest's patient column to decide otherwise)"
            )
    return [(names[pid], source) for pid, source in listed]
