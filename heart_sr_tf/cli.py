"""Command-line interface: parses options and calls the package. Nothing imports this module."""

from __future__ import annotations

import dataclasses
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

import click  # noqa: E402

from heart_sr_tf.errors import HeartSRError  # noqa: E402


class Group(click.Group):
    """A click group that turns our errors into one line on stderr and exit status 2."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except HeartSRError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)


@click.group(cls=Group)
def main():
    """heart-sr-tf: super-resolution of cardiac cine MRI."""


@main.command()
@click.argument("out", type=click.Path(file_okay=False, path_type=Path))
@click.option("--patients", default=10, show_default=True, help="Number of synthetic patients.")
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


def load_train_config(config_path: Path | None, default: str):
    from heart_sr_tf.config import CONFIG_DIR, load_config

    return load_config(config_path or CONFIG_DIR / default)


def apply_overrides(config, data_dir: Path, steps: int | None, epochs: int | None, lr: float | None):
    """``--steps``/``--epochs`` set every stage's length; ``--lr`` both learning rates."""
    from heart_sr_tf.training.trainer import steps_per_epoch

    if steps is not None and epochs is not None:
        raise HeartSRError("give --steps or --epochs, not both")
    for stage in config.train.stages:
        if steps is not None:
            stage.steps = steps
        elif epochs is not None:
            stage.steps = epochs * steps_per_epoch(data_dir, config, stage.roi)
    if lr is not None:
        config.optim.g_lr = config.optim.d_lr = lr
    return config


def train_options(f=None, *, with_lr: bool = True):
    """The options shared by `train` and `sweep` (`sweep` takes --lr several times itself)."""
    if f is None:
        return lambda g: train_options(g, with_lr=with_lr)
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML config."),
        click.option("--steps", type=click.IntRange(min=0), help="Steps of every stage."),
        click.option("--epochs", type=click.IntRange(min=0), help="Epochs of every stage (every slice once)."),
        click.option("--lr", type=float, help="Learning rate of both networks.") if with_lr else None,
        click.option("--strategy", default="default", show_default=True, help="default|mirrored|multiworker|auto"),
        click.option("--vgg-weights", type=click.Path(dir_okay=False), help="VGG19 ImageNet weights (.h5)."),
        click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs")),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        if option is not None:
            f = option(f)
    return data_options(f)


def reopen_run(folder: Path, kind: str, acdc_dir: Path | None, data_dir: Path | None):
    """A run to resume and its data: the folder it was trained on unless new data options are given."""
    from heart_sr_tf.training.runs import Run

    run = Run.open(folder)
    if run.kind != kind:
        raise HeartSRError(f"{folder}: a {run.kind} run; resume it with `train {run.kind}`")
    saved = run.folder / "data_dir"
    if data_dir is None and acdc_dir is None and saved.exists():
        data_dir = Path(saved.read_text().strip())
    return run, resolve_data(acdc_dir, data_dir)


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
    acdc_dir, data_dir, config_path, steps, epochs, lr, strategy, vgg_weights, runs_dir, quiet, resume, name, init_from
):
    """Train the SRGAN (CPU-sized config on the built-in phantoms by default)."""
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.trainer import comparison_line, train_srgan

    if resume is not None:
        run, data = reopen_run(resume, "srgan", acdc_dir, data_dir)
        if init_from is None and (run.folder / "init_from").exists():
            init_from = Path((run.folder / "init_from").read_text().strip())
    else:
        config = load_train_config(config_path, "srgan_cpu.toml")
        data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients)
        config = apply_overrides(config, data, steps, epochs, lr)
        run = Run.create(runs_dir, name, config)
        (run.folder / "data_dir").write_text(str(Path(data).resolve()) + "\n")
    click.echo(f"run: {run.folder}  data: {data}")
    if init_from is not None:
        (run.folder / "init_from").write_text(str(Path(init_from).resolve()) + "\n")
    result = train_srgan(
        run, data, strategy, resume=resume is not None, vgg_weights=vgg_weights, quiet=quiet, init_from=init_from
    )
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(comparison_line(result))


@train.command("wgan")
@train_options
@click.option("--dims", type=click.Choice(["2", "3"]), default="2", show_default=True, help="2D slices or 3D volumes.")
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--name", help="Run name (default: wgan-DATE-TIME).")
def train_wgan_command(
    acdc_dir, data_dir, config_path, steps, epochs, lr, strategy, vgg_weights, runs_dir, quiet, dims, resume, name
):
    """Train the WGAN-GP with the five-phase controller (CPU-sized config on the phantoms by default)."""
    from heart_sr_tf.config import CONFIG_DIR, WGANConfig, load_config
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.trainer import comparison_line, steps_per_epoch
    from heart_sr_tf.training.wgan_trainer import train_wgan

    if resume is not None:
        run, data = reopen_run(resume, "wgan", acdc_dir, data_dir)
    else:
        config = load_config(config_path or CONFIG_DIR / f"wgan{dims}d_cpu.toml", WGANConfig)
        if config.data.dims != int(dims):
            raise HeartSRError(f"{config_path}: data.dims is {config.data.dims} but --dims {dims} was given")
        data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients)
        if steps is not None and epochs is not None:
            raise HeartSRError("give --steps or --epochs, not both")
        if steps is not None:
            config.train.steps = steps
        elif epochs is not None:
            config.train.steps = epochs * steps_per_epoch(data, config, "full")
        if lr is not None:
            config.optim.g_lr = config.optim.d_lr = lr
        run = Run.create(runs_dir, name, config, kind="wgan")
        (run.folder / "data_dir").write_text(str(Path(data).resolve()) + "\n")
    click.echo(f"run: {run.folder}  data: {data}")
    result = train_wgan(run, data, strategy, resume=resume is not None, quiet=quiet)
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(comparison_line(result))


@main.group()
def sweep():
    """Train the same configuration once per learning rate (the paper's Table 1)."""


@sweep.command("srgan")
@train_options(with_lr=False)
@click.option("--lr", "lrs", type=float, multiple=True, default=(1e-3, 2e-4, 1e-5), show_default=True)
@click.option("--name", default="sweep", show_default=True, help="Prefix of the run names.")
def sweep_srgan_command(
    acdc_dir, data_dir, config_path, steps, epochs, strategy, vgg_weights, runs_dir, quiet, lrs, name
):
    """One run per --lr, each scored on validation, printed next to aligned bicubic."""
    from heart_sr_tf.evaluation.report import format_table
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.trainer import BASELINE_NAMES, train_srgan

    columns: dict[str, dict[str, float]] = {}
    baselines = {}
    for value in lrs:
        config = load_train_config(config_path, "srgan_cpu.toml")
        data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients)
        config = apply_overrides(config, data, steps, epochs, value)
        run = Run.create(runs_dir, f"{name}-lr{value:g}", config)
        (run.folder / "data_dir").write_text(str(Path(data).resolve()) + "\n")
        click.echo(f"run: {run.folder}  lr {value:g}")
        result = train_srgan(run, data, strategy, vgg_weights=vgg_weights, quiet=quiet)
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
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Where results go (default: beside MODEL)."
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many slices per roi.")
@click.option("--figures", "n_figures", default=4, show_default=True, help="LR | SR | HR figures to draw.")
@click.option("--quiet", is_flag=True)
def evaluate(model, acdc_dir, data_dir, split, roi, degradation, data_consistency, out, limit, n_figures, quiet):
    """Score a run or SavedModel next to its degradation's baselines (the paper's section 6, done soundly)."""
    from heart_sr_tf.evaluation.evaluate import NAMES, figures, write_outputs
    from heart_sr_tf.evaluation.evaluate import evaluate as run_evaluate
    from heart_sr_tf.evaluation.report import format_table
    from heart_sr_tf.serving.predictor import load_predictor

    predictor = load_predictor(model)
    if data_consistency:
        predictor = predictor.with_consistency()
    chosen = predictor.degradation
    if degradation is not None and degradation != chosen.kind:
        click.echo(
            f"warning: {predictor.source} was trained on {chosen.kind}, evaluating on {degradation} as asked; "
            "models do not transfer between degradations",
            err=True,
        )
        chosen = dataclasses.replace(chosen, kind=degradation)
    run = predictor.run
    if run is not None and acdc_dir is None and data_dir is None and (run.folder / "data_dir").exists():
        data_dir = Path((run.folder / "data_dir").read_text().strip())
    data = resolve_data(acdc_dir, data_dir)
    rois = ("full", "heart") if roi == "both" else (roi,)
    result = run_evaluate(predictor, data, split, rois, limit=limit, quiet=quiet, degradation=chosen)
    if run is not None:
        result.losses = last_losses(run.csv_path)
    out = out or (
        Path(model) / "evaluation" / split if run is not None else Path("evaluation") / Path(model).name / split
    )
    files = write_outputs(result, out)
    pictures = figures(predictor, data, split, out / "figures", n_figures, degradation=chosen) if n_figures else []
    summary = result.summary()
    click.echo(f"{predictor.source} on {split} ({data}); per-slice metrics on [0, 1], data range 1, averaged")
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


def last_losses(csv_path: Path) -> dict[str, float]:
    """The last logged generator and discriminator losses of a run."""
    import csv

    losses: dict[str, float] = {}
    if csv_path.exists():
        for row in csv.DictReader(csv_path.open()):
            for key in ("g_loss", "d_loss"):
                if row.get(key):
                    losses[key] = float(row[key])
    return losses


@main.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", default="srgan", show_default=True, help="Model name (TF Serving's model folder).")
@click.option("--version", type=click.IntRange(min=1), help="Version number (default: the next one).")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), default=Path("saved_models"), show_default=True
)
@click.option(
    "--data-consistency",
    is_flag=True,
    help="Append the data-consistency projection for the run's degradation (degrade(SR) == LR).",
)
def export(run_dir, name, version, out, data_consistency):
    """Export a run's generator as a SavedModel at OUT/NAME/VERSION for TensorFlow Serving."""
    from heart_sr_tf.config import dump_toml
    from heart_sr_tf.serving.export import export_generator
    from heart_sr_tf.serving.predictor import load_run

    predictor = load_run(run_dir)
    run = predictor.run
    metadata = {
        "scale": run.config.data.scale,
        "run": str(run.folder),
        "checkpoint": predictor.info["checkpoint"],
        "config": dump_toml(run.config),
        "last_metrics": last_row(run.csv_path),
    }
    generator = predictor.generator
    if data_consistency:
        from heart_sr_tf.models.consistency import with_consistency

        generator = with_consistency(generator, predictor.degradation.kind, predictor.degradation.scale)
        metadata["data_consistency"] = True
    target = export_generator(generator, out, name, version, metadata, predictor.degradation)
    click.echo(f"exported {run.folder} ({Path(predictor.info['checkpoint']).name}) to {target}")


def last_row(csv_path: Path) -> dict:
    import csv

    rows = list(csv.DictReader(csv_path.open())) if csv_path.exists() else []
    return {k: v for k, v in rows[-1].items() if v} if rows else {}


@main.command()
@click.argument("in_path", metavar="IN", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("out_path", metavar="OUT", type=click.Path(dir_okay=False, path_type=Path))
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default=Path("saved_models/rrdb"),
    show_default=True,
    help="SavedModel, model base path (highest version) or run folder.",
)
@click.option("--server", help="TF Serving model URL, e.g. http://localhost:8501/v1/models/rrdb (instead of --model).")
@click.option("--scale", default=3, show_default=True, help="Scale of the served model (with --server).")
@click.option("--batch-size", default=8, show_default=True)
@click.option("--quiet", is_flag=True)
def upscale(in_path, out_path, model, server, scale, batch_size, quiet):
    """Super-resolve every slice and frame of the NIfTI scan IN into OUT, keeping its geometry."""
    from heart_sr_tf.serving.client import rest_predictor
    from heart_sr_tf.serving.predictor import load_predictor
    from heart_sr_tf.serving.upscale import upscale_nifti

    predictor = rest_predictor(server, scale) if server else load_predictor(model)
    click.echo(f"model: {predictor.source}, trained for {predictor.degradation.describe()}")
    written = upscale_nifti(in_path, out_path, predictor, batch_size=batch_size, quiet=quiet)
    click.echo(f"wrote {written} (x{predictor.scale} in-plane, with {predictor.source})")


if __name__ == "__main__":
    main()
