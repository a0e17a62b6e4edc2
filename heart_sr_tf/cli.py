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


if __name__ == "__main__":
    main()
