"""Cohort throughput on this machine, in one run: a loop of ``upscale`` processes (what a lab scripts today)
against ``cohort`` with 1 and 2 local Dask workers, over the same small real scans (crops of ACDC frames,
where per-process start-up dominates). Prints the CPU model, scans per minute, the share of the loop's time that
start-up takes (imports and the model load, paid once per scan there and once per worker in a cohort), and a
projection to 100,000 cine studies.

    python benchmarks/cohort.py --acdc-dir ../shared/data/acdc [--scans 16]
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nibabel as nib
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from heart_sr_tf.hardware import cpu_model  # noqa: E402


def write_scans(acdc: Path, folder: Path, count: int) -> list[Path]:
    folder.mkdir(parents=True)
    scans = []
    patients = sorted((acdc / "training").glob("patient*"))
    for i in range(count):
        patient = patients[i % len(patients)]
        image = nib.load(str(patient / f"{patient.name}_frame01.nii.gz"))
        data = np.asarray(image.dataobj)
        cx, cy = data.shape[0] // 2, data.shape[1] // 2
        crop = data[cx - 48 : cx + 48, cy - 48 : cy + 48]
        path = folder / f"scan{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(crop, image.affine, image.header), str(path))
        scans.append(path)
    return scans


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--acdc-dir", type=Path, required=True)
    parser.add_argument("--scans", type=int, default=16)
    parser.add_argument("--model", default="rrdb_kspace")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="cohort-bench-"))
    try:
        scans = write_scans(args.acdc_dir, work / "in", args.scans)
        cli = [sys.executable, "cli.py"]
        loop = 0.0
        for scan in scans:
            loop += timed(
                [*cli, "upscale", str(scan), str(work / "loop" / scan.name), "--model", args.model, "--quiet"]
            )
        # the same scan again in one process: its model time alone (start-up = the loop's per-scan time minus this)
        one = timed([*cli, "upscale", str(scans[0]), str(work / "one.nii.gz"), "--model", args.model, "--quiet"])
        rates = {}
        for workers in (1, 2):
            out = work / f"cohort{workers}"
            seconds = timed(
                [*cli, "cohort", str(work / "in"), "--out-dir", str(out), "--model", args.model,
                 "--workers", str(workers), "--quiet"]
            )  # fmt: skip
            rows = (out / "cohort.csv").read_text().splitlines()[1:]
            model_seconds = sum(float(row.split(",")[3]) for row in rows)
            rates[workers] = (60 * len(scans) / seconds, seconds, model_seconds / len(rows))
        print(f"CPU: {cpu_model()}; {len(scans)} scans of 96x96 x slices (ACDC frames), model {args.model}")
        print(f"loop of upscale processes: {60 * len(scans) / loop:.1f} scans/min ({loop / len(scans):.1f} s per scan)")
        for workers, (rate, seconds, per_scan) in rates.items():
            print(
                f"cohort, {workers} local worker(s): {rate:.1f} scans/min ({seconds:.1f} s in all, "
                f"{per_scan:.2f} s per scan inside the workers), {rate / (60 * len(scans) / loop):.2f}x the loop"
            )
        startup = max(0.0, loop / len(scans) - rates[1][2])
        print(
            f"start-up per upscale process (imports, model load): about {startup:.1f} s of {loop / len(scans):.1f} s "
            f"({100 * startup / (loop / len(scans)):.0f}% of the loop's time), paid once per worker by cohort "
            f"(one scan alone took {one:.1f} s)"
        )
        best = max(r[0] for r in rates.values())
        print(
            f"projection: 100,000 such scans at {best:.1f} scans/min take {100_000 / best / 60:.0f} hours on one "
            f"node like this; a whole ACDC-sized cine costs more per scan (see benchmarks/inference.py)"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
