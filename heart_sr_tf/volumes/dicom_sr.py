"""``--measure``'s cine measurements as a DICOM Structured Report, when the upscaled scan is a derived DICOM series:
the form in which a PACS stores and a reporting system reads measurements (a TID 1500 Imaging Measurement Report,
Comprehensive 3D SR, written by highdicom).

One report per cine, in a new series of the study (``OUT_sr/``), from an automatic algorithm named with the
segmenter's version (the device observer is this tool):

- one volumetric group per structure and phase, each referencing its segment of the SEG instance of that frame
  (``dicom_seg.py``): LV end-diastolic and end-systolic volume (LOINC 8821-1, 8823-7), RV end-diastolic and
  end-systolic volume (8822-9, 8824-5), and at ED the myocardium's mass (LOINC 18087-7, left ventricle mass) and
  mean wall thickness (DCM 122445);
- one group of the ejection fractions, LV and RV by MR (LOINC 8811-2, 8818-7).

The values are those of ``OUT_volumes.csv`` (ED the frame of largest LV volume, ES of smallest; the mass at
1.05 g/ml). A measurement the cine does not define (an RV the segmenter did not find) is left out, never written
as a number. The report is marked neither complete nor verified: it comes from an automatic segmenter trained on
ACDC, for a reader to check. Written to a temporary folder first and renamed when whole; only a folder this tool
wrote is ever replaced.
"""

from __future__ import annotations

import math
import shutil
import warnings
from pathlib import Path

from heart_sr_tf import __version__
from heart_sr_tf.data.dicom import DicomSeries
from heart_sr_tf.data.nifti import nifti_suffix
from heart_sr_tf.errors import DataError, os_reason
from heart_sr_tf.export.layout import OURS
from heart_sr_tf.volumes.dicom_seg import SEGMENTS, complete_header, refused_by_highdicom
from heart_sr_tf.volumes.dicom_writer import (
    SERIES_OFFSET,
    refuse_output_folder,
    replace_folder,
    staging_folder,
    write_marker,
)


def description(origin: str) -> str:
    """The series' description: whose automatic segmenter the measurements come from (``trained on ACDC``: ours)."""
    return f"heart-sr measurements (automatic segmenter {origin})"[:64]


SEGMENT_OF = {name: number for number, name, _ in SEGMENTS}  # "RV" -> 1, "myocardium" -> 2, "LV" -> 3
# (structure, phase, its measurements: (the key in cine_measurements, its code (scheme, value, meaning), its unit))
VOLUMETRIC = (
    ("LV", "ED", (("LVEDV_ml", ("LN", "8821-1", "Left Ventricular ED Volume"), ("ml", "milliliter")),)),
    ("LV", "ES", (("LVESV_ml", ("LN", "8823-7", "Left Ventricular ES Volume"), ("ml", "milliliter")),)),
    ("RV", "ED", (("RVEDV_ml", ("LN", "8822-9", "Right Ventricular ED Volume"), ("ml", "milliliter")),)),
    ("RV", "ES", (("RVESV_ml", ("LN", "8824-5", "Right Ventricular ES Volume"), ("ml", "milliliter")),)),
    ("myocardium", "ED", (
        ("myo_mass_g", ("LN", "18087-7", "Left Ventricle Mass"), ("g", "gram")),
        ("ED_wall_mm", ("DCM", "122445", "Wall Thickness"), ("mm", "millimeter")),
    )),
)  # fmt: skip
FRACTIONS = (
    ("LVEF_pct", ("LN", "8811-2", "Left ventricular ejection fraction by MR")),
    ("RVEF_pct", ("LN", "8818-7", "Right ventricular ejection fraction by MR")),
)


def sr_output(out_path: Path) -> Path | None:
    """Where ``--measure`` writes the report of a DICOM OUT (``OUT_sr/``); None for a NIfTI OUT."""
    out_path = Path(out_path)
    return None if nifti_suffix(out_path) is not None else out_path.with_name(f"{out_path.name}_sr")


def write_dicom_sr(
    series: DicomSeries,
    segs: list,
    measurements: dict,
    out_dir: Path,
    algorithm: str,
    version: str,
    origin: str = OURS,
) -> Path:
    """The cine ``measurements`` (``cardiac_metrics.cine_measurements``) of the derived ``series`` as a report in
    folder ``out_dir``, each volume referencing its segment in ``segs`` (the SEG instances, frame by frame)."""
    import highdicom as hd
    from pydicom.sr.codedict import codes
    from pydicom.uid import generate_uid

    if not math.isfinite(measurements.get("LVEDV_ml", math.nan)):
        raise DataError(out_dir, "no cine measurements to report (a single frame, or no LV found)")
    out_dir = Path(out_dir)
    tmp_dir = staging_folder(out_dir)  # only a folder this tool wrote is ever replaced
    made_by = hd.sr.AlgorithmIdentification(name=algorithm[:64], version=version[:64])
    frames = {"ED": int(measurements["ED_frame"]), "ES": int(measurements["ES_frame"])}
    groups = []
    for structure, phase, measures in VOLUMETRIC:
        values = [
            _measurement(hd, code, measurements[key], unit, made_by)
            for key, code, unit in measures
            if math.isfinite(measurements.get(key, math.nan))
        ]
        if not values:
            continue
        frame = frames[phase]
        groups.append(
            hd.sr.VolumetricROIMeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(
                    uid=generate_uid(), identifier=f"{structure} at {phase} (frame {frame})"
                ),
                referenced_segment=hd.sr.ReferencedSegment.from_segmentation(segs[frame - 1], SEGMENT_OF[structure]),
                finding_type=_finding(structure, codes),
                algorithm_id=made_by,
                measurements=values,
            )  # fmt: skip
        )
    fractions = [
        _measurement(hd, code, measurements[key], ("%", "percent"), made_by)
        for key, code in FRACTIONS
        if math.isfinite(measurements.get(key, math.nan))
    ]
    if fractions:
        groups.append(
            hd.sr.MeasurementsAndQualitativeEvaluations(
                tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="ejection fractions"),
                algorithm_id=made_by,
                measurements=fractions,
            )
        )
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=generate_uid(), name="heart-sr-tf", manufacturer_name="heart-sr-tf", model_name=algorithm[:64]
        ),
    )
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=codes.SCT.CardiacMRI,
        imaging_measurements=groups,
    )
    images = [complete_header(header) for column in series.headers for header in column]
    number = int(series.headers[0][0].get("SeriesNumber") or 0) + 2 * SERIES_OFFSET
    with warnings.catch_warnings(), refused_by_highdicom(out_dir, "measurement report", tmp_dir):
        warnings.simplefilter("ignore")
        sr = hd.sr.Comprehensive3DSR(
            evidence=[*segs, *images], content=report, series_instance_uid=generate_uid(), series_number=number,
            sop_instance_uid=generate_uid(), instance_number=1, manufacturer="heart-sr-tf",
            is_complete=False, is_verified=False, software_versions=__version__,
        )  # fmt: skip
    sr.SeriesDescription = description(origin)
    try:
        sr.save_as(tmp_dir / "SR0000.dcm")
    except OSError as exc:
        raise DataError(out_dir, f"cannot write ({os_reason(exc)})") from None
    write_marker(tmp_dir, sr.SeriesInstanceUID)
    return replace_folder(tmp_dir, out_dir)


def remove_report(out_dir: Path) -> None:
    """Remove an earlier report of this tool at ``out_dir`` (a cine re-measured with nothing to report), never a
    folder it did not write."""
    if Path(out_dir).exists():
        refuse_output_folder(out_dir, overwrite=True)
        shutil.rmtree(out_dir)


def _finding(structure: str, codes):
    return {"LV": codes.SCT.LeftVentricle, "RV": codes.SCT.RightVentricle}.get(
        structure, codes.SCT.LeftVentricleMyocardium
    )


def _measurement(hd, code: tuple, value: float, unit: tuple, made_by):
    scheme, concept, meaning = code
    return hd.sr.Measurement(
        name=hd.sr.CodedConcept(concept, scheme, meaning),
        value=round(float(value), 2),
        unit=hd.sr.CodedConcept(unit[0], "UCUM", unit[1]),
        algorithm_id=made_by,
    )
