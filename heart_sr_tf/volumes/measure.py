"""``upscale --measure``: segment an upscaled scan and measure it, as a lab's pipeline would.

Each frame goes through the intensity protocol and its slices are resized to the 256x256 protocol grid (cv2
bicubic), where the segmenter was trained. A field of view smaller than ACDC's (a crop around the heart) would
be magnified there beyond anything the segmenter saw, so such a slice is resized to ACDC's typical grid pixel
(``data/slices.GRID_PIXEL_MM``) instead and placed in the middle of the 256x256 grid on background. The labels
(largest 3D component per structure; in slices made between acquired ones, parts apart by less than an acquired
slab count as one) go back to the scan's grid with nearest neighbour and are written beside OUT;
each frame's row says which share of every structure's labelled voxels that component kept, and a share under
``KEPT_WARNING`` is a warning naming the frame (the structure came in pieces, and the piece kept may not be the
heart's). The scan as acquired (the upscaling's input) is segmented the same way on the same grid, and its
measurements stand beside the upscaled scan's: what the lab's pipeline measures without super-resolution.
Volumes are counted on the grid (each voxel's volume from the scan's spacing), and the mean LV wall thickness is
measured there too (``cardiac_metrics.wall_thickness_mm``, with the grid's pixel size). In a cine, ED is the frame
of largest LV volume and ES the frame of smallest; the ejection fractions follow. The numbers come from an
automatic segmenter trained on ACDC, and every output says so.
"""

from __future__ import annotations

import csv
from pathlib import Path

import cv2
import numpy as np

from heart_sr_tf.cardiac_metrics import (
    KEPT_WARNING,
    STRUCTURES,
    body_surface_area,
    cine_measurements,
    kept_percent,
    plausible_body,
    too_few_slices,
    volumes_ml,
    wall_thickness_mm,
)
from heart_sr_tf.data.intensity import intensity_window, normalise, padding_mask
from heart_sr_tf.data.nifti import load_image, nifti_suffix, same_kind, write_nifti
from heart_sr_tf.data.scan import Scan, nifti_made_by_heart_sr, read_scan
from heart_sr_tf.data.slices import HR_SIZE, grid_axis
from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.export.layout import OURS
from heart_sr_tf.outputs import occupied, place_file, refuse_existing, refuse_input, same_file
from heart_sr_tf.progress import progress_bar
from heart_sr_tf.volumes.dicom_seg import seg_output, write_dicom_seg
from heart_sr_tf.volumes.dicom_sr import remove_report, sr_output, write_dicom_sr
from heart_sr_tf.volumes.dicom_writer import refuse_output_folder

NOTE_START = "volumes from an automatic segmenter"  # how a volume table of ours begins


def volumes_note(segmenter) -> str:
    """What a volume table says of its numbers: which segmenter (ours, trained on ACDC; or the lab's own, named
    by its folder), on which grid, and that they are no clinical measurement."""
    named = "" if segmenter.origin == OURS else f" ({segmenter.folder})"
    return (
        f"{NOTE_START} {segmenter.origin}{named}, on the 256x256 protocol grid; not a clinical measurement: check "
        "the label map"
    )


def unmeasurable(scan: Scan) -> str | None:
    """Why ``scan`` gives no ventricular volumes (too few slices: a long-axis cine, a single slice; NaN voxels,
    which the segmenter cannot read: read with ``allow_nan``), else None."""
    few = too_few_slices(scan.data.shape[2] if scan.data.ndim >= 3 else 1)
    if few is not None:
        return few
    nan = np.isnan(scan.data)
    if not nan.any():
        return None
    first = ", ".join(str(int(i)) for i in np.unravel_index(int(np.argmax(nan)), nan.shape))
    return (
        f"{int(np.count_nonzero(nan)):,} voxels are NaN (no value), the first at ({first}): the segmenter needs a "
        "value in every voxel; replace them (a resampling tool's NaN padding with 0, say), or upscale without "
        "--measure, which keeps them NaN"
    )


def measure_outputs(out_path: Path) -> tuple[Path, Path]:
    """Where ``--measure`` writes: ``OUT_labels.nii.gz`` and ``OUT_volumes.csv`` beside OUT."""
    name, suffix = out_path.name, nifti_suffix(out_path)
    stem = name[: -len(suffix)] if suffix else name  # (a DICOM folder has none)
    return out_path.with_name(f"{stem}_labels.nii.gz"), out_path.with_name(f"{stem}_volumes.csv")


def foreign_outputs(out_path: Path, measure: bool = False) -> list[Path]:
    """The files where ``upscale`` (with ``measure``: and ``--measure``) would write OUT that this tool did not
    write: a NIfTI whose ``descrip`` is not heart-sr's (or unreadable), a volumes table without its note. A cohort
    replaces its own earlier results only. (A DICOM OUT folder checks itself: ``refuse_output_folder``.)"""
    files = [Path(out_path)] if nifti_suffix(Path(out_path)) else []
    paths = [*files, *(measure_outputs(Path(out_path)) if measure else ())]
    return [path for path in paths if occupied(path) and not (path.is_file() and _ours(path))]


def remove_measurements(out_path: Path, keep: Path | None = None) -> list[Path]:
    """``--measure``'s files of an earlier result at OUT, removed once a new result has replaced it: a label map
    and volumes measured on another result (another model, other options) must never sit beside this one as its
    own. Only this tool's files go (a label map whose header says so, a volume table with its note, a SEG or report
    folder holding nothing but what the tool wrote); anything else stays, and so does ``keep`` (the input scan:
    an earlier result's label map can be upscaled in turn). Returns what was removed."""
    removed = []
    for path in measure_outputs(Path(out_path)):
        if keep is not None and same_file(path, keep):
            continue
        if path.is_file() and not path.is_symlink() and _ours(path):
            path.unlink()
            removed.append(path)
    for folder in pacs_outputs(Path(out_path)):
        if folder.is_dir() and not folder.is_symlink():
            try:
                remove_report(folder)  # (refuses a folder that is not the tool's own, or holds others' files)
            except HeartSRError:
                continue
            removed.append(folder)
    return removed


def _ours(path: Path) -> bool:
    try:
        if path.suffix == ".csv":
            with path.open(encoding="utf-8") as handle:
                return handle.readline().startswith(f"# {NOTE_START}")
        return nifti_made_by_heart_sr(load_image(path)[0].header) is not None  # the header only, not the voxels
    except (OSError, ValueError, UnicodeDecodeError, DataError):  # (unreadable: no output of ours)
        return False


def check_measure_outputs(out_path: Path, overwrite: bool, in_path: Path | None = None) -> None:
    """Before any work: ``--measure``'s files beside OUT, none of them the input scan ``in_path``."""
    for path, what in zip(measure_outputs(out_path), ("--measure's label map", "--measure's table"), strict=True):
        refuse_input(path, in_path, what)
        refuse_existing(path, overwrite)
    for folder in pacs_outputs(out_path):
        refuse_output_folder(folder, overwrite)


def pacs_outputs(out_path: Path) -> list[Path]:
    """The folders ``--measure`` writes beside a DICOM OUT for the PACS: the SEG series (``OUT_seg/``) and the
    measurement report (``OUT_sr/``); none for a NIfTI OUT."""
    return [folder for folder in (seg_output(out_path), sr_output(out_path)) if folder is not None]


THROUGH_PLANE_CAUTION = (
    "--measure after --through-plane: volumes over the slices made between the acquired ones measure a little "
    "worse than the acquired slices (on ACDC's test patients, against their labels: LVEDV error +1.9 ml, RVEF "
    "error +1.6 points; on patient090 the RVEF is 31.3 % against 35.9 %); report the scan as acquired's columns"
)
ACQUIRED = "acquired_"  # the prefix of the scan-as-acquired columns
ACQUIRED_NOTE = (
    f"{ACQUIRED}* columns: the same segmenter on the scan as acquired (the upscaling's input) on the same grid, "
    "as the lab's pipeline measures it without super-resolution"
)


def measure_scan(
    scan: Path,
    segmenter,
    quiet: bool = False,
    acquired: Scan | None = None,
    body: tuple[float, float] | None = None,
    body_source: str = "the given",
    overwrite: bool = False,
) -> tuple[Path, Path, list[dict], list[str]]:
    """Segment every frame of ``scan`` (an upscaled NIfTI or DICOM series) and write its label map (NIfTI; and
    for a DICOM series, a DICOM SEG series and a DICOM SR report of the cine's measurements beside it:
    :mod:`~heart_sr_tf.volumes.dicom_seg`, :mod:`~heart_sr_tf.volumes.dicom_sr`) and volume table;
    returns their paths, the cine's summary and the warnings on the frames to check. With ``acquired`` (the scan
    it was upscaled from, with as many frames), that scan is measured too, and its values stand beside the
    upscaled scan's in the table and the summary. ``body``: the patient's height (m) and weight (kg) given by hand
    (a cohort's manifest, ``upscale``'s options: ``body_source`` says which), which index the volumes to the body
    surface area (else a DICOM header's, where it gives both). The label map and the table never replace a file
    that appeared at their paths while the frames were segmented, unless ``overwrite``."""
    read = read_scan(scan, ndims=(3, 4), axis=None if acquired is None else acquired.slice_axis)
    count = read.data.shape[3] if read.data.ndim == 4 else 1
    if acquired is not None and (acquired.data.shape[3] if acquired.data.ndim == 4 else 1) != count:
        acquired = None  # not one frame for one frame: nothing to set side by side
    with progress_bar(count * (1 if acquired is None else 2), "measure", "frame", disable=quiet) as bar:
        labels, rows, warnings = _segmented(read, segmenter, bar, made_between(read, acquired))
        if acquired is not None:
            _, before, acquired_warnings = _segmented(acquired, segmenter, bar)
            warnings += [f"the scan as acquired, {line}" for line in acquired_warnings]
            for row, old in zip(rows, before, strict=True):
                row.update({f"{ACQUIRED}{k}": old[k] for k in (*(f"{n}_ml" for n in STRUCTURES), "LV_wall_mm")})
    if (line := placeholder_voxels(acquired if acquired is not None else read)) is not None:
        warnings.insert(0, line)
    labels_path, csv_path = measure_outputs(Path(scan))
    image = read.image
    header = image.header.copy()
    header.set_data_dtype(np.uint8)
    header.set_slope_inter(1.0, 0.0)
    header["descrip"] = b"heart-sr labels: 0 background, 1 RV, 2 myocardium, 3 LV (automatic)"
    if read.dicom is not None:  # a derived DICOM series: the labels as a SEG series and the cine's measurements
        folder = Path(segmenter.folder)  # as a report beside it, for the PACS
        algorithm = f"heart-sr-tf {folder.parent.name}"
        segs = write_dicom_seg(read.dicom, labels, seg_output(Path(scan)), algorithm, folder.name, segmenter.origin)
        measured = cine_measurements(rows)
        if np.isfinite(measured["LVEDV_ml"]):
            report = sr_output(Path(scan))
            write_dicom_sr(read.dicom, segs, measured, report, algorithm, folder.name, segmenter.origin)
        else:  # nothing to report: an earlier run's report of this OUT would be stale
            remove_report(sr_output(Path(scan)))
    labels, _ = read.file_layout(labels if read.data.ndim == 4 else labels[..., 0])
    _atomic_save(same_kind(image, labels, image.affine, header), labels_path, overwrite)
    given = body is not None
    body = body if given else patient_body(read)
    source = body_source if given else "the DICOM header's"
    summary = _cine_summary(rows, body, source) if count > 1 else []
    if acquired is not None and count > 1:
        summary = _side_by_side(summary, _cine_summary(before, body, source))
    tmp = csv_path.with_name(f".{csv_path.name}.part")
    with tmp.open("w", newline="") as f:
        f.write(f"# {volumes_note(segmenter)}\n")
        if body is not None:
            f.write(f"# {BSA_KEY}: {body_surface_area(*body):.4f} (Mosteller, from {source} height "
                    f"{body[0]:.2f} m and weight {body[1]:.1f} kg)\n")  # fmt: skip
        if acquired is not None:
            f.write(f"# {ACQUIRED_NOTE}\n")
        kept_columns = [f"{k}_kept" for k in STRUCTURES]
        columns = ["frame", "phase", *(f"{k}_ml" for k in STRUCTURES), "LV_wall_mm", *kept_columns]
        if acquired is not None:
            columns += [f"{ACQUIRED}{k}_ml" for k in STRUCTURES] + [f"{ACQUIRED}LV_wall_mm"]
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        phases: dict[int, str] = {}
        for line in summary:
            if "frame" in line:
                phases[line["frame"]] = "/".join(filter(None, [phases.get(line["frame"]), line["phase"]]))
        for row in rows:
            writer.writerow({**row, "phase": phases.get(row["frame"], "")})
        for line in summary:
            if "measure" in line:
                f.write(f"# {line['measure']}: {line['value']}\n")
    try:
        place_file(tmp, csv_path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
    return labels_path, csv_path, summary, warnings


def made_between(read: Scan, acquired: Scan | None) -> int:
    """How many slices of ``read`` lie between two of ``acquired``'s (its slices thinner: across-slice
    upscaling), 0 when the spacing is the acquisition's or unknown."""
    if acquired is None or read.zooms[2] <= 0:
        return 0
    return max(0, int(round(float(acquired.zooms[2]) / float(read.zooms[2]))) - 1)


def _segmented(read: Scan, segmenter, bar, bridge: int = 0) -> tuple[np.ndarray, list[dict], list[str]]:
    """Every frame of one scan on the protocol grid, segmented: the labels on the scan's own grid, one row of
    measurements per frame, and the warnings on the frames to check. Parts of a structure apart by at most
    ``bridge`` slices count as one (``inference.segmenter.largest_components``): a gap thinner than the
    acquisition resolved, in slices made between acquired ones, never drops the part beyond it."""
    data, zooms = read.data, read.zooms
    frames = data[..., None] if data.ndim == 3 else data
    nx, ny, nz, count = frames.shape
    (gx, ox), (gy, oy) = (grid_axis(n, zoom) for n, zoom in ((nx, zooms[0]), (ny, zooms[1])))
    pixel_mm = (zooms[0] * nx / gx, zooms[1] * ny / gy)
    voxel_ml = pixel_mm[0] * pixel_mm[1] * zooms[2] / 1000.0
    labels = np.zeros(frames.shape, np.uint8)
    rows, warnings = [], []
    for t in range(count):
        volume = frames[..., t]
        scaled = normalise(volume, intensity_window(volume, padding_mask(volume)))
        grid = np.zeros((nz, HR_SIZE, HR_SIZE), np.float32)
        for z in range(nz):
            resized = cv2.resize(scaled[:, :, z], (gy, gx), interpolation=cv2.INTER_CUBIC)
            grid[z, ox : ox + gx, oy : oy + gy] = np.clip(resized, 0.0, 1.0)
        segmented, kept, _ = segmenter.volume_and_kept(grid, bridge)
        warnings += kept_warnings(t + 1, kept)
        back = [cv2.resize(s[ox : ox + gx, oy : oy + gy], (ny, nx), interpolation=cv2.INTER_NEAREST) for s in segmented]
        labels[..., t] = np.stack(back, 2)
        volumes = volumes_ml(segmented, voxel_ml)
        wall = wall_thickness_mm(segmented, pixel_mm)
        rows.append(
            {
                "frame": t + 1,
                **{f"{k}_ml": round(v, 2) for k, v in volumes.items()},
                "LV_wall_mm": round(wall, 2) if np.isfinite(wall) else "",
                **{f"{k}_kept": round(v, 3) for k, v in kept.items()},
            }
        )
        bar.update(1)
    return labels, rows, warnings


def placeholder_voxels(scan: Scan) -> str | None:
    """The warning for a NIfTI scan whose voxels are exactly 1 x 1 x 1 mm: what converters write when they know
    no voxel size, and no short-axis cine's (its slices lie 5 to 10 mm apart). The volumes would then count voxels,
    not millilitres."""
    if scan.dicom is not None or not np.allclose(scan.zooms[:3], 1.0, rtol=0, atol=1e-6):
        return None
    return (
        f"{scan.path}: its header gives voxels of exactly 1 x 1 x 1 mm, which no short-axis cine has (its slices lie "
        "5 to 10 mm apart): a converter's placeholder? the volumes assume those voxels; check the voxel size"
    )


def _side_by_side(summary: list[dict], acquired: list[dict]) -> list[dict]:
    """The upscaled scan's summary, each measure followed by the scan as acquired's in brackets."""
    values = {line["measure"]: line["value"] for line in acquired if "measure" in line}
    return [
        {**line, "value": f"{line['value']} (the scan as acquired: {values.get(line['measure'], 'n/a')})"}
        if "measure" in line and line["measure"] != BSA
        else line
        for line in summary
    ]


def kept_warnings(frame: int, kept: dict[str, float]) -> list[str]:
    """One line per structure whose kept share is under ``KEPT_WARNING``."""
    return [
        f"frame {frame}: the {name}'s largest component holds {kept_percent(share)} of the voxels labelled "
        f"{name}; the rest lies apart from it: check the label map"
        for name, share in kept.items()
        if share < KEPT_WARNING
    ]


BSA_KEY = "BSA_m2"  # the volume table's comment line giving the patient's body surface area, where known


def read_body_surface(csv_path: Path) -> float | None:
    """The body surface area (m2) an ``OUT_volumes.csv`` was written with, or None (not known)."""
    with Path(csv_path).open(newline="") as f:
        for line in f:
            if line.startswith(f"# {BSA_KEY}: "):
                return float(line.split()[2])
    return None


def read_note(csv_path: Path) -> str:
    """The note a volume table of ours begins with (:func:`volumes_note`: which segmenter measured)."""
    with Path(csv_path).open(newline="") as f:
        return f.readline().removeprefix("# ").rstrip("\n")


def read_volumes(csv_path: Path) -> list[dict]:
    """The frame rows of an ``OUT_volumes.csv`` written by ``measure_scan`` (its comment lines skipped)."""
    with Path(csv_path).open(newline="") as f:
        return list(csv.DictReader(line for line in f if not line.startswith("#")))


BSA = "body surface area (Mosteller)"  # the summary's line, one patient's for both scans


def patient_body(scan: Scan) -> tuple[float, float] | None:
    """The patient's height (m) and weight (kg) as a DICOM series' header gives them (PatientSize,
    PatientWeight), when both are there and plausible; None otherwise (and for NIfTI, which holds neither)."""
    if scan.dicom is None:
        return None
    header = scan.dicom.headers[0][0]
    try:
        height, weight = float(header.get("PatientSize") or 0), float(header.get("PatientWeight") or 0)
    except (TypeError, ValueError):
        return None
    return (height, weight) if plausible_body(height, weight) else None


def _cine_summary(
    rows: list[dict], body: tuple[float, float] | None = None, source: str = "the DICOM header's"
) -> list[dict]:
    """ED (largest LV) and ES (smallest LV), the ventricles' volumes there and their ejection fractions, the
    myocardial mass and wall thickness at ED; volumes and mass also indexed to the body surface area where the
    patient's height and weight (``body``) are known."""
    m = cine_measurements(rows)
    if not np.isfinite(m["LVEDV_ml"]):
        return [{"measure": "LVEF", "value": "n/a: the segmenter found no LV in any frame"}]
    bsa = body_surface_area(*body) if body is not None else None

    def text(value: float, unit: str) -> str:
        return f"{value:.1f} {unit}" if np.isfinite(value) else "n/a"

    def volumes(ed: float, es: float) -> str:
        if not (np.isfinite(ed) and np.isfinite(es)):
            return "n/a"
        return f"{ed:.1f} / {es:.1f} ml" + (f" ({ed / bsa:.1f} / {es / bsa:.1f} ml/m2)" if bsa else "")

    mass = text(m["myo_mass_g"], "g")
    if bsa and np.isfinite(m["myo_mass_g"]):
        mass += f" ({m['myo_mass_g'] / bsa:.1f} g/m2)"
    lines = [
        {"frame": m["ED_frame"], "phase": "ED"},
        {"frame": m["ES_frame"], "phase": "ES"},
        {"measure": "ED frame", "value": m["ED_frame"]},
        {"measure": "ES frame", "value": m["ES_frame"]},
        {"measure": "LV end-diastolic / end-systolic volume", "value": volumes(m["LVEDV_ml"], m["LVESV_ml"])},
        {"measure": "LVEF", "value": text(m["LVEF_pct"], "%")},
        {"measure": "RV volumes at the LV's ED / ES", "value": volumes(m["RVEDV_ml"], m["RVESV_ml"])},
        {"measure": "RVEF (RV volumes at the LV's ED and ES)", "value": text(m["RVEF_pct"], "%")},
        {"measure": "myocardial mass at ED", "value": mass},
        {"measure": "mean LV wall thickness at ED", "value": text(m["ED_wall_mm"], "mm")},
    ]
    if bsa:
        lines.append(
            {"measure": BSA, "value": f"{bsa:.2f} m2, from {source} height "
             f"{body[0]:.2f} m and weight {body[1]:.1f} kg"}
        )  # fmt: skip
    return lines


def _atomic_save(image, path: Path, overwrite: bool) -> None:
    tmp = path.with_name(f".{path.name}.part.nii.gz")
    try:
        write_nifti(image, tmp, path.name)
        place_file(tmp, path, overwrite)
    finally:
        tmp.unlink(missing_ok=True)
