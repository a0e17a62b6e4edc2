"""Opening the run a ``train`` command works on: a new run from a config, or a saved run resumed exactly."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.config import SegmenterConfig, load_config
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.training.runs import Run


def open_segmenter_run(resume, config_path, acdc_dir, steps, runs_dir, name) -> Run:
    """``--resume`` reopens a segmenter run as saved; otherwise a new one on ``acdc_dir`` (default: phantoms)."""
    from heart_sr_tf.data.prepare import phantom_dir

    if resume is not None:
        given = {"--config": config_path, "--steps": steps, "--name": name}
        ignored = [option for option, value in given.items() if value is not None]
        if ignored:
            raise HeartSRError(f"--resume continues {resume} as saved; {', '.join(ignored)} would be ignored")
        run = Run.open(resume)
        if run.kind != "segmenter":
            raise HeartSRError(f"{resume}: a {run.kind} run; resume it with `train {run.kind}`")
        if acdc_dir is not None:
            run.use_data(acdc_dir)
        elif run.data_dir is None or not run.data_dir.is_dir():
            raise HeartSRError(f"{resume}: its data folder {run.data_dir} is gone; give --acdc-dir")
        return run
    config = load_config(config_path or "segmenter_cpu", SegmenterConfig)
    if steps is not None:
        config.train.steps = steps
    source = Path(acdc_dir) if acdc_dir is not None else phantom_dir()
    if not source.is_dir():
        raise HeartSRError(f"--acdc-dir: {source} is not a folder")
    return Run.create(runs_dir, name, config, "segmenter", source)
