"""``cohort``: upscale every scan of a folder, glob or CSV manifest on a Dask cluster; checks come first."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.commands.model_roles import check_model_roles
from heart_sr_tf.errors import HeartSRError, UsageError
from heart_sr_tf.extras import import_extra
from heart_sr_tf.outputs import left_as_found, make_folder
from heart_sr_tf.path_text import one_line


def cohort(
    inputs: str, out_dir: Path, model, through_plane, through_plane_model, in_plane, backend, precision, batch_size,
    workers, scheduler, quiet, echo: Echo, measure: bool = False, segmenter=None, warn: Echo | None = None,
    dicom_out: bool = False, series=None,
) -> int:  # fmt: skip
    """Run the cohort; the exit status: 0 when every scan is done, 1 when some failed."""
    import_extra("distributed", "cohort runs on Dask: its distributed", "pip install -e '.[cohort]'")
    from heart_sr_tf.cache import compiled_limit
    from heart_sr_tf.cohort.jobs import find_jobs
    from heart_sr_tf.cohort.series_filter import SeriesFilter
    from heart_sr_tf.cohort.status import STATUS_NAME
    from heart_sr_tf.export.discovery import find_model, shipped_model_dirs
    from heart_sr_tf.export.layout import resolve_model_dir
    from heart_sr_tf.folder_lock import folder_lock
    from heart_sr_tf.inference.hardware import resolve_backend, resolve_precision
    from heart_sr_tf.inference.predictor import effective_precision
    from heart_sr_tf.training.runs import is_run_folder
    from heart_sr_tf.volumes.upscale import IN_PLANE_BATCH

    through_plane = through_plane or through_plane_model is not None
    if in_plane and not through_plane:
        raise UsageError("--in-plane goes with --through-plane (in-plane alone is the default)")
    if segmenter is not None and not measure:
        raise UsageError("--segmenter goes with --measure (it segments each result)")
    workers = _local_workers(workers, scheduler)
    check_model_roles(model if in_plane or not through_plane else None, through_plane_model)
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise HeartSRError(f"{out_dir}: is a file; --out-dir is a folder")
        others = [p for p in out_dir.iterdir() if not p.name.startswith(".heart-sr-")]  # (temporary files)
        if others and not (out_dir / STATUS_NAME).exists():
            raise HeartSRError(
                f"{out_dir}: holds files and no {STATUS_NAME}: not a cohort's folder; give a new --out-dir"
            )
    picked = series or SeriesFilter()
    notes: list[str] = []
    jobs = find_jobs(inputs, out_dir, quiet, dicom_out, picked, notes)
    measured_by = _check_measure(jobs, segmenter) if measure else None
    if measure and through_plane:
        from heart_sr_tf.volumes.measure import THROUGH_PLANE_CAUTION

        (warn or echo)(f"warning: {THROUGH_PLANE_CAUTION}")

    def resolved(path) -> str:
        found = find_model(Path(path)).resolve()
        return str(found if is_run_folder(found) else resolve_model_dir(found))

    options = {
        "model": resolved(model) if in_plane or not through_plane else None,
        "model_name": str(model),
        "in_plane": bool(in_plane),
        "through_plane": bool(through_plane),
        "through_plane_model": resolved(through_plane_model) if through_plane_model else None,
        "backend": resolve_backend(backend),
        "precision": resolve_precision(precision),  # (what the outputs were made with: part of a resume's check)
        "batch_size": batch_size or IN_PLANE_BATCH,
        "measure": measure,
        "segmenter": measured_by,
    }
    if precision == "auto":  # per model: bfloat16 (or a checked int8 twin) only where every model can run it
        models = [m for m in (options["model"], options["through_plane_model"]) if m]
        chosen = {effective_precision(m, options["backend"], "auto") for m in models}
        if "int8" in chosen and options["through_plane"] and not options["through_plane_model"]:
            chosen.add("float32")  # the through-plane model is chosen per scan: no int8 twin is known for it
        options["precision"] = chosen.pop() if len(chosen) == 1 else "float32"
    shipped_model_dirs()  # (a mistyped $HEART_SR_MODELS: one line now, not a failure per scan)
    if options["backend"] == "openvino":
        compiled_limit()  # (a bad $HEART_SR_COMPILED_CACHE_MB: one line now, not a failure per scan; local workers)
    with left_as_found(out_dir):  # a run that failed before writing anything leaves no folder
        make_folder(out_dir)  # (and one this process can write in)
        with folder_lock(out_dir, "cohort"):
            return _run(jobs, options, out_dir, inputs, scheduler, workers, quiet, echo, warn, measure, picked, notes)


def _run(jobs, options, out_dir, inputs, scheduler, workers, quiet, echo, warn, measure, picked, notes) -> int:
    """The checked cohort, run while this process holds its output folder's lock."""
    from heart_sr_tf.cohort.runner import run_cohort
    from heart_sr_tf.cohort.status import STATUS_NAME, StatusFile
    from heart_sr_tf.data.dicom import NOT_A_STACK

    where = scheduler or f"a local cluster of {workers} worker process(es)"
    echo(f"cohort: {len(jobs)} scan{'' if len(jobs) == 1 else 's'} from {inputs} -> {out_dir}, on {where}")
    for line in picked.lines():
        echo(f"cohort: {line}")
    for line in notes:
        echo(f"cohort: note: {line}")
    if elsewhere := StatusFile(out_dir).elsewhere(jobs):
        shown = ", ".join(Path(path).name for path in elsewhere[:5]) + (", ..." if len(elsewhere) > 5 else "")
        echo(f"cohort: note: {len(elsewhere)} result{'s' if len(elsewhere) > 1 else ''} in {out_dir} of scans not "
             f"among these inputs (removed, renamed or not given) left as they are ({shown}); {STATUS_NAME} lists "
             "them")  # fmt: skip
    try:
        summary = run_cohort(jobs, options, out_dir, scheduler, workers, quiet)
    except KeyboardInterrupt:
        echo(f"cohort: interrupted; what finished is in {out_dir / STATUS_NAME}: run the same command to resume")
        raise
    echo(f"cohort: {summary.line()}; status in {out_dir / STATUS_NAME}")
    if measure:
        from heart_sr_tf.cohort.measurements import write_measurements
        from heart_sr_tf.cohort.runner import options_key

        status, key = StatusFile(out_dir), options_key(options)  # this cohort's scans done with these options only
        table, count, note = write_measurements([job for job in jobs if status.is_done(job, key)], out_dir)
        echo(f"cohort: measurements of {count} scan(s) in {table} ({note})")
    else:
        from heart_sr_tf.cohort.measurements import MEASUREMENTS_NAME, write_measurements

        if (out_dir / MEASUREMENTS_NAME).is_file():  # an earlier --measure run's: results replaced since lost theirs
            table, count, _ = write_measurements(jobs, out_dir)
            echo(f"cohort: {table} rebuilt: {count} scan(s) still measured (a result replaced takes its own along)")
    for line in summary.warnings:
        (warn or echo)(f"warning: {line}")
    for line in summary.left_out:
        (warn or echo)(f"left out: {line}")
    for error in summary.failed:
        echo(one_line(f"failed: {error}"))
    if any(NOT_A_STACK in error for error in summary.failed) and picked.pattern is None:
        echo("cohort: a series that is no stack of parallel slices fails; --series-description '*sax*' (say) takes "
             "only the series to upscale")  # fmt: skip
    return 1 if summary.failed else 0


DEFAULT_WORKERS = 2


def _local_workers(workers: int | None, scheduler: str | None) -> int:
    """The local cluster's worker processes: ``--workers``, else 2 (or the cores when fewer). More than the cores
    is refused before any work: each process holds TensorFlow and the model (999 of them on 2 cores filled the
    process table and ended in a traceback after minutes of warnings), and they would only share the same cores."""
    from heart_sr_tf.hardware import usable_cores

    cores = usable_cores()
    if workers is None:
        return min(DEFAULT_WORKERS, cores)
    if workers < 1:
        raise UsageError(f"--workers: must be at least 1, got {workers}")
    if scheduler is None and workers > cores:
        raise UsageError(
            f"--workers {workers}: this machine gives the cohort {cores} core{'s' if cores > 1 else ''}; a local "
            "cluster takes at most one worker process per core (--scheduler runs a cluster of several machines)"
        )
    return workers


def _check_measure(jobs, segmenter) -> str:
    """Before any work: the segmenter is one (its metadata, without loading it; a SavedModel without heart-sr
    metadata is loaded to check its signature), and no scan's result is another scan's label map or volume table.
    Returns the segmenter's folder."""
    from heart_sr_tf.cohort.jobs import check_written
    from heart_sr_tf.inference.segmenter import Segmenter, segmenter_folder
    from heart_sr_tf.volumes.measure import measure_outputs, pacs_outputs

    try:
        folder, meta = segmenter_folder(segmenter or "segmenter")
        if not meta:  # a lab's own SavedModel: its signature is checked here, not by each worker on its first scan
            Segmenter(folder)
    except HeartSRError as exc:
        raise HeartSRError(f"--segmenter: {exc}") from None
    check_written(jobs, lambda job: [*measure_outputs(job.output), *(pacs_outputs(job.output) if job.dicom else [])])
    return str(folder.resolve())
