"""``--measure``'s label map as a DICOM Segmentation (SEG) series, when the upscaled scan is a derived DICOM
series: the scanner's format for segmentations, which a PACS stores and a viewer (OHIF, 3D Slicer) shows over the
series it segments. highdicom writes it.

One SEG instance per cine frame (a SEG's frames may not share a plane position, and every frame of a cine shares
its slices'), all in one new series of the study: binary segments 1 RV, 2 myocardium and 3 LV, coded in SNOMED CT
(right ventricle, left ventricle myocardium, left ventricle) as anatomical structures, made by an automatic
algorithm named with the segmenter's version; each frame references the image of the derived series it
segments. The series is written beside the images (``OUT_seg/``), never inside their folder, which would then no
longer read as one image series; it goes to a temporary folder first and is renamed when whole, and only a folder
this tool wrote is ever replaced.
"""

from __future__ import annotations

import copy
import re
import shutil
import warnings
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import numpy as np

from heart_sr_tf import __version__
from heart_sr_tf.data.dicom import DicomSeries
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.errors import DataError, os_reason
from heart_sr_tf.export.layout import OURS
from heart_sr_tf.volumes.dicom_writer import (
    SERIES_OFFSET,
    replace_folder,
    staging_folder,
    write_marker,
)

# Type 2 attributes of the patient and study that a SEG copies from its source images: present, if empty, in every
# scanner's images, but an anonymiser or a converter may have dropped them.
PATIENT_AND_STUDY = ("PatientName", "PatientID", "PatientBirthDate", "PatientSex", "StudyDate", "StudyTime",
                     "ReferringPhysicianName", "AccessionNumber", "StudyID")  # fmt: skip
SEGMENTS = ((1, "RV", "RightVentricle"), (2, "myocardium", "LeftVentricleMyocardium"), (3, "LV", "LeftVentricle"))


def description(origin: str) -> str:
    """The series' description: whose automatic segmenter drew the labels (``trained on ACDC``: ours)."""
    return f"heart-sr labels (automatic segmenter {origin})"[:64]


def seg_output(out_path: Path) -> Path | None:
    """Where ``--measure`` writes the SEG series of a DICOM OUT (``OUT_seg/``); None for a NIfTI OUT."""
    out_path = Path(out_path)
    return None if nifti_suffix(out_path) is not None else out_path.with_name(f"{out_path.name}_seg")


def write_dicom_seg(
    series: DicomSeries, labels: np.ndarray, out_dir: Path, algorithm: str, version: str, origin: str = OURS
) -> list:
    """``labels[x, y, z(, T)]`` (0 background, 1 RV, 2 myocardium, 3 LV, on ``series``' grid) as a SEG series of
    one instance per frame in folder ``out_dir``, referencing ``series``' images; returns the instances, frame by
    frame (for a report that refers to them)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    labels = labels if labels.ndim == 4 else labels[..., None]
    depth, frames = len(series.headers), len(series.headers[0])
    if labels.shape[2:] != (depth, frames):
        raise DataError(out_dir, f"labels of shape {labels.shape} for a series of {depth} slices x {frames} frames")
    out_dir = Path(out_dir)
    tmp_dir = staging_folder(out_dir)  # only a folder this tool wrote is ever replaced
    made_by = hd.AlgorithmIdentificationSequence(
        name=algorithm[:64], family=codes.cid7162.ArtificialIntelligence, version=version[:64]
    )
    segments = [
        hd.seg.SegmentDescription(
            number,
            label,
            codes.SCT.AnatomicalStructure,
            getattr(codes.SCT, code),
            "AUTOMATIC",
            algorithm_identification=made_by,
        )  # fmt: skip
        for number, label, code in SEGMENTS
    ]
    series_uid = generate_uid()
    number = int(series.headers[0][0].get("SeriesNumber") or 0) + SERIES_OFFSET
    written = []
    for t in range(frames):
        sources = [complete_header(series.headers[z][t]) for z in range(depth)]
        pixels = np.ascontiguousarray(np.transpose(labels[:, :, :, t], (2, 1, 0)).astype(np.uint8))  # [z, rows, cols]
        with warnings.catch_warnings(), refused_by_highdicom(out_dir, "SEG series", tmp_dir):
            warnings.simplefilter("ignore")
            seg = hd.seg.Segmentation(
                source_images=sources, pixel_array=pixels, segmentation_type="BINARY", segment_descriptions=segments,
                series_instance_uid=series_uid, series_number=number, sop_instance_uid=generate_uid(),
                instance_number=t + 1, manufacturer="heart-sr-tf", manufacturer_model_name=algorithm[:64],
                software_versions=__version__, device_serial_number="none", content_label="HEART_SR_LABELS",
                content_description=description(origin), omit_empty_frames=False,
            )  # fmt: skip
        seg.SeriesDescription = description(origin)
        try:
            seg.save_as(tmp_dir / f"SEG{t:04d}.dcm")
        except OSError as exc:
            raise DataError(out_dir, f"cannot write ({os_reason(exc)})") from None
        written.append(seg)
    write_marker(tmp_dir, series_uid)
    replace_folder(tmp_dir, out_dir)
    return written


@contextmanager
def refused_by_highdicom(out_dir: Path, what: str, tmp_dir: Path):
    """What highdicom refuses in a scanner's headers (a value its checks reject) as one line naming the output, the
    partial output removed."""
    try:
        yield
    except (ValueError, TypeError, AttributeError, KeyError, IndexError) as exc:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        reason = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        raise DataError(out_dir, f"cannot write the {what} from these headers ({reason})") from None


def complete_header(header):
    """A copy of a source image's header with the patient and study attributes a SEG or an SR copies present (empty
    where the image lacks them), and SliceThickness (Type 2); values that are no valid DICOM (a PatientSex of ``U``,
    a date such as ``19700000`` or ``2026-01-05``, as exports and anonymisers leave them) made valid or, where they
    say nothing certain, empty: highdicom refuses them, and the copy goes only into the SEG and the report."""
    header = copy.deepcopy(header)
    for keyword in (*PATIENT_AND_STUDY, "SliceThickness"):
        if keyword not in header:
            setattr(header, keyword, "")
    sex = str(header.PatientSex or "").strip().upper()
    header.PatientSex = sex if sex in ("M", "F", "O") else ""
    for keyword in ("PatientBirthDate", "StudyDate"):
        header[keyword].value = _valid_date(str(header[keyword].value or ""))
    if not re.fullmatch(r"\d{2}(\d{2}(\d{2}(\.\d{1,6})?)?)?", str(header.StudyTime or "").strip()):
        header.StudyTime = ""
    return header


def _valid_date(value: str) -> str:
    """A DICOM date (``YYYYMMDD``) from ``value`` (its separators dropped), or "" where it is no real date."""
    digits = re.sub(r"[-./ ]", "", value.strip())
    try:
        datetime.strptime(digits, "%Y%m%d")
    except ValueError:
        return ""
    return digits
