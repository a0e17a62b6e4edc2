"""``train srgan``, ``train wgan``, ``train segmenter`` and ``sweep srgan``: the run to train (a new one from a
config, its data prepared and its overrides checked before any training, or a saved one resumed exactly), then
the training, summed up in lines for the terminal."""

from __future__ import annotations

import contextlib
from pathlib import Path

from heart_sr_tf.commands.data import resolve_data
from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.config import CONFIG_CLASSES, SegmenterConfig, load_config
from heart_sr_tf.errors import DataError, HeartSRError


@contextlib.contextmanager
def held(run, new: bool):
    """``run`` held by this process for the block (:meth:`Run.held`: a second process training it is refused);
    a new run that fails or is interrupted before its first checkpoint leaves no folder behind."""
    with run.held():
        try:
            yield run
        except BaseException:
            if new:
                run.discard_if_untrained()
            raise


def _saved(folder, kind: str):
    """The saved run at ``folder``, refused unless it is a ``kind`` run."""
    from heart_sr_tf.training.runs import Run

    run = Run.open(folder)
    if run.kind != kind:
        raise HeartSRError(f"{folder}: a {run.kind} run; resume it with `train {run.kind}`")
    return run


@contextlib.contextmanager
def _resumed(run, data, give: str):
    """A saved run held for the block, on ``data`` when given (recorded once it is held), else on its own data
    folder, which must still be there (``give`` names the options that would replace it)."""
    with held(run, new=False):
        if data is not None:
            run.use_data(data)
        elif run.data_dir is None or not run.data_dir.is_dir():
            raise HeartSRError(f"{run.folder}: its data folder {run.data_dir} is gone; give {give}")
        yield run


@contextlib.contextmanager
def this_workers_options(options: dict, strategy: str, echo: Echo):
    """Under ``--strategy multiworker`` only the chief writes the run (TensorFlow's pattern). Every other worker
    trains on a private copy in a temporary folder, removed at the end: it saves checkpoints only because saving
    is a collective operation. All workers may then be given the same ``--name`` or ``--resume`` folder."""
    import shutil
    import tempfile

    from heart_sr_tf.folder_lock import lock_name
    from heart_sr_tf.training.distribute import cluster_config, is_chief

    cluster_config()  # (a mistyped TF_CONFIG: one line before any run folder is made)
    if strategy != "multiworker" or is_chief():
        yield options
        return
    private = Path(tempfile.mkdtemp(prefix="heart-sr-worker-"))
    try:
        options = dict(options)
        if options.get("resume") is not None:
            copy = private / Path(options["resume"]).name
            shutil.copytree(options["resume"], copy, ignore=shutil.ignore_patterns(lock_name("train")))
            options["resume"] = copy
        else:
            options["runs_dir"] = private
        echo("not the chief worker: the chief writes the run; this worker's checkpoints go to a temporary folder")
        yield options
    finally:
        shutil.rmtree(private, ignore_errors=True)


@contextlib.contextmanager
def opened_run(
    kind: str, resume, config_path, default_config, acdc_dir, data_dir, steps, epochs, lr, seed=None, warn=print, **new
):
    """``--resume`` reopens a run exactly as saved (refusing options it would ignore); otherwise a new run. It is
    held for the block (:func:`held`)."""
    from heart_sr_tf.training.overrides import apply_overrides
    from heart_sr_tf.training.runs import Run, check_new_run

    if resume is not None:
        given = {"--config": config_path, "--steps": steps, "--epochs": epochs, "--lr": lr, "--seed": seed}
        given.update({f"--{k.replace('_', '-')}": v for k, v in new.items() if k != "runs_dir"})
        ignored = [option for option, value in given.items() if value is not None]
        if ignored:
            raise HeartSRError(
                f"--resume continues {resume} as saved; {', '.join(ignored)} would be ignored "
                f"(to extend the run, raise the steps in {Path(resume) / 'config.toml'})"
            )
        run = _saved(resume, kind)
        data = resolve_data(acdc_dir, data_dir, warn=warn) if acdc_dir is not None or data_dir is not None else None
        with _resumed(run, data, "--data-dir or --acdc-dir"):
            yield run
        return
    config = load_config(config_path or default_config, CONFIG_CLASSES[kind])
    if new.get("name"):
        check_new_run(Path(new["runs_dir"]) / new["name"])  # before the data is prepared
    dims = new.pop("dims", None)
    if dims is not None and config.data.dims != dims:
        raise HeartSRError(f"{config_path}: data.dims is {config.data.dims} but --dims {dims} was given")
    data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients, warn=warn)
    config = apply_overrides(config, data, steps, epochs, lr)
    if seed is not None:
        config.train.seed = seed
    run = Run.create(new.pop("runs_dir"), new.pop("name"), config, kind, data, new.pop("init_from", None))
    with held(run, new=True):
        yield run


@contextlib.contextmanager
def opened_segmenter_run(resume, config_path, acdc_dir, steps, runs_dir, name):
    """``--resume`` reopens a segmenter run as saved; otherwise a new one on ``acdc_dir`` (default: phantoms),
    whose labelled frames it reads directly. It is held for the block (:func:`held`)."""
    from heart_sr_tf.data.prepare import phantom_dir
    from heart_sr_tf.training.runs import Run

    if resume is not None:
        given = {"--config": config_path, "--steps": steps, "--name": name}
        ignored = [option for option, value in given.items() if value is not None]
        if ignored:
            raise HeartSRError(f"--resume continues {resume} as saved; {', '.join(ignored)} would be ignored")
        run = _saved(resume, "segmenter")
        with _resumed(run, acdc_dir, "--acdc-dir"):
            yield run
        return
    config = load_config(config_path or "segmenter_cpu", SegmenterConfig)
    if steps is not None:
        config.train.steps = steps
    source = Path(acdc_dir) if acdc_dir is not None else phantom_dir()
    if not source.is_dir():
        raise HeartSRError(f"--acdc-dir: {source} is not a folder")
    run = Run.create(runs_dir, name, config, "segmenter", source)
    with held(run, new=True):
        yield run


def _check_init_from(options: dict) -> None:
    """Before the data is prepared: ``--init-from`` is a run folder, or an export whose metadata says what it was
    trained for (a SavedModel without it was refused only after the data was prepared)."""
    from heart_sr_tf.inference.predictor import model_degradation

    init_from = options.get("init_from")
    if init_from is None:
        return
    if not Path(init_from).exists():
        raise HeartSRError(f"{init_from}: no such run or model for --init-from")
    model_degradation(Path(init_from))  # (a run's config, or an export's metadata, read without TensorFlow)


def clinical_validation(run, quiet: bool, echo: Echo):
    """The run's clinical validation, when its config names a segmenter (``train.clinical_segmenter``): set up
    before any training, on the raw ACDC folder its prepared data came from, or on the validation patients' scans
    of a dataset prepared from a lab's scans (against full resolution's segmentation: they have no labels)."""
    name = run.config.train.clinical_segmenter
    if not name:
        return None
    from heart_sr_tf.data.prepare import dataset_source, from_scans
    from heart_sr_tf.evaluation.clinical_validation import ClinicalValidation
    from heart_sr_tf.inference.segmenter import Segmenter

    segmenter = Segmenter(Path(name))
    config = run.config
    if from_scans(run.data_dir):
        validation = _scans_validation(run, segmenter, quiet)
        echo(f"clinical validation: {validation.describe()}")
        return validation
    try:
        acdc_dir, seed = dataset_source(run.data_dir)
        validation = ClinicalValidation(
            segmenter, acdc_dir, seed, config.degradation, config.train.clinical_patients, quiet=quiet
        )
    except DataError as exc:
        raise HeartSRError(
            f"{exc} (train.clinical_segmenter measures the validation patients' labelled ED/ES frames; "
            'set it to "" to train without)'
        ) from None
    echo(f"clinical validation: {validation.describe()}")
    return validation


def _scans_validation(run, segmenter, quiet: bool):
    """Clinical validation on the validation patients' scans (the first ``train.clinical_patients`` of them, when
    set), against full resolution's segmentation."""
    from heart_sr_tf.data.prepare import split_scans
    from heart_sr_tf.evaluation.scans_validation import ScansClinicalValidation

    config = run.config
    listed = split_scans(run.data_dir, "validation")
    patients = list(dict.fromkeys(patient for patient, _ in listed))
    chosen = set(patients[: config.train.clinical_patients] if config.train.clinical_patients else patients)
    scans = [scan for patient, scan in listed if patient in chosen]
    try:
        return ScansClinicalValidation(segmenter, scans, config.degradation, quiet=quiet)
    except DataError as exc:
        raise HeartSRError(f"{exc} (train.clinical_segmenter measures the validation scans; set it to \"\" to train "
                           "without)") from None  # fmt: skip


def _trained(run, result, clinical, echo: Echo) -> None:
    """The lines that sum a generator's training up: image metrics next to the baselines, then the clinical."""
    from heart_sr_tf.training.loop import best_line, comparison_line, start_line

    echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    for line in (best_line(run), start_line(result, run.init_from)):
        if line:
            echo(line)
    echo(comparison_line(result))  # the last line: the model against the degradation's baselines
    if clinical is not None:
        echo(clinical.line(result.validation))


def train_srgan(options: dict, strategy, vgg_weights, quiet, echo: Echo, warn: Echo):
    from heart_sr_tf.training.srgan_trainer import train_srgan as train

    _check_init_from(options)
    with this_workers_options(options, strategy, echo) as options:
        with opened_run("srgan", default_config="srgan_cpu", warn=warn, **options) as run:
            echo(f"run: {run.folder}  data: {run.data_dir}")
            if vgg_weights and not run.config.loss.feature_weight:
                warn(f"--vgg-weights {vgg_weights}: not used: this run's config has no VGG feature loss "
                     "(feature_weight 0)")  # fmt: skip
            clinical = clinical_validation(run, quiet, echo)
            result = train(run, strategy, vgg_weights=vgg_weights, quiet=quiet, report=echo, extra_validation=clinical)
            _trained(run, result, clinical, echo)


def train_wgan(options: dict, strategy, quiet, echo: Echo, warn: Echo):
    from heart_sr_tf.training.wgan_trainer import train_wgan as train

    _check_init_from(options)
    dims = options.get("dims")
    if options.get("resume") is not None and dims is not None:
        raise HeartSRError(f"--resume continues {options['resume']} as saved; --dims would be ignored")
    with this_workers_options(options, strategy, echo) as options:
        with opened_run("wgan", default_config=f"wgan{dims or 2}d_cpu", warn=warn, **options) as run:
            echo(f"run: {run.folder}  data: {run.data_dir}")
            clinical = clinical_validation(run, quiet, echo)
            result = train(run, strategy, quiet=quiet, report=echo, extra_validation=clinical)
            _trained(run, result, clinical, echo)


def train_segmenter(resume, config_path, acdc_dir, steps, runs_dir, name, quiet, echo: Echo):
    from heart_sr_tf.training.distribute import cluster_config
    from heart_sr_tf.training.segmenter_trainer import train_segmenter as train

    cluster_config()  # (a mistyped TF_CONFIG: one line before any run folder is made)
    with opened_segmenter_run(resume, config_path, acdc_dir, steps, runs_dir, name) as run:
        echo(f"run: {run.folder}  data: {run.data_dir}")
        result = train(run, quiet=quiet, report=echo)
    v = result.validation
    echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    echo(
        f"validation, {result.slices} frames: 3D Dice LV {v['dice_LV']:.3f}, myocardium {v['dice_myocardium']:.3f}, "
        f"RV {v['dice_RV']:.3f}"
    )


def sweep_srgan(options: dict, lrs, name: str, strategy, vgg_weights, quiet, echo: Echo, warn: Echo):
    """One run per learning rate, each scored on validation, in a table next to the degradation's baselines.
    Every run is created (and its name checked) before the first one trains; under ``--strategy multiworker``
    only the chief writes them."""
    with this_workers_options(options, strategy, echo) as options:
        _sweep(options, lrs, name, strategy, vgg_weights, quiet, echo, warn)


def _sweep(options: dict, lrs, name: str, strategy, vgg_weights, quiet, echo: Echo, warn: Echo):
    from heart_sr_tf.data.degradation import BASELINE_NAMES
    from heart_sr_tf.evaluation.report import format_table
    from heart_sr_tf.training.runs import check_new_run
    from heart_sr_tf.training.srgan_trainer import train_srgan as train

    if any(value <= 0 for value in lrs):
        raise HeartSRError(f"--lr: every learning rate must be > 0, got {', '.join(f'{v:g}' for v in lrs)}")
    names = [f"{name}-lr{value:g}" for value in lrs]
    if len(set(names)) != len(names):
        raise HeartSRError(f"--lr: the same learning rate is given twice ({', '.join(f'{v:g}' for v in lrs)})")
    runs_dir = Path(options["runs_dir"])
    for run_name in names:  # every run's folder checked before the first trains
        check_new_run(runs_dir / run_name)
    columns: dict[str, dict[str, float]] = {}
    baselines = {}
    for value, run_name in zip(lrs, names, strict=True):
        with opened_run(
            "srgan", default_config="srgan_cpu", warn=warn, **{**options, "lr": value, "name": run_name}
        ) as run:
            echo(f"run: {run.folder}  lr {value:g}")
            result = train(run, strategy, vgg_weights=vgg_weights, quiet=quiet)
        columns[f"lr {value:g}"] = {
            "discriminator loss": result.last_logs.get("d_loss", float("nan")),
            "generator loss": result.last_logs.get("g_loss", float("nan")),
            **{k: result.validation[k] for k in ("ssim", "psnr", "nrmse")},
        }
        baselines = result.baselines
    for baseline, scores in baselines.items():
        columns[BASELINE_NAMES[baseline]] = {
            "discriminator loss": float("nan"),
            "generator loss": float("nan"),
            **scores,
        }
    echo("validation (whole slices, [0, 1], data range 1; losses: mean over the last logging interval)")
    echo(format_table(columns, ["discriminator loss", "generator loss", "ssim", "psnr", "nrmse"]))
