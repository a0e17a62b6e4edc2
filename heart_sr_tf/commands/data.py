"""``phantoms`` and ``prepare``, and the data every other command trains or scores on."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.data.prepare import is_prepared, phantom_dir, prepare
from heart_sr_tf.errors import DataError, HeartSRError


def write_phantoms(out: Path, patients: int, seed: int) -> list[Path]:
    from heart_sr_tf.data.phantoms import write_phantoms as write

    return write(out, patients, seed)


def prepare_dataset(
    acdc_dir: Path | None,
    data_dir: Path | None,
    seed: int,
    strict: bool,
    force: bool,
    echo,
    warn,
    scans=None,
    heart_boxes: Path | None = None,
    series=None,
):
    """Build the acdc_sr dataset from ``acdc_dir`` (default: the phantoms), or from a lab's own ``scans`` (their
    heart boxes drawn by the segmenter ``heart_boxes``, if given), and print what it holds."""
    if heart_boxes is not None and scans is None:
        raise HeartSRError("--heart-boxes: draws the heart boxes of --scans; ACDC's come from its labels")
    if series is not None and scans is None:
        raise HeartSRError(f"{series.options()}: picks series among --scans")
    if scans is not None:
        report = _prepare_scans(scans, acdc_dir, data_dir, seed, strict, force, echo, heart_boxes, series, warn)
    else:
        report = prepare(acdc_dir or phantom_dir(), data_dir, seed=seed, strict=strict, force=force)
    echo(f"dataset: {report.data_dir}")
    for roi, counts in report.counts.items():
        parts = ", ".join(f"{split} {counts.get(split, 0)}" for split in ("train", "validation", "test"))
        if scans is not None and roi == "heart" and heart_boxes is None:
            parts = "none (scans without labels have no heart boxes: train and evaluate on full slices)"
        elif roi == "heart" and not any(counts.values()):
            parts = "none (no patient has labels, *_gt.nii.gz, so no heart boxes: train and evaluate on full slices)"
        echo(f"{roi:5s} slices: {parts}")
    echo("patients: " + ", ".join(f"{k} {v}" for k, v in report.patients.items()))
    if scans is not None:  # a lab's patients: which ones it may choose on, and which ones it reports on
        from heart_sr_tf.data.prepare import split_assignment

        assignment = split_assignment(report.data_dir)
        for split in ("validation", "test"):
            chosen = sorted(p for p, s in assignment.items() if s == split)
            shown = ", ".join(chosen[:20]) + (f" and {len(chosen) - 20} more" if len(chosen) > 20 else "")
            echo(f"{split} patients: {shown}")
    for line in report.notes:
        warn(f"note: {line}")
    if report.no_heart:
        warn(f"the segmenter found no heart in {len(report.no_heart)} scan(s): their slices are in no heart box:")
        for line in report.no_heart:
            warn(f"  {line}")
    if report.bad:
        warn(f"skipped {len(report.bad)} bad {'scan' if scans is not None else 'patient'}(s):")
        for line in report.bad:
            warn(f"  {line}")
    return report


def _prepare_scans(
    scans: str, acdc_dir, data_dir, seed: int, strict: bool, force: bool, echo, heart_boxes, series, warn
):  # fmt: skip
    from heart_sr_tf.cohort.patients import find_scan_patients
    from heart_sr_tf.cohort.series_filter import SeriesFilter
    from heart_sr_tf.data.prepare import prepare_scans

    if acdc_dir is not None:
        raise HeartSRError("--scans and --acdc-dir: give one source of the dataset")
    chosen = series or SeriesFilter()
    notes: list[str] = []
    listed = find_scan_patients(scans, series=chosen, notes=notes)
    for line in chosen.lines():
        warn(line)
    for line in notes:
        echo(line)
    source = str(Path(scans).resolve()) if Path(scans).exists() else str(Path.cwd() / scans)
    patients = len({pid for pid, _ in listed})
    echo(f"scans: {len(listed)} of {patients} patient(s) under {source}")
    if patients < 3:
        raise HeartSRError(
            f"--scans {scans}: {patients} patient(s); training needs at least one each for train, validation and "
            "test (name a patient per scan with a manifest's patient column if its scans are of several patients)"
        )
    drawn = {}
    if heart_boxes is not None:
        from heart_sr_tf.data.scan_patients import read_training_scan
        from heart_sr_tf.evaluation.scans_clinical import segmented_heart_box
        from heart_sr_tf.inference.segmenter import Segmenter

        segmenter = Segmenter(Path(heart_boxes))  # a bad one refused before any work
        echo(f"heart boxes: drawn by {segmenter.folder} (an automatic segmenter, in the place of labels)")
        drawn = {
            "heart_box": lambda path: segmented_heart_box(segmenter, read_training_scan(path)),
            "boxes_by": str(segmenter.folder.resolve()),
        }
    return prepare_scans(listed, source, data_dir, seed=seed, strict=strict, force=force, **drawn)


def _holds_patients(folder: Path) -> bool:
    """Whether ``folder`` is an ACDC folder (patientXXX folders with their Info.cfg)."""
    from heart_sr_tf.data.acdc import scan_patients

    try:
        return bool(scan_patients(folder)[0])
    except DataError:
        return False


def resolve_data(
    acdc_dir: Path | None, data_dir: Path | None, seed: int = 0, phantom_patients: int = 10, warn: Echo = print
) -> Path:
    """A prepared dataset: ``--data-dir`` as is, else ``--acdc-dir`` (or the phantoms) prepared on first use."""
    if data_dir is not None and acdc_dir is None:
        if not is_prepared(data_dir):
            if _holds_patients(data_dir):  # the raw ACDC folder given where its prepared dataset goes
                raise HeartSRError(
                    f"--data-dir {data_dir}: an ACDC folder, not a prepared dataset: give it as --acdc-dir "
                    "(prepared on first use)"
                )
            raise HeartSRError(
                f"{data_dir}: no prepared acdc_sr dataset; prepare it with "
                f"`python cli.py prepare --acdc-dir ACDC_DIR --data-dir {data_dir}`"
            )
        return data_dir
    source = acdc_dir or phantom_dir(phantom_patients)
    report = prepare(source, data_dir, seed=seed, quiet=False)
    for line in report.bad:
        warn(f"skipped: {line}")
    return report.data_dir
