"""Validation PSNR/SSIM against wall time of a run, as a CSV and a PNG plot, next to aligned bicubic.

python benchmarks/training_curve.py runs/rrdb-acdc [--out benchmarks/rrdb_training_curve]
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--out", type=Path, help="file stem (default: benchmarks/<run name>_training_curve)")
    args = parser.parse_args()

    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.validation import Validator

    run = Run.open(args.run)
    data_dir = Path((run.folder / "data_dir").read_text().strip())
    bicubic = Validator(data_dir, run.config.data.scale, run.config.data.validation_slices).bicubic
    rows = [r for r in csv.DictReader(run.csv_path.open()) if r.get("val_psnr")]
    stem = args.out or Path(__file__).parent / f"{run.folder.name}_training_curve"
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["step", "stage", "wall_minutes", "val_psnr", "val_ssim", "bicubic_psnr", "bicubic_ssim"])
        for r in rows:
            writer.writerow(
                [
                    r["step"],
                    r["stage"],
                    round(float(r["wall_s"]) / 60, 2),
                    r["val_psnr"],
                    r["val_ssim"],
                    round(bicubic["psnr"], 4),
                    round(bicubic["ssim"], 4),
                ]
            )
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    minutes = [float(r["wall_s"]) / 60 for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM (7x7)")):
        ax.plot(minutes, [float(r[f"val_{key}"]) for r in rows], marker="o", ms=3, label=run.folder.name)
        ax.axhline(bicubic[key], color="gray", ls="--", label="aligned bicubic")
        ax.set_xlabel("training wall time on 2 CPU cores (minutes)")
        ax.set_ylabel(f"validation {label}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"{run.folder.name}: {run.config.data.validation_slices} whole validation slices, [0, 1], data range 1"
    )
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)
    print(f"wrote {stem.with_suffix('.csv')} and {stem.with_suffix('.png')}")


if __name__ == "__main__":
    main()
