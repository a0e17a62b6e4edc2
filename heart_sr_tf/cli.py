"""Command-line interface: parses options and calls one function of ``heart_sr_tf.commands`` per command.
Nothing imports this module."""

from __future__ import annotations

import math
import os
import signal
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

import click  # noqa: E402

from heart_sr_tf.errors import HeartSRError, UsageError  # noqa: E402
from heart_sr_tf.startup import import_tensorflow_quietly  # noqa: E402

LAZY_TENSORFLOW = {"upscale", "phantoms", "cohort"}  # these import TensorFlow themselves, only when they need it


def _terminate(signum, frame):
    """SIGTERM unwinds like an exception, so every ``finally`` removes its temporary files."""
    click.echo("terminated", err=True)
    raise SystemExit(128 + signum)


def _warn(line: str) -> None:
    click.echo(line, err=True)


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
        except UsageError as exc:
            name = ctx.invoked_subcommand or ""
            click.echo(f"error: {ctx.command_path} {name}: {exc}".replace("  ", " "), err=True)
            sys.exit(2)
        except HeartSRError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(2)
        except Exception as exc:
            if type(exc).__name__ != "DataLossError":  # TensorFlow's: a truncated record file
                raise
            message = str(exc).splitlines()[0][:200]
            click.echo(
                f"error: a data file is truncated or corrupt ({message}); rebuild it (prepare --force)", err=True
            )
            sys.exit(2)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if name not in LAZY_TENSORFLOW and not ctx.params.get("verbose"):  # (the group's callback runs later)
            import_tensorflow_quietly()
        return name, command, rest


BACKEND_OPTIONS = {  # option -> (choices, help)
    "--backend": (
        ["auto", "tensorflow", "openvino"],
        "auto: OpenVINO when installed (pip install -e '.[openvino]'), else TensorFlow.",
    ),
    "--precision": (
        ["auto", "float32", "bfloat16", "int8"],
        "auto: bfloat16 where the CPU (AVX512_BF16/AMX) or GPU computes it natively, else float32. "
        "int8: OpenVINO, once `quantize` has made the model's int8 twin.",
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


FOLDER = click.Path(file_okay=False, path_type=Path)


class _Positive(click.ParamType):
    """A finite number > 0 (click's FloatRange lets nan and inf through)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return number


POSITIVE = _Positive()


@click.group(cls=Group)
@click.option("--verbose", is_flag=True, help="Show TensorFlow's own start-up and log lines.")
def main(verbose: bool):
    """heart-sr-tf: super-resolution of cardiac cine MRI."""
    if verbose:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"


@main.command()
@click.argument("out", type=FOLDER)
@click.option(
    "--patients",
    type=click.IntRange(min=3),
    default=10,
    show_default=True,
    help="Number of synthetic patients (at least one for each of train, validation and test).",
)
@click.option("--seed", default=0, show_default=True)
def phantoms(out: Path, patients: int, seed: int):
    """Write synthetic cardiac cine in the ACDC layout to OUT (a new or empty folder)."""
    from heart_sr_tf.commands.data import write_phantoms

    folders = write_phantoms(out, patients, seed)
    click.echo(f"wrote {len(folders)} phantom patients to {out / 'training'}")


def data_options(f):
    f = click.option("--data-dir", type=FOLDER, help="Prepared TFDS folder.")(f)
    return click.option("--acdc-dir", type=FOLDER, help="ACDC folder (default: built-in phantoms).")(f)


@main.command()
@data_options
@click.option("--seed", default=0, show_default=True, help="Seed of the patient split.")
@click.option("--strict", is_flag=True, help="Stop at the first bad patient instead of skipping it.")
@click.option("--force", is_flag=True, help="Rebuild even if the dataset exists.")
def prepare(acdc_dir: Path | None, data_dir: Path | None, seed: int, strict: bool, force: bool):
    """Build the acdc_sr TFDS dataset (full slices and heart boxes) from ACDC_DIR."""
    from heart_sr_tf.commands.data import prepare_dataset

    prepare_dataset(acdc_dir, data_dir, seed, strict, force, click.echo, _warn)


def train_options(f=None, *, with_lr: bool = True):
    """The options shared by `train` and `sweep` (`sweep` takes --lr several times itself)."""
    if f is None:
        return lambda g: train_options(g, with_lr=with_lr)
    options = [
        click.option("--config", "config_path", help="TOML config file, or the name of a shipped config."),
        click.option("--steps", type=click.IntRange(min=1), help="Steps of every stage (WGAN: of the run)."),
        click.option("--epochs", type=click.IntRange(min=1), help="Epochs of every stage (every slice once)."),
        click.option("--lr", type=POSITIVE, help="Learning rate of both networks.") if with_lr else None,
        click.option(
            "--strategy",
            type=click.Choice(["default", "mirrored", "multiworker", "auto"]),
            default="default",
            show_default=True,
        ),
        click.option("--vgg-weights", type=click.Path(dir_okay=False), help="VGG19 ImageNet weights (.h5)."),
        click.option("--runs-dir", type=FOLDER, default=Path("runs")),
        click.option("--seed", type=int, help="Seed of the initial weights and the sampling (default: the config's)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        if option is not None:
            f = option(f)
    return data_options(f)


RESUME = click.option("--resume", type=FOLDER, help="Continue the run in this folder.")


@main.group()
def train():
    """Train a model."""


@train.command("srgan")
@train_options
@RESUME
@click.option("--name", help="Run name (default: srgan-DATE-TIME).")
@click.option(
    "--init-from", type=FOLDER, help="Start from the generator of this run or exported SavedModel (same architecture)."
)
def train_srgan_command(strategy, vgg_weights, quiet, **options):
    """Train the SRGAN (CPU-sized config on the built-in phantoms by default)."""
    from heart_sr_tf.commands.train import train_srgan

    train_srgan(options, strategy, vgg_weights, quiet, click.echo, _warn)


@train.command("wgan")
@train_options
@click.option("--dims", type=click.Choice(["2", "3"]), help="2D slices or 3D volumes (default: the config's, else 2).")
@RESUME
@click.option("--name", help="Run name (default: wgan-DATE-TIME).")
@click.option(
    "--init-from",
    type=FOLDER,
    help="Start from the generator of this run or exported SavedModel (a 2D one inflates into a 3D generator).",
)
def train_wgan_command(strategy, vgg_weights, quiet, dims, **options):
    """Train the WGAN-GP with the five-phase controller (CPU-sized config on the phantoms by default)."""
    from heart_sr_tf.commands.train import train_wgan

    train_wgan({**options, "dims": None if dims is None else int(dims)}, strategy, quiet, click.echo, _warn)


@train.command("segmenter")
@click.option("--acdc-dir", type=FOLDER, help="ACDC folder with labels (default: built-in phantoms).")
@click.option("--config", "config_path", help="TOML config file, or the name of a shipped config.")
@click.option("--steps", type=click.IntRange(min=1), help="Training steps.")
@click.option("--runs-dir", type=FOLDER, default=Path("runs"))
@click.option("--name", help="Run name (default: segmenter-DATE-TIME).")
@RESUME
@click.option("--quiet", is_flag=True, help="No progress bar.")
def train_segmenter_command(acdc_dir, config_path, steps, runs_dir, name, resume, quiet):
    """Train the U-Net segmenter on full-resolution slices of the training patients (for --clinical, --measure)."""
    from heart_sr_tf.commands.train import train_segmenter

    train_segmenter(resume, config_path, acdc_dir, steps, runs_dir, name, quiet, click.echo)


@main.group()
def sweep():
    """Train the same configuration once per learning rate (the paper's Table 1)."""


@sweep.command("srgan")
@train_options(with_lr=False)
@click.option("--lr", "lrs", type=POSITIVE, multiple=True, default=(1e-3, 2e-4, 1e-5), show_default=True)
@click.option("--name", default="sweep", show_default=True, help="Prefix of the run names.")
def sweep_srgan_command(strategy, vgg_weights, quiet, lrs, name, **options):
    """One run per --lr, each scored on validation, printed next to the degradation's baselines."""
    from heart_sr_tf.commands.train import sweep_srgan

    options.update(resume=None, lr=None, name=None)
    sweep_srgan(options, lrs, name, strategy, vgg_weights, quiet, click.echo, _warn)


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
    type=FOLDER,
    help="Where results go (default: RUN/evaluation/SPLIT for a run, ./evaluation/NAME/SPLIT for a SavedModel).",
)
@click.option("--limit", type=click.IntRange(min=1), help="At most this many slices per roi.")
@click.option(
    "--figures", "n_figures", type=click.IntRange(min=0), default=4, show_default=True, help="Figures to draw."
)
@click.option(
    "--clinical",
    is_flag=True,
    help="Also segment the split's ED/ES frames at full resolution, through the baselines and the model, and "
    "report Dice, volumes, ejection fractions and myocardial mass against the ground truth (--limit: patients).",
)
@click.option("--segmenter", type=click.Path(path_type=Path), help="The exported segmenter (default: the shipped one).")
@click.option(
    "--cine-dir",
    "cine_dirs",
    multiple=True,
    type=click.Path(path_type=Path),
    help="Score on whole cines (every frame) found here and in the ACDC source instead of the stored slices.",
)
@click.option(
    "--patients",
    callback=lambda ctx, param, value: None if value is None else [p for p in value.split(",") if p],
    help="With --cine-dir: these patients (comma-separated; default: those the model held out for --split).",
)
@backend_options(default_backend="tensorflow", default_precision="float32")
@click.option("--quiet", is_flag=True)
def evaluate(**options):
    """Score a run or SavedModel next to its degradation's baselines (the paper's section 6, done soundly)."""
    from heart_sr_tf.commands.evaluate import evaluate_model

    evaluate_model(**options, echo=click.echo, warn=_warn)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@data_options
@click.option("--calibration", type=click.IntRange(1, 1024), default=64, show_default=True, help="Training slices.")
@click.option(
    "--check", type=click.IntRange(min=0), default=48, show_default=True, help="Validation slices checked vs float32."
)
@click.option("--quiet", is_flag=True)
def quantize(model, acdc_dir, data_dir, calibration, check, quiet):
    """Make an exported model's int8 twin for OpenVINO (--precision int8), calibrated on real training slices."""
    from heart_sr_tf.commands.quantize import quantize_model

    quantize_model(model, acdc_dir, data_dir, calibration, check, quiet, click.echo, _warn)


@main.command()
@click.argument("run_dir", metavar="RUN", type=click.Path(path_type=Path))
@click.option("--name", help="Model name, TF Serving's model folder (default: the run's or model's name).")
@click.option("--version", type=click.IntRange(min=1), help="Version number (default: the next one).")
@click.option("--out", type=FOLDER, default=Path("saved_models"), show_default=True)
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
    type=click.Choice(["float32", "bfloat16", "int8"]),
    default="float32",
    show_default=True,
    help="bfloat16: convolutions computed in bfloat16 (float32 in and out), for TF Serving on AMX/AVX512_BF16 CPUs. "
    "int8: the OpenVINO IR that `quantize` made, for OpenVINO Model Server.",
)
def export(**options):
    """Export a run's generator as a SavedModel at OUT/NAME/VERSION for TensorFlow Serving.

    RUN may also be an exported model (a SavedModel, base path or shipped name): it is rebuilt from its
    metadata, e.g. to write a bfloat16 twin of a shipped model.
    """
    from heart_sr_tf.commands.export import export_model

    click.echo(export_model(**options))


@main.command()
@click.argument("in_path", metavar="IN", type=click.Path(path_type=Path))
@click.argument("out_path", metavar="OUT", type=click.Path(path_type=Path))
@click.option("--series", type=int, help="DICOM input: the SeriesNumber of the series to read, if IN holds several.")
@click.option(
    "--model",
    type=click.Path(path_type=Path),
    default="rrdb_kspace",
    show_default=True,
    help="SavedModel, model base path (highest version), run folder, or the name of a shipped model.",
)
@click.option("--server", help="TF Serving model URL, e.g. http://localhost:8501/v1/models/rrdb (instead of --model).")
@click.option(
    "--scale",
    type=click.IntRange(min=2),
    help="Scale the served model must have (--server); it is learnt from one small request and checked.",
)
@click.option(
    "--batch-size",
    type=click.IntRange(min=1),
    help="Slices per model call (default 16; 32 planes for a through-plane model; fewer when they are large: "
    "a call holds at most 147,456 LR pixels).",
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
@click.option(
    "--measure",
    is_flag=True,
    help="Segment the result (the shipped ACDC segmenter, or --segmenter) and write OUT_labels.nii.gz and "
    "OUT_volumes.csv: LV, RV and myocardium volumes per frame, ED, ES and ejection fractions.",
)
@click.option("--segmenter", type=click.Path(path_type=Path), help="The exported segmenter for --measure.")
@click.option("--overwrite", is_flag=True, help="Replace OUT (and --measure's files) if they exist (never the input).")
@backend_options(default_backend="auto", default_precision="auto")
@click.option("--quiet", is_flag=True)
def upscale(**options):
    """Super-resolve every slice and frame of the scan IN into OUT, keeping its geometry.

    IN is a NIfTI file or a DICOM series (its folder). OUT is a .nii/.nii.gz file, or a folder for a derived
    DICOM series in the same study (DICOM input). In-plane by default; across the slices with --through-plane;
    both with --through-plane --in-plane.
    """
    from heart_sr_tf.commands.upscale import upscale_scan

    upscale_scan(**options, echo=click.echo, warn=_warn)


@main.command()
@click.argument("inputs", metavar="INPUTS")
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Where the results and cohort.csv go.")
@click.option("--model", type=click.Path(path_type=Path), default="rrdb_kspace", show_default=True,
              help="The in-plane model, as for upscale.")  # fmt: skip
@click.option("--through-plane", is_flag=True, help="Across the slices, as for upscale.")
@click.option("--through-plane-model", type=click.Path(path_type=Path), help="As for upscale; implies --through-plane.")
@click.option("--in-plane", is_flag=True, help="With --through-plane: also in-plane with --model.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Slices per model call (default 16).")
@click.option("--workers", type=click.IntRange(min=1), default=2, show_default=True,
              help="Worker processes of the local cluster (the cores are shared between them).")  # fmt: skip
@click.option("--scheduler", help="An existing Dask cluster, e.g. tcp://HOST:8786, instead of a local one.")
@backend_options(default_backend="auto", default_precision="auto")
@click.option("--quiet", is_flag=True)
def cohort(**options):
    """Upscale every scan of INPUTS (a folder of NIfTI files and DICOM series, a glob, or a CSV manifest with an
    input and an optional output column) into --out-dir, on a Dask cluster; re-running resumes."""
    from heart_sr_tf.commands.cohort import cohort as run

    sys.exit(run(**options, echo=click.echo))


if __name__ == "__main__":
    main()
