"""``export``: a run's generator, or an exported model rebuilt from its metadata (a bfloat16 twin, wrappers
added), written as a new SavedModel version for TF Serving."""

from __future__ import annotations

from pathlib import Path


def export_model(run_dir, name, version, out, data_consistency, self_ensemble, precision, step=None) -> str:
    """Write the export (a run's latest checkpoint, or that of ``step``); returns the line that says what went
    where."""
    from heart_sr_tf.config import dump_toml
    from heart_sr_tf.export.discovery import find_model
    from heart_sr_tf.export.wrappers import WRAPPERS, recorded, wrap
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.inference.predictor import load_run
    from heart_sr_tf.training.runs import is_run_folder

    if name is not None:  # before any work: a name with a / would write the export outside --out
        from heart_sr_tf.names import check_folder_name

        check_folder_name(name, "--name", "the model's name, one folder under --out (TF Serving's model folder)")
    source = find_model(run_dir)
    if step is not None and not is_run_folder(source):
        from heart_sr_tf.errors import HeartSRError

        raise HeartSRError(f"--step: picks a checkpoint of a training run; {source} is an exported model")
    if precision == "int8":
        return _export_int8(source, name, version, out, data_consistency or self_ensemble)
    if is_run_folder(source) and _kind(source) == "segmenter":
        return _export_segmenter(source, name, version, out, data_consistency or self_ensemble, precision, step)
    if is_run_folder(source):
        predictor = load_run(source, precision, step)
        run = predictor.run
        metadata = {
            "scale": run.config.degradation.factor,
            "run": str(run.folder),
            "checkpoint": predictor.info["checkpoint"],
            "config": dump_toml(run.config),
            "metrics": run.metrics_at(predictor.info["checkpoint"]),  # (of the exported step, which --step chose)
        }
        generator, degradation, default_name = predictor.generator, predictor.degradation, run.folder.name
        what = f"{run.folder} ({Path(predictor.info['checkpoint']).name})"
        carried = {}
    else:
        from heart_sr_tf.data.degradation import Degradation
        from heart_sr_tf.export.layout import read_metadata, resolve_model_dir
        from heart_sr_tf.export.reader import export_config, load_exported_weights
        from heart_sr_tf.models.registry import build_generator

        folder = resolve_model_dir(source)
        exported = read_metadata(folder)
        dropped = ("degradation", "precision", *WRAPPERS)  # recorded anew below
        metadata = {k: v for k, v in exported.items() if k not in dropped}
        carried = recorded(exported)  # its wrappers are applied again
        degradation = Degradation.from_metadata(exported, str(folder))  # (first: it names a model of other code)
        generator = build_generator(export_config(metadata, folder), precision)
        load_exported_weights(folder, generator)
        default_name = folder.parent.name + ("_bf16" if precision == "bfloat16" else "")
        metadata["exported_from"] = str(folder)
        what = str(folder)
    chosen = {"data_consistency": data_consistency, "self_ensemble": self_ensemble}
    chosen = {key: value or carried.get(key, False) for key, value in chosen.items()}
    generator = wrap(generator, degradation, what, **chosen)
    metadata.update({key: True for key, value in chosen.items() if value})
    metadata["precision"] = precision
    target = export_generator(generator, out, name or default_name, version, metadata, degradation)
    wrappers = [key.replace("_", "-") for key, value in chosen.items() if value]  # (carried from an export too)
    return f"exported {what} to {target} ({', '.join([precision, *wrappers])})"


def _export_int8(source: Path, name, version, out, wrapper: bool) -> str:
    """The int8 twin that ``quantize`` made, as OpenVINO Model Server reads it: ``OUT/NAME/VERSION/model.xml``
    and ``model.bin``, with the export's metadata (precision int8) in ``assets.extra``."""
    import shutil

    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.export.layout import read_metadata, resolve_model_dir
    from heart_sr_tf.export.writer import write_version
    from heart_sr_tf.inference.openvino_backend import INT8_KIND, cached_ir
    from heart_sr_tf.training.runs import is_run_folder

    if is_run_folder(source):
        raise HeartSRError(f"{source}: a training run; export it, quantize the export, then export it as int8")
    if wrapper:
        raise HeartSRError(
            "--precision int8: exports the quantised model as it is (no --data-consistency, --self-ensemble)"
        )
    folder = resolve_model_dir(source)
    ir = cached_ir(folder, INT8_KIND)
    if ir is None:
        raise HeartSRError(
            f"{folder}: no int8 model yet; make one with `python cli.py quantize {folder} --acdc-dir DIR`"
        )
    metadata = {**read_metadata(folder), "precision": "int8", "runtime": "openvino", "exported_from": str(folder)}

    def write(path: Path) -> None:
        path.mkdir()
        shutil.copy2(ir, path / "model.xml")
        shutil.copy2(ir.with_suffix(".bin"), path / "model.bin")

    target = write_version(out, name or folder.parent.name + "_int8", version, metadata, write)
    return f"exported {folder} (its int8 twin) to {target} (int8, OpenVINO IR for OpenVINO Model Server)"


def _kind(folder: Path) -> str:
    from heart_sr_tf.training.runs import Run

    return Run.open(folder).kind


def _export_segmenter(folder: Path, name, version, out, wrapper: bool, precision: str, step=None) -> str:
    """A segmenter run's network at its latest checkpoint (or ``step``'s), with its validation Dice in the
    metadata."""
    from heart_sr_tf.config import dump_toml
    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.export.segmenter import export_segmenter
    from heart_sr_tf.models.registry import make_segmenter
    from heart_sr_tf.training.runs import Run

    if wrapper or precision != "float32":
        raise HeartSRError(f"{folder}: a segmenter exports as it is (no --data-consistency, --self-ensemble, bfloat16)")
    run = Run.open(folder)
    network = make_segmenter(run.config)
    checkpoint = run.restore_network(network, "network", step)
    metadata = {
        "run": str(run.folder),
        "checkpoint": checkpoint,
        "config": dump_toml(run.config),
        "metrics": run.metrics_at(checkpoint),
    }
    target = export_segmenter(network, run.config.network.depth, out, name or "segmenter", version, metadata)
    return f"exported {run.folder} ({Path(checkpoint).name}) to {target} (segmenter)"
