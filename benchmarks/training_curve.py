"""Validation PSNR/SSIM against wall time of a run, as a CSV and a PNG plot, next to its degradation's baselines.

python benchmarks/training_curve.py runs/rrdb-acdc [--after EARLIER_RUN ...] [--out benchmarks/rrdb_training_curve]

``--after`` (repeatable, oldest first) names the runs this one continues (``--init-from``): their curves come
first and each run's steps and minutes continue from the previous one's last row, so the plot shows where the
extra training time went.
"""

from __future__ import annotations

import argparse
import csv
import os
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def curve(run, step0: int = 0, minutes0: float = 0.0) -> list[dict]:
    rows = [r for r in csv.DictReader(run.csv_path.open()) if r.get("val_psnr")]
    return [
        {
            "run": run.folder.name,
            "step": step0 + int(r["step"]),
            "stage": r["stage"],
            "wall_minutes": round(minutes0 + float(r["wall_s"]) / 60, 2),
            "val_psnr": float(r["val_psnr"]),
            "val_ssim": float(r["val_ssim"]),
        }
        for r in rows
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--after", type=Path, action="append", default=[], help="an earlier run this one continues")
    parser.add_argument("--out", type=Path, help="file stem (default: benchmarks/<run name>_training_curve)")
    args = parser.parse_args()

    from heart_sr_tf.data.degradation import BASELINE_NAMES, Degradation
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.validation import Validator

    run = Run.open(args.run)
    degradation = Degradation.from_config(run.config)
    baselines = Validator(run.data_dir, degradation, run.config.data.validation_slices).baselines
    rows = []
    for part in [*(Run.open(a) for a in args.after), run]:
        rows += curve(part, rows[-1]["step"] if rows else 0, rows[-1]["wall_minutes"] if rows else 0.0)
    stem = args.out or Path(__file__).parent / f"{run.folder.name}_training_curve"
    fixed = {f"{name}_{key}": round(scores[key], 4) for name, scores in baselines.items() for key in ("psnr", "ssim")}
    columns = ["run", "step", "stage", "wall_minutes", "val_psnr", "val_ssim", *fixed]
    with stem.with_suffix(".csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, columns)
        writer.writeheader()
        for r in rows:
            writer.writerow({**r, **fixed})
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.8))
    for ax, key, label in ((axes[0], "psnr", "PSNR (dB)"), (axes[1], "ssim", "SSIM (7x7)")):
        for name in dict.fromkeys(r["run"] for r in rows):
            part = [r for r in rows if r["run"] == name]
            ax.plot([r["wall_minutes"] for r in part], [r[f"val_{key}"] for r in part], marker="o", ms=3, label=name)
        for (name, scores), style in zip(baselines.items(), ("--", ":")):
            ax.axhline(scores[key], color="gray", ls=style, label=BASELINE_NAMES[name])
        ax.set_xlabel("training wall time on 2 CPU cores (minutes)")
        ax.set_ylabel(f"validation {label}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(
        f"{run.folder.name} ({degradation.kind}): {run.config.data.validation_slices} whole validation slices, "
        "[0, 1], data range 1"
    )
    fig.tight_layout()
    fig.savefig(stem.with_suffix(".png"), dpi=100)
    print(f"wrote {stem.with_suffix('.csv')} and {stem.with_suffix('.png')}")


if __name__ == "__main__":
    main()
