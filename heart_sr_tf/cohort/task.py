"""What a Dask worker runs for one scan: ``upscale`` with the cohort's options (and ``--measure``'s segmentation
of the result and of the scan as acquired). The worker process keeps its predictors and its segmenter between
tasks (one model load per worker, not per scan)."""

from __future__ import annotations

import threading
import time
from pathlib import Path

_ONE_AT_A_TIME = threading.Lock()  # a worker with several threads shares its predictors, which are not thread-safe
# (an OpenVINO infer request serves one call at a time): its scans run one after another, each using every core
LEFT_OUT = "left out"  # a scan's status when it is none to upscale: this tool's own result, a localiser, phase
# images
_PREDICTORS: dict = {}  # per worker process: (kind, model, backend, precision) -> predictor or through-plane step


def upscale_task(
    scan, output: str, options: dict, body: tuple[float, float] | None = None, thickness_mm: float | None = None
) -> dict:
    """Upscale one scan (a path, or a :class:`ScanSource` naming one series of a folder); never raises for a bad
    scan: ``{"status": "failed", "error": one line}``. ``body``: the patient's height (m) and weight (kg) from the
    manifest, for ``--measure``; ``thickness_mm``: its slice thickness from the manifest, for ``--through-plane``
    (else the scan's header or sidecar says it). A done scan's
    result carries the lines ``upscale`` would have warned with (``warnings``): a label map given as the scan, a
    segmentation in pieces; and the models it went through (``model``: the through-plane one is chosen per scan,
    by its spacing and slice thickness)."""
    start = time.perf_counter()
    try:
        from heart_sr_tf.data.scan import read_scan
        from heart_sr_tf.startup import import_tensorflow_quietly
        from heart_sr_tf.volumes.upscale import model_label, upscale_file

        if options["backend"] == "tensorflow" or options.get("measure"):  # (the segmenter runs in TensorFlow)
            import_tensorflow_quietly()  # the worker's stderr is the user's terminal: no start-up noise

        with _ONE_AT_A_TIME:
            ndims = (3, 4) if options["through_plane"] else (2, 3, 4)
            data = read_scan(scan, ndims=ndims, allow_nan=True)  # NaN stays NaN (as upscale), not measured
            made = data.made_by_heart_sr()
            if made is not None:  # a result sent back beside the scans (a derived series in a PACS export)
                line = f"{scan}: was written by heart-sr ({made!r}); not upscaled again"
                return {"status": LEFT_OUT, "seconds": time.perf_counter() - start, "error": line}
            warnings = data.warnings()
            across = None
            if options["through_plane"]:
                from heart_sr_tf.volumes.through_plane import Thickness, header_thickness

                given = thickness_mm is not None
                thickness = Thickness(thickness_mm, "the manifest's") if given else header_thickness(data)
                across = _through_plane(options, data.zooms, thickness)
                warnings += [f"{scan}: {line}" for line in (across.mismatch(data.zooms, thickness),) if line]
            from heart_sr_tf.outputs import occupied
            from heart_sr_tf.volumes.measure import foreign_outputs, measure_outputs, remove_measurements

            if foreign := foreign_outputs(Path(output), bool(options.get("measure"))):  # replaced only if ours
                line = f"{foreign[0]}: exists and was not written by heart-sr; move it away (a cohort replaces only "
                line += "its own results)"
                return {"status": "failed", "seconds": time.perf_counter() - start, "error": line}
            # Replaced: the cohort's own earlier results (a resumed scan), only at the paths they stand at now; a
            # file that appears at another while the model runs is kept, and this scan fails naming it.
            ours = occupied(Path(output))
            measured = [path for path in measure_outputs(Path(output)) if occupied(path)]
            predictor = _in_plane(options) if options["in_plane"] or not options["through_plane"] else None
            upscale_file(
                data, output, predictor, batch_size=options["batch_size"], quiet=True, through_plane=across,
                overwrite=ours,
            )  # fmt: skip
            remove_measurements(Path(output))  # (an earlier result's, measured on another model or options)
            if options.get("measure"):
                from heart_sr_tf.volumes.measure import measure_scan, unmeasurable

                if (why := unmeasurable(data)) is not None:
                    warnings.append(f"{scan}: not measured: {why}")
                else:
                    seg = _segmenter(options["segmenter"])
                    found = measure_scan(
                        Path(output),
                        seg,
                        quiet=True,
                        acquired=data,
                        body=body,
                        body_source="the manifest's",
                        overwrite=any(occupied(path) for path in measured),  # (ours, not removed: as above)
                    )[3]
                    warnings += [f"{output}: {line}" for line in found]
        used = [model_label(across.predictor.source)] if across is not None else []  # (across the slices first)
        used += [model_label(predictor.source)] if predictor is not None else []
        return {
            "status": "done",
            "seconds": time.perf_counter() - start,
            "warnings": warnings,
            "model": " + ".join(used),
        }
    except Exception as exc:  # one bad scan is a row in the status file, never the end of the cohort
        from heart_sr_tf.errors import HeartSRError, NoCine
        from heart_sr_tf.path_text import one_line

        ours = isinstance(exc, HeartSRError)  # one line, a name's line break in it escaped; another's first line
        message = one_line(str(exc))[:300] if ours else (str(exc).splitlines() or [""])[0][:300]
        if isinstance(exc, NoCine):  # a localiser, phase images: no cine to upscale
            return {"status": LEFT_OUT, "seconds": time.perf_counter() - start, "error": f"{message}: not upscaled"}
        if not ours:  # (a HeartSRError's line names the file already)
            message = one_line(f"{scan}: {type(exc).__name__}: {message}")
        return {"status": "failed", "seconds": time.perf_counter() - start, "error": message}


def _in_plane(options: dict):
    key = ("in-plane", options["model"], options["backend"], options["precision"])
    if key not in _PREDICTORS:
        from heart_sr_tf.inference.predictor import load_local_model

        _PREDICTORS[key] = load_local_model(Path(options["model"]), options["backend"], options["precision"])
    return _PREDICTORS[key]


def _through_plane(options: dict, zooms, thickness):
    """The given through-plane model, else the shipped one whose g is nearest this scan's slice ratio and whose
    slab is nearest its slice ``thickness`` (a DICOM header's; contiguous slices when not stated)."""
    model = options["through_plane_model"]
    if model is None:
        from heart_sr_tf.export.discovery import shipped_model_dirs
        from heart_sr_tf.volumes.through_plane import choose_model

        model = str(choose_model(zooms, shipped_model_dirs(), thickness).path)
    key = ("through-plane", model, options["backend"], options["precision"])
    if key not in _PREDICTORS:
        from heart_sr_tf.inference.predictor import load_local_model
        from heart_sr_tf.volumes.through_plane import THROUGH_PLANE_BATCH, ThroughPlane

        predictor = load_local_model(Path(model), options["backend"], options["precision"])
        _PREDICTORS[key] = ThroughPlane(predictor, batch_size=options["batch_size"] or THROUGH_PLANE_BATCH)
    return _PREDICTORS[key]


def _segmenter(path: str):
    key = ("segmenter", path)
    if key not in _PREDICTORS:
        from heart_sr_tf.inference.segmenter import Segmenter

        _PREDICTORS[key] = Segmenter(Path(path))
    return _PREDICTORS[key]
