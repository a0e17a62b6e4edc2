"""Command-line interface: parses options and calls the package. Nothing imports this module."""

from __future__ import annotations

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


def train_options(f):
    options = [
        click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path), help="TOML config."),
        click.option("--steps", type=click.IntRange(min=0), help="Steps of every stage."),
        click.option("--epochs", type=click.IntRange(min=0), help="Epochs of every stage (every slice once)."),
        click.option("--lr", type=float, help="Learning rate of both networks."),
        click.option("--strategy", default="default", show_default=True, help="default|mirrored|multiworker|auto"),
        click.option("--vgg-weights", type=click.Path(dir_okay=False), help="VGG19 ImageNet weights (.h5)."),
        click.option("--runs-dir", type=click.Path(file_okay=False, path_type=Path), default=Path("runs")),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        f = option(f)
    return data_options(f)


@main.group()
def train():
    """Train a model."""


@train.command("srgan")
@train_options
@click.option("--resume", type=click.Path(file_okay=False, path_type=Path), help="Continue the run in this folder.")
@click.option("--name", help="Run name (default: srgan-DATE-TIME).")
def train_srgan_command(
    acdc_dir, data_dir, config_path, steps, epochs, lr, strategy, vgg_weights, runs_dir, quiet, resume, name
):
    """Train the SRGAN (CPU-sized config on the built-in phantoms by default)."""
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.trainer import comparison_line, train_srgan

    if resume is not None:
        run = Run.open(resume)
        saved = (run.folder / "data_dir").read_text().strip() if (run.folder / "data_dir").exists() else None
        data = resolve_data(acdc_dir, data_dir or (Path(saved) if saved and not acdc_dir else None))
    else:
        config = load_train_config(config_path, "srgan_cpu.toml")
        data = resolve_data(acdc_dir, data_dir, config.data.split_seed, config.data.phantom_patients)
        config = apply_overrides(config, data, steps, epochs, lr)
        run = Run.create(runs_dir, name, config)
        (run.folder / "data_dir").write_text(str(Path(data).resolve()) + "\n")
    click.echo(f"run: {run.folder}  data: {data}")
    result = train_srgan(run, data, strategy, resume=resume is not None, vgg_weights=vgg_weights, quiet=quiet)
    click.echo(f"trained {result.steps} steps in {result.seconds:.0f} s; checkpoints in {run.checkpoint_dir}")
    click.echo(comparison_line(result))


if __name__ == "__main__":
    main()
