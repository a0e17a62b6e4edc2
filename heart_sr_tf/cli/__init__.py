"""Command-line interface: parses options and calls one function of ``heart_sr_tf.commands`` per command.
Nothing imports this module."""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("ABSL_MIN_LOG_LEVEL", "3")

import click  # noqa: E402

from heart_sr_tf import __version__  # noqa: E402
from heart_sr_tf.cli.group import Group, warn  # noqa: E402
from heart_sr_tf.cli.options import (  # noqa: E402
    FOLDER,
    POSITIVE,
    RESUME,
    SEED,
    backend_options,
    data_options,
    repeated_slices_option,
    series_options,
    train_options,
)
from heart_sr_tf.inference.hardware import QUANTIZE_PRESETS  # noqa: E402


@click.group(cls=Group)
@click.version_option(__version__, prog_name="heart-sr-tf", message="%(prog)s %(version)s")
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
@click.option("--seed", type=SEED, default=0, show_default=True)
def phantoms(out: Path, patients: int, seed: int):
    """Write synthetic cardiac cine in the ACDC layout to OUT (a new or empty folder)."""
    from heart_sr_tf.commands.data import write_phantoms

    folders = write_phantoms(out, patients, seed)
    click.echo(f"wrote {len(folders)} phantom patients to {out / 'training'}")


@main.command()
@data_options
@click.option("--seed", type=SEED, default=0, show_default=True, help="Seed of the patient split.")
@click.option("--strict", is_flag=True, help="Stop at the first bad patient instead of skipping it.")
@click.option("--force", is_flag=True, help="Rebuild even if the dataset exists.")
@click.option(
    "--scans",
    metavar="PATH",
    help="A lab's own scans instead of ACDC: a folder of NIfTI files, DICOM series and zip archives of them (each "
    "series of a flat study a scan; a stack exported one series per slice, one), a glob, or a CSV manifest (input; "
    "optional patient, series). Full slices only, unless --heart-boxes "
    "(no labels).",
)
@click.option(
    "--heart-boxes",
    "heart_boxes",
    is_flag=False,
    flag_value="segmenter",
    default=None,
    metavar="[SEGMENTER]",
    help="With --scans: draw each scan's heart box from a segmenter's segmentation of every frame (the shipped "
    "one when no SEGMENTER is given), so heart-box stages and metrics work.",
)
@series_options
def prepare(
    acdc_dir, data_dir, seed: int, strict: bool, force: bool, scans: str | None, heart_boxes: str | None, series,
):  # fmt: skip
    """Build the acdc_sr TFDS dataset (full slices and heart boxes) from ACDC_DIR, or from a lab's own scans."""
    from heart_sr_tf.commands.data import prepare_dataset

    heart = Path(heart_boxes) if heart_boxes is not None else None
    prepare_dataset(
        acdc_dir, data_dir, seed, strict, force, click.echo, warn, scans=scans, heart_boxes=heart,
        series=series,
    )  # fmt: skip


@main.group()
def train():
    """Train a model."""


@train.command("srgan")
@train_options
@RESUME
@click.option("--name", help="Run name (default: srgan-DATE-TIME).")
@click.option(
    "--init-from",
    type=FOLDER,
    help="Start from the generator of this run or exported SavedModel: the same architecture, other factors of "
    "the same kind, or fewer RRDB blocks (the added ones start as pass-throughs).",
)
def train_srgan_command(strategy, vgg_weights, quiet, **options):
    """Train the SRGAN (CPU-sized config on the built-in phantoms by default)."""
    from heart_sr_tf.commands.train import train_srgan

    train_srgan(options, strategy, vgg_weights, quiet, click.echo, warn)


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

    train_wgan({**options, "dims": None if dims is None else int(dims)}, strategy, quiet, click.echo, warn)


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
    sweep_srgan(options, lrs, name, strategy, vgg_weights, quiet, click.echo, warn)


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
    "--self-ensemble",
    is_flag=True,
    help="Average the model over the eight symmetries of the square, aligned to its LR grid, as export "
    "--self-ensemble builds it (2D in-plane models; 8x the work).",
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
    "report Dice, volumes, ejection fractions and myocardial mass against the ground truth (--limit: patients). "
    "With --scans: every frame, against the full-resolution scan's own segmentation and measurements (--limit: "
    "scans).",
)
@click.option(
    "--segmenter",
    multiple=True,
    type=click.Path(path_type=Path),
    help="The exported segmenter (default: the shipped one). Repeat it to measure through several: the first's "
    "results in OUT, each other's in OUT/clinical_NAME, and a table across them in summary.md.",
)
@click.option(
    "--acquisition-ladder",
    is_flag=True,
    help="With --clinical, k-space models: also measure the same frames acquired at milder factors (1.5, 2, ... "
    "below the model's) and zero-filled, and say which acquisition the model's segmentations and PSNR match.",
)
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
@click.option(
    "--scans",
    help="Score on your own scans instead of ACDC: a NIfTI file, a DICOM series, a folder of them, a glob or a CSV "
    "manifest (as cohort reads them). Every slice of every frame on the protocol grid is the HR image.",
)
@series_options
@click.option(
    "--step",
    type=click.IntRange(min=1),
    help="A run's checkpoint of this step instead of its latest (the one its validation chose).",
)
@backend_options(default_backend="tensorflow", default_precision="float32")
@click.option("--quiet", is_flag=True)
def evaluate(**options):
    """Score a run or SavedModel next to its degradation's baselines (the paper's section 6, done soundly)."""
    from heart_sr_tf.commands.evaluate import evaluate_model

    evaluate_model(**options, echo=click.echo, warn=warn)


@main.command("compare-clinical")
@click.argument("first", type=click.Path(path_type=Path))
@click.argument("second", type=click.Path(path_type=Path))
def compare_clinical(first: Path, second: Path):
    """Two `evaluate --clinical` outputs of the same frames: model A minus model B, patient by patient, with 95%
    intervals (Dice, agreement with full resolution, measurement errors)."""
    from heart_sr_tf.commands.compare import compare_clinical as run

    run(first, second, click.echo)


@main.command("compare-images")
@click.argument("first", type=click.Path(path_type=Path))
@click.argument("second", type=click.Path(path_type=Path))
def compare_images(first: Path, second: Path):
    """Two `evaluate` outputs of the same slices: model A minus model B in PSNR and SSIM, patient by patient, with
    95% intervals (a fine-tune against the model it started from, two checkpoints)."""
    from heart_sr_tf.commands.compare import compare_images as run

    run(first, second, click.echo)


@main.command()
@click.argument("model", type=click.Path(path_type=Path))
@data_options
@click.option("--calibration", type=click.IntRange(1, 1024), default=64, show_default=True, help="Training slices.")
@click.option(
    "--check", type=click.IntRange(min=0), default=48, show_default=True, help="Validation slices checked vs float32."
)
@click.option(
    "--preset",
    type=click.Choice(["auto", *QUANTIZE_PRESETS]),
    default="auto",
    show_default=True,
    help="NNCF's: performance quantises activations symmetrically, mixed asymmetrically (a little closer to "
    "float32 where an activation's range is lopsided, e.g. throughplane_x8). auto: each in that order until the "
    "check finds one within the limits.",
)
@click.option("--quiet", is_flag=True)
def quantize(model, acdc_dir, data_dir, calibration, check, preset, quiet):
    """Make an exported model's int8 twin for OpenVINO (--precision int8), calibrated on real training slices."""
    from heart_sr_tf.commands.quantize import quantize_model

    quantize_model(model, acdc_dir, data_dir, calibration, check, quiet, click.echo, warn, preset)


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
    help="Average over the symmetries the degradation keeps, aligned to the LR grid: the eight of the square "
    "in-plane (8x the work), the four flips through-plane (4x). 2D models. An exported RUN keeps what its "
    "metadata records.",
)
@click.option(
    "--precision",
    type=click.Choice(["float32", "bfloat16", "int8"]),
    default="float32",
    show_default=True,
    help="bfloat16: convolutions computed in bfloat16 (float32 in and out), for TF Serving on AMX/AVX512_BF16 CPUs. "
    "int8: the OpenVINO IR that `quantize` made, for OpenVINO Model Server.",
)
@click.option(
    "--step",
    type=click.IntRange(min=1),
    help="A run's checkpoint of this step instead of its latest (the one its validation chose; a run keeps "
    "train.keep_checkpoints of them).",
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
@click.argument("out_path", metavar="OUT", type=click.Path())  # a string: a trailing / names a DICOM folder
@click.option(
    "--series",
    help="DICOM input holding several series: the one to read, by SeriesNumber or SeriesInstanceUID (the UID where "
    "numbers repeat, as in a folder of several patients' studies); several, comma-separated or a range (5-16), are "
    "read as one stack (a cine exported one series per slice, which is joined on its own when it is alone).",
)
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
    help="Scale the in-plane model must have, checked before any work (a served one's is learnt from one small "
    "request).",
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
    "--slice-thickness",
    type=POSITIVE,
    metavar="MM",
    help="With --through-plane: the slices' thickness in mm. Slices thinner than their spacing (a gap) pick "
    "the model trained for that slab, throughplane_x<g>_t<t>. Default: a DICOM header's SliceThickness, or a "
    "NIfTI's BIDS sidecar's (NAME.json beside it, as dcm2niix writes), else contiguous slices.",
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
    "OUT_volumes.csv: LV, RV and myocardium volumes per frame, ED, ES and ejection fractions, each next to the "
    "same measurement of IN as acquired.",
)
@click.option("--segmenter", type=click.Path(path_type=Path), help="The exported segmenter for --measure.")
@click.option("--height-cm", help="With --measure: the patient's height, to index the volumes to body surface area "
              "(a NIfTI holds none; it replaces a DICOM header's). Give --weight-kg too.")  # fmt: skip
@click.option("--weight-kg", help="With --measure: the patient's weight (see --height-cm).")
@click.option("--overwrite", is_flag=True, help="Replace OUT (and --measure's files) if they exist (never the input).")
@repeated_slices_option
@backend_options(default_backend="auto", default_precision="auto")
@click.option("--quiet", is_flag=True)
def upscale(**options):
    """Super-resolve every slice and frame of the scan IN into OUT, keeping its geometry.

    IN is a NIfTI file, a DICOM series (its folder), or a zip archive of one. OUT is a .nii/.nii.gz file, or a
    folder for a derived DICOM series in the same study (DICOM input). In-plane by default; across the slices with
    --through-plane; both with --through-plane --in-plane.
    """
    from heart_sr_tf.commands.upscale import upscale_scan

    upscale_scan(**options, echo=click.echo, warn=warn)


@main.command()
@click.argument("inputs", metavar="INPUTS")
@click.option("--out-dir", type=click.Path(path_type=Path), required=True, help="Where the results and cohort.csv go.")
@click.option("--model", type=click.Path(path_type=Path), default="rrdb_kspace", show_default=True,
              help="The in-plane model, as for upscale.")  # fmt: skip
@click.option("--through-plane", is_flag=True, help="Across the slices, as for upscale.")
@click.option("--through-plane-model", type=click.Path(path_type=Path), help="As for upscale; implies --through-plane.")
@click.option("--in-plane", is_flag=True, help="With --through-plane: also in-plane with --model.")
@click.option("--batch-size", type=click.IntRange(min=1), help="Slices per model call (default 16).")
@click.option("--workers", type=click.IntRange(min=1),
              help="Worker processes of the local cluster, at most one per core (default: 2, or the cores when fewer; "
              "the cores are shared between them).")  # fmt: skip
@click.option("--scheduler", help="An existing Dask cluster, e.g. tcp://HOST:8786, instead of a local one.")
@click.option(
    "--measure",
    is_flag=True,
    help="As for upscale, for every scan (next to the scan as acquired), and one row per scan in "
    "--out-dir/measurements.csv: ED, ES, volumes, ejection fractions, myocardial mass, wall thickness.",
)
@click.option("--segmenter", type=click.Path(path_type=Path), help="The exported segmenter for --measure.")
@series_options
@click.option(
    "--dicom-out",
    is_flag=True,
    help="Write each DICOM scan's result as a derived DICOM series (a folder, in the scan's study) instead of NIfTI; "
    "NIfTI scans stay NIfTI.",
)
@backend_options(default_backend="auto", default_precision="auto")
@click.option("--quiet", is_flag=True)
def cohort(**options):
    """Upscale every scan of INPUTS (a folder of NIfTI files, DICOM series and zip archives of them, each series of a
    study exported flat a scan of its own, a stack exported one series per slice one scan; a glob; or a CSV manifest
    with an input column and optional output, patient, series, height_cm, weight_kg and slice_thickness_mm
    columns) into --out-dir, on a Dask cluster; re-running resumes."""
    from heart_sr_tf.commands.cohort import cohort as run

    sys.exit(run(**options, echo=click.echo, warn=warn))


if __name__ == "__main__":
    main()
