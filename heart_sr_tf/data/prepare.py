"""Build the ``acdc_sr`` TFDS dataset from an ACDC folder (or the phantoms)."""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import shutil
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from google.protobuf.json_format import ParseError

from heart_sr_tf.cache import building, cache_root
from heart_sr_tf.data.acdc import scan_patients
from heart_sr_tf.data.acdc_sr import ROIS, AcdcSr, scans_fingerprint, source_fingerprint, valid_patients
from heart_sr_tf.data.phantoms import write_phantoms
from heart_sr_tf.data.scan import ScanSource
from heart_sr_tf.data.scan_patients import group_scans, valid_scan_patients
from heart_sr_tf.errors import DataError, os_reason
from heart_sr_tf.outputs import check_place, left_as_found
from heart_sr_tf.progress import progress_bar


def default_data_dir(acdc_dir: Path) -> Path:
    """A data dir of its own for each source folder, so phantoms and ACDC never mix."""
    resolved = Path(acdc_dir).resolve()
    digest = hashlib.sha1(os.fsencode(resolved)).hexdigest()[:8]
    return cache_root() / "tfds" / f"{resolved.name}-{digest}"


def phantom_dir(patients: int = 10, seed: int = 0) -> Path:
    """The built-in phantoms, written on first use."""
    out = cache_root() / f"phantoms-n{patients}-s{seed}"
    done = out / "training" / f"patient{patients:03d}" / "Info.cfg"
    if not done.exists():
        with building(out):  # another process writing them: wait, then use its
            if not done.exists():
                tmp = out.with_name(out.name + ".tmp")
                shutil.rmtree(tmp, ignore_errors=True)
                write_phantoms(tmp, patients, seed)
                shutil.rmtree(out, ignore_errors=True)
                tmp.rename(out)
    return out


@dataclass
class PrepareReport:
    data_dir: Path
    counts: dict[str, dict[str, int]] = field(default_factory=dict)  # roi -> split -> slices
    patients: dict[str, int] = field(default_factory=dict)  # split -> patients
    bad: list[str] = field(default_factory=list)
    no_heart: list[str] = field(default_factory=list)  # scans where the segmenter drawing heart boxes found none
    notes: list[str] = field(default_factory=list)  # what reading the scans found and did (Scan.read_notes)


def builder(data_dir: Path, roi: str = "full", **kwargs) -> AcdcSr:
    """The acdc_sr builder of ``roi`` under ``data_dir``; a damaged prepared dataset (its dataset_info.json or
    features file unreadable) is one DataError that says how to rebuild it."""
    if roi not in ROIS:
        raise DataError(data_dir, f"unknown roi {roi!r}, expected one of {ROIS}")
    try:
        build = AcdcSr(config=roi, data_dir=str(data_dir), **kwargs)
        _ = build.info.metadata  # reads dataset_info.json when the dataset exists
        return build
    except (ValueError, KeyError, TypeError, OSError, ParseError) as exc:  # JSONDecodeError is a ValueError
        message = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
        raise DataError(
            data_dir, f"the prepared dataset is damaged ({message}); rebuild it with `prepare --force --data-dir`"
        ) from None


def prepare(
    acdc_dir: Path,
    data_dir: Path | None = None,
    seed: int = 0,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
) -> PrepareReport:
    """Build both configs (full slices and heart boxes). Existing builds are reused unless ``force``."""
    acdc_dir = Path(acdc_dir)
    data_dir = Path(data_dir) if data_dir else default_data_dir(acdc_dir)
    # One process at a time builds a data dir (another waits, then reuses it); a failed build leaves no empty one.
    with left_as_found(data_dir), building(data_dir):
        source = str(acdc_dir.resolve())
        force = _rebuild(data_dir, source, seed, lambda: source_fingerprint(acdc_dir), force, quiet)
        patients, bad = None, []
        if force or not is_prepared(data_dir):
            _check_writable(data_dir)  # before the long work
            total = len(scan_patients(acdc_dir)[0])
            with progress_bar(total, "check", "patient", disable=quiet) as bar:
                patients, errors = valid_patients(acdc_dir, strict=strict, on_patient=lambda pid: _tick(bar, pid))
            bad = [str(e) for e in errors]
            if not patients:
                raise DataError(acdc_dir, "no usable patients")
        return _build(data_dir, seed, patients, bad, acdc_dir, force, quiet)


def prepare_scans(
    listed: list[tuple[str, ScanSource | Path]],
    source: str,
    data_dir: Path | None = None,
    seed: int = 0,
    strict: bool = False,
    force: bool = False,
    quiet: bool = False,
    heart_box=None,
    boxes_by: str = "",
) -> PrepareReport:
    """The same dataset from a lab's own scans: ``listed`` holds ``(patient id, scan)`` pairs (NIfTI files or DICOM
    series; a :class:`ScanSource` may name one series of a folder), ``source`` says where they were found
    (recorded, and the default data dir's name). Without labels there are no heart boxes and the ``heart`` config is
    built empty, unless ``heart_box(scan) -> box or None`` draws each scan's (``boxes_by`` names what drew them: a
    segmenter, recorded with the dataset)."""
    patients = group_scans(listed)
    data_dir = Path(data_dir) if data_dir else default_data_dir(Path(source))
    # One process at a time builds a data dir (another waits, then reuses it); a failed build leaves no empty one.
    with left_as_found(data_dir), building(data_dir):
        fingerprint = scans_fingerprint(patients, boxes_by)
        force = _rebuild(data_dir, source, seed, lambda: fingerprint, force, quiet)
        good, bad = None, []
        report_boxes: list[str] = []
        notes: list[str] = []
        if force or not is_prepared(data_dir):
            _check_writable(data_dir)
            with progress_bar(len(patients), "check", "patient", disable=quiet) as bar:
                good, errors = valid_scan_patients(
                    patients, strict=strict, on_patient=lambda pid: _tick(bar, pid), notes=notes
                )
            bad = [str(e) for e in errors]
            if not good:
                raise DataError(source, "no usable scans")
            if heart_box is not None:
                good, report_boxes = _boxed(good, heart_box, quiet)
        folder = Path(os.path.commonpath([os.path.abspath(scan.path.parent) for p in patients for scan in p.scans]))
        extra = {"source": source, "fingerprint": fingerprint, "boxes_by": boxes_by}
        report = _build(data_dir, seed, good, bad, folder, force, quiet, **extra)
        report.no_heart = report_boxes
        report.notes = notes
        return report


def _boxed(patients, heart_box, quiet: bool):
    """The patients with each scan's heart box, and the scans where none was found."""
    boxed, missing = [], []
    with progress_bar(sum(len(p.scans) for p in patients), "heart boxes", "scan", disable=quiet) as bar:
        for patient in patients:
            boxes = []
            for scan in patient.scans:
                boxes.append(heart_box(scan))
                if boxes[-1] is None:
                    missing.append(str(scan))
                _tick(bar, patient.id)
            boxed.append(replace(patient, boxes=tuple(boxes)))
    return boxed, missing


def _rebuild(data_dir: Path, source: str, seed: int, fingerprint, force: bool, quiet: bool) -> bool:
    """Whether ``data_dir`` must be built (again): asked to, or its source's files changed since. A dataset built
    from another source or split seed is refused; half a dataset (an interrupted prepare) is rebuilt, as its other
    half may come from another source or seed."""
    if is_prepared(data_dir) and not force:
        metadata = builder(data_dir, "full").info.metadata
        built_source, built_seed = metadata.get("source"), metadata.get("split_seed", seed)
        if (built_source and built_source != source) or built_seed != seed:
            raise DataError(
                data_dir,
                f"holds a dataset built from {built_source} with split seed {built_seed}; "
                "pass --force to rebuild it or choose another --data-dir",
            )
        built = metadata.get("fingerprint")
        if built and built != fingerprint():
            if not quiet:
                print(f"{source}: changed since {data_dir} was built from it; rebuilding", file=sys.stderr)
            return True
    if not is_prepared(data_dir) and any((data_dir / "acdc_sr" / roi).exists() for roi in ROIS):
        return True
    return force


def _build(data_dir: Path, seed: int, patients, bad: list[str], manual_dir: Path, force: bool, quiet: bool, **extra):
    """Both configs of the dataset under ``data_dir`` from the checked ``patients`` (None: already built)."""
    import tensorflow_datasets as tfds

    tfds.disable_progress_bar()
    report = PrepareReport(data_dir=data_dir, bad=bad)
    for roi in ROIS:
        boxes = roi != "heart" or "source" not in extra or bool(extra.get("boxes_by"))  # else nothing to show
        with progress_bar(
            len(patients or []), f"prepare {roi}", "patient", disable=quiet or not patients or not boxes
        ) as bar:
            build = builder(
                data_dir, roi, split_seed=seed, patients=patients, on_patient=lambda pid: _tick(bar, pid), **extra
            )
            if force:
                shutil.rmtree(Path(build.data_dir), ignore_errors=True)
            with contextlib.redirect_stdout(io.StringIO()):  # TFDS's "Downloading ... Unknown size" lines: local files
                build.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=str(manual_dir)))
        report.counts[roi] = {name: int(split.num_examples) for name, split in build.info.splits.items()}
        assignment = dict(build.info.metadata.get("assignment", {}))
        report.patients = {s: sum(1 for v in assignment.values() if v == s) for s in ("train", "validation", "test")}
    return report


def _check_writable(data_dir: Path) -> None:
    """One DataError line when the dataset cannot be written under ``data_dir`` (read-only, not a folder)."""
    check_place(data_dir)
    probe = data_dir / f".heart-sr-probe-{os.getpid()}"
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise DataError(data_dir, f"cannot write the prepared dataset there ({os_reason(exc)})") from None


def _tick(bar, note: str) -> None:
    bar.set_postfix_str(note, refresh=False)
    bar.update(1)


def dataset_source(data_dir: Path) -> tuple[Path, int]:
    """The ACDC (or phantom) folder a prepared dataset was built from, and its split seed."""
    metadata = builder(data_dir, "full").info.metadata
    if metadata.get("kind") == "scans":
        raise DataError(
            data_dir,
            f"was prepared from a lab's scans ({metadata.get('source')}), which have no labels and no ACDC layout; "
            "this needs a dataset prepared from ACDC (`prepare --acdc-dir`); on a lab's own scans, "
            "`evaluate MODEL --scans PATH --clinical` measures against full resolution's segmentation",
        )
    if "source" not in metadata:
        raise DataError(data_dir, "the prepared dataset does not record its source folder; prepare it again")
    return Path(metadata["source"]), int(metadata.get("split_seed", 0))


def from_scans(data_dir: Path) -> bool:
    """Whether a prepared dataset was built from a lab's scans (``prepare --scans``), not from ACDC."""
    return builder(data_dir, "full").info.metadata.get("kind") == "scans"


def split_scans(data_dir: Path, split: str) -> list[tuple[str, ScanSource]]:
    """``(patient, scan)`` of every scan of ``split``'s patients in a dataset prepared from a lab's scans."""
    metadata = builder(data_dir, "full").info.metadata
    if metadata.get("kind") != "scans":
        raise DataError(data_dir, "was not prepared from a lab's scans (`prepare --scans`)")
    if "scans" not in metadata:
        raise DataError(data_dir, "does not record where its scans are (an older prepare): run prepare --scans --force")
    assignment = metadata.get("assignment", {})
    return [
        (patient, ScanSource(Path(path), series, label))
        for patient, scans in metadata["scans"].items()
        if assignment.get(patient) == split
        for path, series, label in scans
    ]


def split_assignment(data_dir: Path) -> dict[str, str]:
    """patient -> split of a prepared dataset."""
    return dict(builder(data_dir, "full").info.metadata.get("assignment", {}))


def is_prepared(data_dir: Path) -> bool:
    """Both configs are built under ``data_dir``."""
    return all((Path(data_dir) / "acdc_sr" / roi / str(AcdcSr.VERSION)).is_dir() for roi in ROIS)
