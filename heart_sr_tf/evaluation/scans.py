"""Image quality on a lab's own scans (NIfTI files or DICOM series, no ACDC layout, no labels): every slice of
every frame on the protocol's grid is the HR image, degraded as the model's training data was, and the model is
scored next to that degradation's baselines exactly as on ACDC's stored slices (``evaluate.py``)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from heart_sr_tf.cardiac_metrics import too_few_slices
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.scan import ScanSource, as_source, read_scan
from heart_sr_tf.data.slices import HR_SIZE, scan_slices
from heart_sr_tf.errors import DataError
from heart_sr_tf.evaluation.evaluate import Evaluation, predict_slice
from heart_sr_tf.metrics import image_metrics
from heart_sr_tf.progress import progress_bar

NDIMS = (2, 3, 4)  # a single slice, a stack, a cine


@dataclass
class CheckedScans:
    """The scans that can be scored, each read and checked once before any work (and kept only as its shape: a
    lab's scans together may not fit in memory, so the work reads each again in its turn); and the one-line
    problem of each scan left out."""

    paths: list = field(default_factory=list)
    shapes: list[tuple[int, ...]] = field(default_factory=list)
    left_out: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # what reading the scored scans found and did (Scan.read_notes)

    def first(self, count: int | None) -> CheckedScans:
        """The first ``count`` usable scans (all when None)."""
        count = len(self.paths) if count is None else count
        return CheckedScans(self.paths[:count], self.shapes[:count], self.left_out)


def check_scans(paths: list, ndims=NDIMS, stacks_only: bool = False) -> CheckedScans:
    """Every scan read and checked. One that cannot be scored is left out with its problem: unreadable, not
    ``ndims``, a DICOM series that is no stack of parallel slices (the localiser of a study's export), or a scan
    this tool wrote (a cohort's results in the scans' folder, a derived series sent back to the PACS: no
    full-resolution reference, and scored as one it would flatter the model), a copy of a scan before it (the
    voxels alike: scored twice, it would weigh double); with ``stacks_only`` (clinical
    measurements), a scan of too few slices for a ventricular volume (a long-axis cine). None left is an error."""
    checked = CheckedScans()
    seen: dict[str, object] = {}  # the voxels' digest -> the first scan holding them
    for path in paths:
        try:
            scan = read_scan(path, ndims=ndims)
        except DataError as exc:
            checked.left_out.append(str(exc))
            continue
        made = scan.made_by_heart_sr()
        if made is not None:
            checked.left_out.append(f"{path}: was written by heart-sr ({made!r}), not acquired: no reference")
            continue
        why = too_few_slices(scan.data.shape[2] if scan.data.ndim >= 3 else 1) if stacks_only else None
        if why is not None:
            checked.left_out.append(f"{path}: not measured: {why}")
            continue
        if (first := seen.setdefault(scan.voxel_digest(), path)) is not path:  # the same scan exported twice
            checked.left_out.append(f"{path}: holds the voxels of {first}, a copy: scored once")
            continue
        checked.paths.append(path)
        checked.shapes.append(scan.data.shape)
        checked.notes += scan.read_notes()
    if not checked.paths:
        raise DataError(
            paths[0] if len(paths) == 1 else "--scans", f"no scan can be scored: {'; '.join(checked.left_out)[:600]}"
        )
    return checked


def coarse_scans(checked: CheckedScans, degradation: Degradation) -> list[str]:
    """A line for each checked scan whose slices hold fewer pixels across than the degradation's input on the
    protocol grid (86x86 for x3): such a slice is enlarged to 256x256 before it is degraded, so its "full
    resolution" is an interpolation with less detail than the model's input, and its scores flatter every method.
    Scored still (the choice is the user's), but said. Across slices the in-plane size does not count."""
    if degradation.kind == "through_plane":
        return []
    side = -(-HR_SIZE // degradation.factor)
    return [
        f"{path}: in-plane {shape[0]}x{shape[1]} pixels, fewer than the {side}x{side} the x{degradation.factor} "
        f"degradation leaves of a {HR_SIZE}x{HR_SIZE} protocol slice: the slice is enlarged before it is degraded, "
        "so its scores measure the restoring of an interpolation, not of the scan"
        for path, shape in zip(checked.paths, checked.shapes, strict=True)
        if min(shape[:2]) < side
    ]


def evaluate_scans(
    predictor,
    checked: CheckedScans,
    degradation: Degradation,
    limit: int | None = None,
    quiet: bool = False,
) -> Evaluation:
    """Score the model and its degradation's baselines on every slice of every frame of the ``checked`` scans (at
    most ``limit`` slices in all). Each scan counts as a patient. (``evaluate --scans --clinical`` scores the same
    slices in its one pass: ``scans_clinical``.)"""
    paths, shapes = checked.paths, checked.shapes
    total = sum(int(np.prod(shape[2:])) for shape in shapes)
    total = min(total, limit or total)
    result = Evaluation(split="scans", source=predictor.source, degradation=degradation)
    rng = np.random.default_rng(0)
    done = 0
    with progress_bar(total, "evaluate scans", "slice", disable=quiet) as bar:
        for name, path in zip(scan_names(paths), paths, strict=True):
            for z, frame, hr in scan_slices(read_scan(path, ndims=NDIMS).data):
                if done == total:
                    return result
                done += 1
                _, hr, outputs = predict_slice(predictor, hr, degradation, rng)
                meta = {"patient": name, "slice": z, "frame": frame}
                for method, image in outputs.items():
                    result.rows.append({"roi": "scans", "method": method, **meta, **image_metrics(image, hr)})
                bar.update(1)
    return result


def scan_names(paths: list) -> list[str]:
    """Each scan's name in the tables: its file or folder name (and which series of the folder), with its parent
    folders when two would clash."""
    sources: list[ScanSource] = [as_source(p) for p in paths]
    short = [source.name for source in sources]
    full = [str(s.path) if s.series is None else f"{s.path}/{s.label or s.series}" for s in sources]
    return [long if short.count(n) > 1 else n for long, n in zip(full, short, strict=True)]
