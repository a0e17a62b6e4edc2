"""Option types and option sets that several commands share."""

from __future__ import annotations

import functools
import math
from pathlib import Path

import click

from heart_sr_tf.cohort.series_filter import SeriesFilter
from heart_sr_tf.config import MAX_SEED
from heart_sr_tf.inference.hardware import BACKENDS, PRECISIONS

BACKEND_OPTIONS = {  # option -> (choices, help)
    "--backend": (
        ["auto", *BACKENDS],
        "auto: OpenVINO when installed (pip install -e '.[openvino]'), else TensorFlow.",
    ),
    "--precision": (
        list(PRECISIONS),
        "auto: bfloat16 where the CPU (AVX512_BF16/AMX) or GPU computes it natively; elsewhere the model's int8 "
        "twin in OpenVINO when `quantize` found it within its accuracy limits, else float32. "
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
SEED = click.IntRange(0, MAX_SEED)


repeated_slices_option = click.option(
    "--repeated-slices",
    type=click.Choice(["apart", "latest"]),
    default="apart",
    show_default=True,
    help="A cine stack exported one series per slice in which a slice was acquired again: apart leaves its series "
    "apart, each a scan of its own, with a note naming them; latest takes each such slice from the series acquired "
    "last (by acquisition time, else series number) and leaves the earlier out, named.",
)


def series_options(command):
    """``--series-description`` and ``--repeated-slices``: which of the DICOM series found in folders a command
    takes, passed on as one ``series`` (a :class:`SeriesFilter`; None when neither option is given)."""

    @functools.wraps(command)
    def call(*args, series_description=None, repeated_slices="apart", **options):
        asked = series_description is not None or repeated_slices != "apart"
        series = SeriesFilter(series_description, latest=repeated_slices == "latest") if asked else None
        return command(*args, series=series, **options)

    call = repeated_slices_option(call)
    return click.option(
        "--series-description",
        metavar="PATTERN",
        help="Of the DICOM series found in folders, only those whose SeriesDescription matches this shell pattern, "
        "in any case (e.g. '*sax*': the short-axis cines of a study's export, not its localisers or long-axis "
        "views); NIfTI files and a manifest's rows are kept.",
    )(call)


class _Positive(click.ParamType):
    """A finite number > 0 (click's FloatRange lets nan and inf through)."""

    name = "number"

    def convert(self, value, param, ctx):
        number = click.FLOAT.convert(value, param, ctx)
        if not math.isfinite(number) or number <= 0:
            self.fail(f"{value!r} is not a finite number > 0", param, ctx)
        return number


POSITIVE = _Positive()


def data_options(f):
    f = click.option("--data-dir", type=FOLDER, help="Prepared TFDS folder.")(f)
    return click.option("--acdc-dir", type=FOLDER, help="ACDC folder (default: built-in phantoms).")(f)


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
        click.option("--seed", type=SEED, help="Seed of the initial weights and the sampling (default: the config's)."),
        click.option("--quiet", is_flag=True, help="No progress bar."),
    ]
    for option in reversed(options):
        if option is not None:
            f = option(f)
    return data_options(f)


RESUME = click.option("--resume", type=FOLDER, help="Continue the run in this folder.")
