"""``upscale``: which models run where (local backend and precision, or a server), in which directions, and with
what checks, before any long work; then the scan is upscaled by ``volumes.upscale``."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.cardiac_metrics import given_body
from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.commands.model_roles import check_model_roles
from heart_sr_tf.errors import HeartSRError, UsageError
from heart_sr_tf.inference.predictor import load_local_model as load_model
from heart_sr_tf.volumes.through_plane import THROUGH_PLANE_BATCH
from heart_sr_tf.volumes.upscale import IN_PLANE_BATCH


def upscale_scan(
    in_path: Path, out_path: str, model, server, scale, batch_size, through_plane, through_plane_model,
    through_plane_server, in_plane, backend, precision, quiet, echo: Echo, warn: Echo, overwrite: bool = False,
    measure: bool = False, segmenter=None, series: int | str | None = None, repeated_slices: str = "apart",
    height_cm: str | None = None, weight_kg: str | None = None, slice_thickness: float | None = None,
):  # fmt: skip
    from heart_sr_tf.data.dicom import is_dicom, latest_stack
    from heart_sr_tf.data.dicom_zip import is_zip_export
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.inference.hardware import resolve_backend, resolve_precision
    from heart_sr_tf.startup import import_tensorflow_quietly
    from heart_sr_tf.volumes.upscale import refuse_any_output, upscale_file

    across_slices = through_plane or through_plane_model or through_plane_server
    body = given_body(height_cm, weight_kg, "upscale", ("--height-cm", "--weight-kg"))  # before any work
    if body is not None and not measure:
        raise UsageError("--height-cm and --weight-kg go with --measure")
    if scale is not None and across_slices and not in_plane:
        raise UsageError("--scale goes with the in-plane model (--model or --server), not across the slices alone")
    if segmenter is not None and not measure:
        raise UsageError("--segmenter goes with --measure (it segments the result)")
    if slice_thickness is not None and not across_slices:
        raise UsageError("--slice-thickness goes with --through-plane (it chooses the model across the slices)")
    if (
        repeated_slices == "latest"
        and series is None
        and in_path.exists()
        and (is_dicom(in_path) or is_zip_export(in_path))
    ):
        series, lines = latest_stack(in_path)  # a stack with a slice acquired again: its latest series picked
        for line in lines:
            echo(f"note: {line}")
    scan = read_scan(  # before any model loads; NaN voxels stay NaN (--measure refuses them below: unmeasurable)
        in_path, ndims=(3, 4) if across_slices else (2, 3, 4), series=series, allow_nan=True
    )
    if measure:
        from heart_sr_tf.volumes.measure import unmeasurable

        if (why := unmeasurable(scan)) is not None:
            raise HeartSRError(f"--measure: {in_path}: {why}")
    refuse_any_output(scan, out_path, overwrite)
    check_model_roles(  # the scan and OUT checked, and before any model loads: each local model is one for its step
        model if (in_plane or not across_slices) and not server else None,
        through_plane_model if not through_plane_server else None,
    )
    if scan.dicom is not None:
        echo(f"read {scan.dicom.description}: {' x '.join(map(str, scan.data.shape))} (x, y, slices, phases)")
    if scan.slice_axis != 2:
        z = scan.zooms
        echo(
            f"{in_path}: its slices run along axis {scan.slice_axis} ({z[2]:g} mm apart; in-plane {z[0]:g} x "
            f"{z[1]:g} mm): upscaled in the plane of the other two axes, written back in the file's axis order"
        )
    for line in scan.warnings():
        warn(f"warning: {line}")
    seg = None
    if measure:
        from heart_sr_tf.volumes.measure import check_measure_outputs

        check_measure_outputs(Path(out_path), overwrite, in_path)
        import_tensorflow_quietly()
        from heart_sr_tf.inference.segmenter import Segmenter

        seg = Segmenter(segmenter or "segmenter")
        if across_slices:
            from heart_sr_tf.volumes.measure import THROUGH_PLANE_CAUTION

            warn(f"warning: {THROUGH_PLANE_CAUTION}")
    if through_plane_model is not None and through_plane_server:
        raise UsageError("give --through-plane-model or --through-plane-server, not both")
    through_plane = through_plane or through_plane_model is not None or bool(through_plane_server)
    if in_plane and not through_plane:
        raise UsageError("--in-plane goes with --through-plane (in-plane alone is the default)")
    if through_plane and server and not in_plane:
        raise UsageError(
            "--server serves the in-plane model: add --in-plane, or give a served through-plane model with "
            "--through-plane-server"
        )
    backend = resolve_backend(backend)
    if backend == "tensorflow":
        import_tensorflow_quietly()
    resolve_precision(precision)  # an unknown name refused before any work; "auto" is resolved per model
    across = None
    if through_plane:
        across = _through_plane(
            scan, through_plane_model, through_plane_server, batch_size, backend, precision, echo, warn,
            slice_thickness,
        )  # fmt: skip
    predictor = None
    if in_plane or not through_plane:
        if server:
            from heart_sr_tf.inference.remote import rest_predictor

            predictor = rest_predictor(server, scale)
            echo(
                f"model: {server}, x{predictor.scale} (learnt from one small request; TF Serving does not report "
                "a model's degradation: the served model decides)"
            )
        else:
            predictor = load_model(model, backend, precision)
            if scale is not None and predictor.scale != scale:  # before any work, as for a server
                raise HeartSRError(
                    f"{predictor.source}: the model upscales x{predictor.scale}, not x{scale} as --scale says"
                )
            echo(
                f"model: {predictor.source}, trained for {predictor.degradation.describe()}; "
                f"{predictor.backend}, {predictor.precision}"
            )
            if precision == "auto" and predictor.precision == "int8":
                _say_int8(predictor.source, backend, echo)
    written = upscale_file(
        scan, out_path, predictor, batch_size=batch_size or IN_PLANE_BATCH, quiet=quiet, through_plane=across,
        overwrite=overwrite,
    )  # fmt: skip
    done = [f"x{across.g} across slices"] if across else []
    done += [f"x{predictor.scale} in-plane with {predictor.source}"] if predictor else []
    echo(f"wrote {written} ({', then '.join(done)})")
    from heart_sr_tf.volumes.measure import remove_measurements

    if (removed := remove_measurements(Path(written), keep=in_path)) and seg is None:
        echo(f"removed {', '.join(map(str, removed))}: the measurements of the result {written} replaced")
    if seg is not None:
        from heart_sr_tf.volumes.dicom_seg import seg_output
        from heart_sr_tf.volumes.dicom_sr import sr_output
        from heart_sr_tf.volumes.measure import measure_scan, volumes_note

        labels, table, summary, warnings = measure_scan(
            Path(written),
            seg,
            quiet=quiet,
            acquired=scan,
            body=body,
            body_source="--height-cm/--weight-kg:",
            overwrite=overwrite,
        )
        for line in summary:
            if "measure" in line:
                echo(f"{line['measure']}: {line['value']}")
        for line in warnings:
            warn(line)
        echo(f"wrote {labels} and {table} ({volumes_note(seg)})")
        if (seg_dir := seg_output(Path(written))) is not None:
            echo(f"wrote {seg_dir} (the labels as a DICOM SEG series, one instance per frame, for the PACS)")
        if (sr_dir := sr_output(Path(written))) is not None and sr_dir.is_dir():
            echo(f"wrote {sr_dir} (the measurements as a DICOM SR measurement report, for the PACS)")
    return written


def _through_plane(scan, model, server, batch_size, backend, precision, echo, warn, slice_thickness=None):
    """The through-plane step, its model chosen from the scan's slice spacing and thickness (``slice_thickness``
    in mm, else the header's) unless given; the scan is checked first (at least 2 slices), before any model
    loads."""
    from heart_sr_tf.errors import DataError
    from heart_sr_tf.export.discovery import shipped_model_dirs
    from heart_sr_tf.volumes.through_plane import Thickness, ThroughPlane, choose_model, header_thickness

    in_path, zooms = scan.path, scan.zooms
    given = slice_thickness is not None
    thickness = Thickness(slice_thickness, "--slice-thickness") if given else header_thickness(scan)
    if scan.data.shape[2] < 2:
        raise DataError(in_path, f"through-plane upscaling needs at least 2 slices, got {scan.data.shape[2]}")
    if server:
        from heart_sr_tf.inference.remote import rest_predictor

        served = rest_predictor(server, through_plane=True)
        _warn_far_ratio(in_path, zooms, served.scale, warn)
        across = ThroughPlane(served, batch_size=batch_size or IN_PLANE_BATCH)
    else:
        if model is None:
            choice = choose_model(zooms, shipped_model_dirs(), thickness)
            model = choice.path
            _warn_far_ratio(in_path, zooms, choice.g, warn)
        across = ThroughPlane(load_model(model, backend, precision), batch_size=batch_size or THROUGH_PLANE_BATCH)
    echo(f"across slices: {across.describe(zooms, thickness)}")
    if (line := across.mismatch(zooms, thickness)) is not None:
        warn(f"warning: {in_path}: {line}")
    if precision == "auto" and not server and across.predictor.precision == "int8":
        _say_int8(across.predictor.source, backend, echo)
    return across


def _say_int8(source, backend, echo: Echo) -> None:
    """Why ``--precision auto`` runs this model's int8 twin: the check it passed, and the CPU."""
    from heart_sr_tf.hardware import cpu_model
    from heart_sr_tf.inference.predictor import checked_int8_twin

    check = checked_int8_twin(source, backend) or {}
    echo(
        f"int8: no native bfloat16 on this CPU ({cpu_model()}), and `quantize` found {source}'s int8 twin within "
        f"its limits ({-float(check.get('psnr_loss_db', 0)):+.3f} dB PSNR, {-float(check.get('ssim_loss', 0)):+.4f}"
        " SSIM against float32); --precision float32 runs the float model"
    )


def _warn_far_ratio(in_path, zooms, g: int, warn) -> None:
    from heart_sr_tf.volumes.through_plane import slice_ratio

    ratio = slice_ratio(zooms)
    if abs(g - ratio) > 1:
        warn(
            f"warning: {in_path}: its slice spacing is {ratio:.2f} in-plane pixels, but the through-plane model "
            f"has g = {g}; the result is less reliable"
        )
