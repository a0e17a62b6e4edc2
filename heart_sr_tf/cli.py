"""Command-line interface: parses options and calls the package. Nothing imports this module."""

from __future__ import annotations

import dataclasses
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

import click  # noqa: E402

from heart_sr_tf.errors import HeartSRError  # noqa: E402
from heart_sr_tf.quiet import import_tensorflow_quietly as _import_tensorflow_quietly  # noqa: E402


def _terminate(signum, frame):
    """SIGTERM unwinds like an exception, so every ``finally`` removes its temporary files."""
    raise SystemExit(128 + signum)


class Group(click.Group):
    """A click group that turns our errors and click's usage errors into one line on stderr and exit status 2."""

    def main(self, args=None, prog_name=None, **extra):
        try:
            code = super().main(args, prog_name, standalone_mode=False, **extra)
        except click.UsageError as exc:
            where = f"{exc.ctx.command_path}: " if exc.ctx is not None else ""
            click.echo(f"error: {where}{exc.format_message()}", err=True)
            sys.exit(2)
        except click.ClickException as exc:
            click.echo(f"error: {exc.format_message()}", err=True)
            sys.exit(exc.exit_code)
        except click.Abort:
            click.echo("aborted", err=True)
            sys.exit(130)
        sys.exit(code if isinstance(code, int) else 0)

    def invoke(self, ctx):
        signal.signal(signal.SIGTERM, _terminate)
        try:
            return super().invoke(ctx)
        except HeartSRError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in LAZY_TENSORFLOW and not ctx.params.get("verbose"):  # (the group's callback runs later)
            _import_tensorflow_quietly()
        return name, command, rest


LAZY_TENSORFLOW = {"upscale", "phantoms"}  # these import TensorFlow themselves, only when they need it


BACKEND_OPTIONS = {  # option -> (choices, help)
    "--backend": (
        ["auto", "tensorflow", "openvino"],
        "auto: OpenVINO when installed (pip install -e '.[openvino]'), else TensorFlow.",
    ),
    "--precision": (
        ["auto", "float32", "bfloat16"],
        "auto: bfloat16 where the CPU (AVX512_BF16/AMX) or GPU computes it natively, else float32.",
    ),
}


def backend_options(default_backend: str, default_precision: str):
    """``--backend`` and ``--precision``: where and in which precision an exported model runs."""
    defaults = {"--backend": default_backend, "--precision": default_precision}

    def decorate(command):
        for name, (choices, text) in reversed(BACKEND_OPTIONS.items()):
            command = click.option(
                name, type=click.Choice(choices), default=defaults[name], show_default=True, help=text
            )(command)
        return command

    return decorate


@click.group(cls=Group)
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own start-up and log lines.")
def main(verbose: bool):
    """heart-sr-tf: super-resolution of cardiac cine MRI."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--patients",
    type=click.IntRange(min=3),
    default=10,
    show_default=True,
    help="Number of synthetic patients (at least one for each of train, validation and test).",
)
@click.option("--seed", default=0, show_default=True)
def phantoms(out: Path, patients: int, seed: int):
    """Write synthetic cardiac cine in the ACDC layout to OUT."""
    from heart_sr_tf.data.phantoms import write_phantoms

    folders = write_phantoms(out, patients, seed)
    click.echo(f"wrote {len(folders)} phantom patients to {out / 'training'}")


def data_options(f):
    f = click.option("--data-dir", type=click.Path(file_okay=False, path_type=Path), help="Prepared TFDS folder.")(f)
    f = click.option(
        "--acdc-dir", type=click.Path(file_okay=False, path_type=Path), help="ACDC folder (default: built-in phantoms)."
    )(f)
    return f


@main.command()
@data_options
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option("--strict", is_flag=True, help="Stop at the first bad patient instead of skipping it.")
@click.option("--force", is_flag=True, help="Rebuild even if the dataset exists.")
def prepare(acdc_dir: Path | None, data_dir: Path | None, seed: int, strict: bool, force: bool):
    """Build the acdc_sr TFDS dataset (full slices and heart boxes) from ACDC_DIR."""
    from heart_sr_tf.data.prepare import phantom_dir
    from heart_sr_tf.data.prepare import prepare as run_prepare

    source = acdc_dir or phantom_dir()
    report = run_prepare(source, data_dir, seed=seed, strict=strict, force=force)
    click.echo(f"dataset: {report.data_dir}")
    for roi, counts in report.counts.items():
        parts = ", ".join(f"{split} {counts.get(split, 0)}" for split in ("train", "validation", "test"))
        click.echo(f"{roi:5s} slices: {parts}")
    click.echo("patients: " + ", ".join(f"{k} {v}" for k, v in report.patients.items()))
    if report.bad:
        click.echo(f"skipped {len(report.bad)} bad patient(s):", err=True)
        for line in report.bad:
            click.echo(f"  {line}", err=True)


def resolve_data(acdc_dir: Path | None, data_dir: Path | None, seed: int = 0, phantom_patients: int = 10) -> Path:
    """A prepared dataset: ``--data-dir`` as is, else ``--acdc-dir`` (or the phantoms) prepared on first use."""
    from heart_sr_tf.data.prepare import is_prepared, phantom_dir, prepare

    if data_dir is not None and acdc_dir is None:
        if not is_prepared(data_dir):
            raise HeartSRError(
                f"{data_dir}: no prepared acdc_sr dataset; run `python cli.py prepare --data-dir {data_dir}`"
            )
        return data_dir
    source = acdc_dir or phantom_dir(phantom_patients)
    report = prepare(source, data_dir, seed=seed, quiet=False)
    for line in report.bad:
        click.echo(f"skipped: {line}", err=True)
    return report.data_dir


def train_options(f=None, *, with_lr: bool = True):
    """The options shared by `train` and `sweep` (`sweep` takes --lr several times itself)."""
    if f is None:
        return lambda g: train_options(g, with_lr=with_lr)
    options = [
        click.option("--config", "config_path", help="TOML config file, or the name of a shipped config."),
        click.option("--steps", type=click.IntRange(min=1), help="Steps of every stage (WGAN: of the run)."),
        click.option("--epochs", type=click.IntRange(min=1), help="Epochs of every stage (every slice once)."),
        click.option("--lr", type=click.FloatRange(min=0, min_open=True), help="Learning rate of both networks.")
        if with_lr
        else None,
        click.option(
            "--strategy",
            type=click.Choice(["default", "mirrored", "multiworker", "auto"]),
            default="default",
            show_default=True,
        ),
        click.option("--vgg-weights", type=click.Path(dir_okay=False), help="VGG19 ImageNet weights (.h5)."),
        click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs")),
        click.option("--seed", type=int, help="Seed of the initial weights and the sampling (default: the config's)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        if option is not None:
            f = option(f)
    return data_options(f)


def open_or_create_run(
    kind: str, resume, config_path, default_config, acdc_dir, data_dir, steps, epochs, lr, seed=None, **new
):
    """The run to train: ``--resume`` reopens one exactly as saved (refusing options it would ignore);
    otherwise a new run from the config, its data prepared and its overrides checked, before any training."""
    from heart_sr_tf.config import CONFIG_CLASSES, load_config
    from heart_sr_tf.training.overrides import apply_overrides
    from heart_sr_tf.training.runs import Run

    if resume is not None:
        given = {"--config": config_path, "--steps": steps, "--epochs": epochs, "--lr": lr, "--seed": seed}
        given.update({f"--{k.replace('_', '-')}": v for k, v in new.items() if k != "runs_dir"})
        ignored = [option for option, value in given.items() if value is not None]
        if ignored:
            raise HeartSRError(
                f"--resume continues {resume} as saved; {', '.join(ignored)} would be ignored "
                f"(to extend the run, raise the steps in {Path(resume) / 'config.toml'})"
            )
        run = Run.open(resume)
        if run.kind != kind:
            raise HeartSRError(f"{resume}: a {run.kind} run; resume it with `train {run.kind}`")
        if acdc_dir is not None or data_dir is not None:
            run.use_data(resolve_data(acdc_dir, data_dir))
        elif run.data_dir is None or not run.data_dir.is_dir():
            raise HeartSRError(f"{resume}: its data folder {run.data_dir} is gone; give --data-dir or --acdc-dir")
        return run
    config = load_config(config_path or default_config, CONFIG_CLASSES[kind])
    dims = new.pop("dims", None)
    if dims is not None and config.data.dims != dims:
        raise HeartSRError(f"{config_path}: data.dims is {config.data.dims} but --dims {dims} was given")
    data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients)
    config = apply_overrides(config, data, steps, epochs, lr)
    if seed is not None:
        config.train.seed = seed
    return Run.create(new.pop("runs_dir"), new.pop("name"), config, kind, data, new.pop("init_from", None))


@main.group()
def train():
    """Train a model."""


@train.command("srgan")
@train_options
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--name", help="Run name (default: srgan-DATE-TIME).")
@click.option(
    "--init-from",
    type=click.Path(file_okay=False, path_type=Path),
    help="Start from the generator of this run or exported SavedModel (same architecture).",
)
def train_srgan_command(
    acdc_dir,
    data_dir,
    config_path,
    steps,
    epochs,
    lr,
    strategy,
    vgg_weights,
    runs_dir,
    seed,
    quiet,
    resume,
    name,
    init_from,
):
    """Train the SRGAN (CPU-sized config on the built-in phantoms by default)."""
    from heart_sr_tf.training.loop import comparison_line
    from heart_sr_tf.training.srgan_trainer import train_srgan

    if init_from is not None and not Path(init_from).exists():
        raise HeartSRError(f"{init_from}: no such run or model for --init-from")
    run = open_or_create_run(
        "srgan", resume, config_path, "srgan_cpu", acdc_dir, data_dir, steps, epochs, lr, seed,
        runs_dir=runs_dir, name=name, init_from=init_from,
    )  # fmt: skip
    click.echo(f"run: {run.folder}  data: {run.data_dir}")
    result = train_srgan(run, strategy, vgg_weights=vgg_weights, quiet=quiet, report=click.echo)
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(comparison_line(result))


@train.command("wgan")
@train_options
@click.option("--dims", type=click.Choice(["2", "3"]), help="2D slices or 3D volumes (default: the config's, else 2).")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--name", help="Run name (default: wgan-DATE-TIME).")
def train_wgan_command(
    acdc_dir, data_dir, config_path, steps, epochs, lr, strategy, vgg_weights, runs_dir, seed, quiet, dims, resume, name
):
    """Train the WGAN-GP with the five-phase controller (CPU-sized config on the phantoms by default)."""
    from heart_sr_tf.training.loop import comparison_line
    from heart_sr_tf.training.wgan_trainer import train_wgan

    if resume is not None and dims is not None:
        raise HeartSRError(f"--resume continues {resume} as saved; --dims would be ignored")
    default = f"wgan{dims or 2}d_cpu"
    run = open_or_create_run(
        "wgan", resume, config_path, default, acdc_dir, data_dir, steps, epochs, lr, seed,
        runs_dir=runs_dir, name=name, dims=None if dims is None else int(dims),
    )  # fmt: skip
    click.echo(f"run: {run.folder}  data: {run.data_dir}")
    result = train_wgan(run, strategy, quiet=quiet, report=click.echo)
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(comparison_line(result))


@train.command("segmenter")
@click.option("--acdc-dir", type=click.Path(file_okay=False, path_type=Path), help="ACDC folder with labels (default: built-in phantoms).")
@click.option("--config", "config_path", help="TOML config file, or the name of a shipped config.")
@click.option("--steps", type=click.IntRange(min=1), help="Training steps.")
@click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs"))
@click.option("--name", help="Run name (default: segmenter-DATE-TIME).")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_segmenter_command(acdc_dir, config_path, steps, runs_dir, name, resume, quiet):
    """Train the U-Net segmenter on full-resolution slices of the training patients (for --clinical, --measure)."""
    from heart_sr_tf.training.segmenter_trainer import train_segmenter
    from heart_sr_tf.training.sessions import open_segmenter_run

    run = open_segmenter_run(resume, config_path, acdc_dir, steps, runs_dir, name)
    click.echo(f"run: {run.folder}  data: {run.data_dir}")
    result = train_segmenter(run, quiet=quiet, report=click.echo)
    v = result.validation
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(
        f"validation, {result.slices} frames: 3D Dice LV {v['dice_LV']:.3f}, myocardium {v['dice_myocardium']:.3f}, "
        f"RV {v['dice_RV']:.3f}"
    )


@main.group()
def sweep():
    """Train the same configuration once per learning rate (the paper's Table 1)."""


@sweep.command("srgan")
@train_options(with_lr=False)
@click.option("--lr", "lrs", type=float, multiple=True, default=(1e-3, 2e-4, 1e-5), show_default=True)
@click.option("--name", default="sweep", show_default=True, help="Prefix of the run names.")
def sweep_srgan_command(
    acdc_dir, data_dir, config_path, steps, epochs, strategy, vgg_weights, runs_dir, seed, quiet, lrs, name
):
    """One run per --lr, each scored on validation, printed next to the degradation's baselines."""
    from heart_sr_tf.data.degradation import BASELINE_NAMES
    from heart_sr_tf.evaluation.report import format_table
    from heart_sr_tf.training.srgan_trainer import train_srgan

    if any(value <= 0 for value in lrs):
        raise HeartSRError(f"--lr: every learning rate must be > 0, got {', '.join(f'{v:g}' for v in lrs)}")
    columns: dict[str, dict[str, float]] = {}
    baselines = {}
    for value in lrs:
        run = open_or_create_run(
            "srgan", None, config_path, "srgan_cpu", acdc_dir, data_dir, steps, epochs, value, seed,
            runs_dir=runs_dir, name=f"{name}-lr{value:g}",
        )  # fmt: skip
        click.echo(f"run: {run.folder}  lr {value:g}")
        result = train_srgan(run, strategy, vgg_weights=vgg_weights, quiet=quiet)
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
    click.echo("validation (whole slices, [0, 1], data range 1; losses: mean over the last logging interval)")
    rows = ["discriminator loss", "generator loss", "ssim", "psnr", "nrmse"]
    click.echo(format_table(columns, rows))


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@data_options
@click.option("--split", type=click.Choice(["validation", "test"]), default="test", show_default=True)
@click.option("--roi", type=click.Choice(["full", "heart", "both"]), default="both", show_default=True)
@click.option(
    "--degradation",
    type=click.Choice(["decimation", "kspace"]),
    help="Degrade the HR slices this way (default: the one the model was trained on; another one warns).",
)
@click.option(
    "--data-consistency", is_flag=True, help="Project the model's output onto its input (degrade(SR) == LR) first."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where results go (default: RUN/evaluation/SPLIT for a run, ./evaluation/NAME/SPLIT for a SavedModel).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many slices per roi.")
@click.option(
    "--figures", "n_figures", type=click.IntRange(min=0), default=4, show_default=True, help="Figures to draw."
)
@click.option(
    "--through-plane",
    is_flag=True,
    help="Require a through-plane model (scored across its axis next to linear, cubic and windowed-sinc).",
)
@backend_options(default_backend="tensorflow", default_precision="float32")
@click.option("--quiet", is_flag=True)
def evaluate(
    model,
    acdc_dir,
    data_dir,
    split,
    roi,
    degradation,
    data_consistency,
    out,
    limit,
    n_figures,
    through_plane,
    backend,
    precision,
    quiet,
):
    """Score a run or SavedModel next to its degradation's baselines (the paper's section 6, done soundly)."""
    from heart_sr_tf.evaluation.evaluate import NAMES, figures, write_outputs
    from heart_sr_tf.evaluation.evaluate import evaluate as run_evaluate
    from heart_sr_tf.evaluation.report import format_table
    from heart_sr_tf.serving.predictor import load_predictor

    predictor = load_predictor(model, backend, precision)
    if data_consistency:
        predictor = predictor.with_consistency()
    chosen = predictor.degradation
    if through_plane and chosen.kind != "through_plane":
        raise HeartSRError(
            f"{predictor.source}: trained for {chosen.kind}; --through-plane needs a through-plane model"
        )
    if degradation is not None and "through_plane" in (chosen.kind, degradation):
        raise click.UsageError("--degradation cannot move a model between in-plane and through-plane")
    if degradation is not None and degradation != chosen.kind:
        click.echo(
            f"warning: {predictor.source} was trained on {chosen.kind}, evaluating on {degradation} as asked; "
            "models do not transfer between degradations",
            err=True,
        )
        chosen = dataclasses.replace(chosen, kind=degradation)
    run = predictor.run
    if run is not None and acdc_dir is None and data_dir is None:
        data_dir = run.data_dir
    data = resolve_data(acdc_dir, data_dir)
    rois = ("full", "heart") if roi == "both" else (roi,)
    from heart_sr_tf.data.pipeline import num_slices

    for name in rois:
        if num_slices(data, name, split) == 0:
            raise HeartSRError(f"{data}: the {split} split holds no {name} slices; choose another --split")
    result = run_evaluate(predictor, data, split, rois, limit=limit, quiet=quiet, degradation=chosen)
    if run is not None:
        result.losses = run.last_losses()
    out = out or (
        Path(model) / "evaluation" / split if run is not None else Path("evaluation") / Path(model).name / split
    )
    files = write_outputs(result, out)
    pictures = figures(predictor, data, split, out / "figures", n_figures, degradation=chosen) if n_figures else []
    summary = result.summary()
    click.echo(
        f"{predictor.source} ({predictor.backend}, {predictor.precision}) on {split} ({data}); "
        "per-slice metrics on [0, 1], data range 1, averaged"
    )
    click.echo(f"degradation: {chosen.describe()}")
    for name, methods in summary.items():
        columns = {NAMES[m]: methods[m] for m in ("model", *chosen.baselines) if m in methods}
        first = next(iter(methods.values()))
        click.echo(f"\n{name} ({first['slices']} slices)")
        if "model" in columns:  # the run's last training losses belong to the model alone, not to the baselines
            columns["model"] = {
                **columns["model"],
                "discriminator loss": result.losses.get("d_loss"),
                "generator loss": result.losses.get("g_loss"),
            }
        rows = ["ssim", "ssim_gauss", "psnr", "nrmse"] + (
            ["discriminator loss", "generator loss"] if result.losses else []
        )
        click.echo(format_table(columns, rows))
        for baseline in chosen.baselines:
            m, b = methods["model"], methods[baseline]
            click.echo(
                f"model - {NAMES[baseline]}: {m['psnr'] - b['psnr']:+.2f} dB PSNR, {m['ssim'] - b['ssim']:+.4f} SSIM"
            )
    click.echo(f"\nwrote {', '.join(str(f) for f in files)} and {len(pictures)} figure(s) in {out / 'figures'}")


@main.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--name", help="Model name, TF Serving's model folder (default: the run's or model's name).")
@click.option("--version", type=click.IntRange(min=1), help="Version number (default: the next one).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("saved_models"), show_default=True
)
@click.option(
    "--data-consistency",
    is_flag=True,
    help="Append the data-consistency projection for the run's degradation (degrade(SR) == LR).",
)
@click.option(
    "--self-ensemble",
    is_flag=True,
    help="Through-plane models: average over the four flips the thick-slice degradation commutes with "
    "(4x the work). An exported RUN keeps what its metadata records.",
)
@click.option(
    "--precision",
    type=click.Choice(["float32", "bfloat16"]),
    default="float32",
    show_default=True,
    help="bfloat16: convolutions computed in bfloat16 (float32 in and out), for TF Serving on AMX/AVX512_BF16 CPUs.",
)
def export(run_dir, name, version, out, data_consistency, self_ensemble, precision):
    """Export a run's generator as a SavedModel at OUT/NAME/VERSION for TensorFlow Serving.

    RUN may also be an exported model (a SavedModel, base path or shipped name): it is rebuilt from its
    metadata, e.g. to write a bfloat16 twin of a shipped model.
    """
    from heart_sr_tf.config import dump_toml
    from heart_sr_tf.serving.export import export_generator
    from heart_sr_tf.serving.predictor import find_model, load_run
    from heart_sr_tf.serving.wrappers import WRAPPERS, recorded, wrap

    source = find_model(run_dir)
    if (source / "config.toml").is_file():
        predictor = load_run(source, precision)
        run = predictor.run
        metadata = {
            "scale": run.config.data.scale,
            "run": str(run.folder),
            "checkpoint": predictor.info["checkpoint"],
            "config": dump_toml(run.config),
            "last_metrics": run.last_metrics(),
        }
        generator, degradation, default_name = predictor.generator, predictor.degradation, run.folder.name
        what = f"{run.folder} ({Path(predictor.info['checkpoint']).name})"
        carried = {}
    else:
        from heart_sr_tf.data.degradation import Degradation
        from heart_sr_tf.serving.backends import build_generator, export_config
        from heart_sr_tf.serving.layout import read_metadata, resolve_model_dir
        from heart_sr_tf.training.runs import load_exported_weights

        folder = resolve_model_dir(source)
        exported = read_metadata(folder)
        dropped = ("degradation", "precision", *WRAPPERS)  # recorded anew below
        metadata = {k: v for k, v in exported.items() if k not in dropped}
        carried = recorded(exported)  # its wrappers are applied again
        generator = build_generator(export_config(metadata, folder), precision)
        load_exported_weights(folder, generator)
        degradation = Degradation.from_metadata(exported)
        default_name = folder.parent.name + ("_bf16" if precision == "bfloat16" else "")
        metadata["exported_from"] = str(folder)
        what = str(folder)
    chosen = {"data_consistency": data_consistency, "self_ensemble": self_ensemble}
    chosen = {key: value or carried.get(key, False) for key, value in chosen.items()}
    generator = wrap(generator, degradation, what, **chosen)
    metadata.update({key: True for key, value in chosen.items() if value})
    metadata["precision"] = precision
    target = export_generator(generator, out, name or default_name, version, metadata, degradation)
    click.echo(f"exported {what} to {target} ({precision})")


@main.command()
@click.argument("in_path", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_path", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default="rrdb_kspace",
    show_default=True,
    help="SavedModel, model base path (highest version), run folder, or the name of a shipped model.",
)
@click.option("--server", help="TF Serving model URL, e.g. http://localhost:8501/v1/models/rrdb (instead of --model).")
@click.option(
    "--scale", type=click.IntRange(min=2), default=3, show_default=True, help="Scale of the served model (--server)."
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    default=16,
    show_default=True,
    help="Slices per model call (fewer when they are large: a call holds at most 147,456 LR pixels).",
)
@click.option(
    "--through-plane",
    is_flag=True,
    help="Upsample across the slices instead: g = slice spacing / in-plane pixel, with the nearest shipped "
    "throughplane_x<g> model (or --through-plane-model).",
)
@click.option(
    "--through-plane-model",
    type=click.Path(path_type=Path),
    help="The through-plane model to use (a SavedModel, base path, run or shipped name); implies --through-plane.",
)
@click.option(
    "--through-plane-server",
    help="TF Serving URL of a through-plane model, instead of a local one (its g is learnt from one small "
    "request); implies --through-plane.",
)
@click.option(
    "--in-plane",
    is_flag=True,
    help="With --through-plane: also upscale in-plane with --model or --server (near-isotropic).",
)
@backend_options(default_backend="auto", default_precision="auto")
@click.option("--quiet", is_flag=True)
def upscale(
    in_path,
    out_path,
    model,
    server,
    scale,
    batch_size,
    through_plane,
    through_plane_model,
    through_plane_server,
    in_plane,
    backend,
    precision,
    quiet,
):
    """Super-resolve every slice and frame of the NIfTI scan IN into OUT, keeping its geometry.

    In-plane by default; across the slices with --through-plane; both with --through-plane --in-plane.
    """
    from heart_sr_tf.serving.backends import resolve_backend, resolve_precision
    from heart_sr_tf.serving.client import rest_predictor
    from heart_sr_tf.serving.predictor import shipped_model_dirs
    from heart_sr_tf.serving.through_plane import ThroughPlane, choose_model
    from heart_sr_tf.serving.upscale import upscale_nifti

    backend = resolve_backend(backend)
    if backend == "tensorflow":
        _import_tensorflow_quietly()
    precision = resolve_precision(precision)

    def load(path):
        from heart_sr_tf.serving.predictor import find_model, load_predictor

        if (find_model(path) / "config.toml").is_file():  # a training run: TensorFlow whatever the backend
            _import_tensorflow_quietly()
            return load_predictor(path, "tensorflow", precision)
        return load_predictor(path, backend, precision)

    if through_plane_model is not None and through_plane_server:
        raise click.UsageError("give --through-plane-model or --through-plane-server, not both")
    through_plane = through_plane or through_plane_model is not None or bool(through_plane_server)
    if in_plane and not through_plane:
        raise click.UsageError("--in-plane goes with --through-plane (in-plane alone is the default)")
    if through_plane and server and not in_plane:
        raise click.UsageError(
            "--server serves the in-plane model: add --in-plane, or give a served through-plane model with "
            "--through-plane-server"
        )
    across = None
    if through_plane:
        from heart_sr_tf.data.acdc import load_nifti

        _, zooms = load_nifti(in_path, ndims=(3, 4), min_inplane=1)
        if through_plane_server:
            served = rest_predictor(through_plane_server, through_plane=True)
            _warn_far_ratio(in_path, zooms, served.scale)
            across = ThroughPlane(served, batch_size=batch_size)
        else:
            if through_plane_model is None:
                choice = choose_model(zooms, shipped_model_dirs())
                through_plane_model = choice.path
                _warn_far_ratio(in_path, zooms, choice.g)
            across = ThroughPlane(load(through_plane_model), batch_size=max(batch_size, 32))
        click.echo(f"across slices: {across.describe(zooms)}")
    predictor = None
    if in_plane or not through_plane:
        predictor = rest_predictor(server, scale) if server else load(model)
        if server:
            click.echo(f"model: {server} (TF Serving does not report a model's degradation; the served model decides)")
        else:
            click.echo(
                f"model: {predictor.source}, trained for {predictor.degradation.describe()}; "
                f"{predictor.backend}, {predictor.precision}"
            )
    written = upscale_nifti(in_path, out_path, predictor, batch_size=batch_size, quiet=quiet, through_plane=across)
    done = [f"x{across.g} across slices"] if across else []
    done += [f"x{predictor.scale} in-plane with {predictor.source}"] if predictor else []
    click.echo(f"wrote {written} ({', then '.join(done)})")


def _warn_far_ratio(in_path, zooms, g: int) -> None:
    from heart_sr_tf.serving.through_plane import slice_ratio

    ratio = slice_ratio(zooms)
    if abs(g - ratio) > 1:
        click.echo(
            f"warning: {in_path}: its slice spacing is {ratio:.2f} in-plane pixels, but the through-plane model "
            f"has g = {g}; the result is less reliable",
            err=True,
        )


if __name__ == "__main__":
    main()
