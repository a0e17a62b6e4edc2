"""``phantoms`` and ``prepare``, and the data every other command trains or scores on."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.data.prepare import is_prepared, phantom_dir, prepare
from heart_sr_tf.errors import HeartSRError


def write_phantoms(out: Path, patients: int, seed: int) -> list[Path]:
    from heart_sr_tf.data.phantoms import write_phantoms as write

    return write(out, patients, seed)


def prepare_dataset(acdc_dir: Path | None, data_dir: Path | None, seed: int, strict: bool, force: bool, echo, warn):
    """Build the acdc_sr dataset from ``acdc_dir`` (default: the phantoms) and print what it holds."""
    report = prepare(acdc_dir or phantom_dir(), data_dir, seed=seed, strict=strict, force=force)
    echo(f"dataset: {report.data_dir}")
    for roi, counts in report.counts.items():
        parts = ", ".join(f"{split} {counts.get(split, 0)}" for split in ("train", "validation", "test"))
        echo(f"{roi:5s} slices: {parts}")
    echo("patients: " + ", ".join(f"{k} {v}" for k, v in report.patients.items()))
    if report.bad:
        warn(f"skipped {len(report.bad)} bad patient(s):")
        for line in report.bad:
            warn(f"  {line}")
    return report


def resolve_data(
    acdc_dir: Path | None, data_dir: Path | None, seed: int = 0, phantom_patients: int = 10, warn: Echo = print
) -> Path:
    """A prepared dataset: ``--data-dir`` as is, else ``--acdc-dir`` (or the phantoms) prepared on first use."""
    if data_dir is not None and acdc_dir is None:
        if not is_prepared(data_dir):
            raise HeartSRError(
                f"{data_dir}: no prepared acdc_sr dataset; prepare it with "
                f"`python cli.py prepare --acdc-dir ACDC_DIR --data-dir {data_dir}`"
            )
        return data_dir
    source = acdc_dir or phantom_dir(phantom_patients)
    report = prepare(source, data_dir, seed=seed, quiet=False)
    for line in report.bad:
        warn(f"skipped: {line}")
    return report.data_dir
