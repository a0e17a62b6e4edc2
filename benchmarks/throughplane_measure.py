"""Does `upscale --through-plane --measure` measure what the acquired slices measure? On a split's labelled ED and
ES frames, each frame is upscaled across its slices (the shipped model nearest its spacing, as `upscale` picks
it) and by cubic interpolation on the same grid, then segmented by `--measure`'s own code; the scan as acquired
is segmented the same way. Each is compared with the same measurements from the ground-truth labels (on the
acquired slices: the clinical standard, the sum of slice areas times the spacing).

    python benchmarks/throughplane_measure.py --acdc-dir ../shared/data/acdc [--split test] [--limit N]

Prints, per measurement, the mean absolute error and bias against the ground truth for the scan as acquired,
the model and cubic, and the model's absolute error minus the acquired scan's, patient by patient, with its 95%
interval by resampling patients. No speed figure: nothing here is timed.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MEASURES = ("LVEDV", "LVESV", "LVEF", "RVEDV", "RVESV", "RVEF", "myo_mass")
SOURCES = ("acquired", "model", "cubic")


class CubicAcross:
    """A through-plane "model" that is cubic interpolation (cv2's kernel) along the slice axis, with its samples
    where the model's degradation puts a slab's centre, so that `ThroughPlane` places its rows as the model's."""

    backend, precision = "NumPy", "float64"  # (what ThroughPlane.describe names)

    def __init__(self, degradation):
        self.degradation, self.scale, self.source = degradation, degradation.factor, "cubic"
        t = degradation.thickness
        self.start = -((t - 1) / 2 - (t - 1) // 2)  # the half row of an even slab

    def __call__(self, batch):
        import numpy as np

        from heart_sr_tf.data.interpolation import axis_matrix

        rows = axis_matrix(batch.shape[1], self.scale * batch.shape[1], self.scale, "cubic", start=self.start)
        return np.einsum("kz,nzw->nkw", rows, batch[..., 0]).astype(np.float32)[..., None]


def main() -> None:
    import numpy as np

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, required=True)
    parser.add_argument("--split", default="test", choices=("train", "validation", "test"))
    parser.add_argument("--segmenter", type=Path, default=ROOT / "saved_models" / "segmenter")
    parser.add_argument("--limit", type=int, default=None, help="the first N patients only")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()
    import nibabel as nib

    from heart_sr_tf.cardiac_metrics import STRUCTURES, agreement, paired_difference, patient_measurements
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.segmentation import split_of
    from heart_sr_tf.export.discovery import shipped_model_dirs
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.inference.segmenter import Segmenter
    from heart_sr_tf.progress import progress_bar
    from heart_sr_tf.volumes.measure import ACQUIRED, measure_scan, read_volumes
    from heart_sr_tf.volumes.through_plane import ThroughPlane, choose_model
    from heart_sr_tf.volumes.upscale import upscale_file

    segmenter = Segmenter(args.segmenter)
    patients = split_of(args.acdc_dir, args.split)[: args.limit]
    steps: dict[int, tuple] = {}
    measured: dict[str, dict[str, list[float]]] = {s: {m: [] for m in MEASURES} for s in ("truth", *SOURCES)}
    with progress_bar(2 * len(patients), "frames", "frame") as bar, tempfile.TemporaryDirectory() as tmp:
        for patient in patients:
            volumes: dict[str, dict[str, dict[str, float]]] = {s: {} for s in ("truth", *SOURCES)}
            for number, phase in ((patient.info.ed, "ED"), (patient.info.es, "ES")):
                path = patient.frame_paths[number]
                image = nib.load(str(path))
                zooms = image.header.get_zooms()[:3]
                truth = np.asarray(nib.load(str(patient.label_paths[number])).dataobj)
                voxel_ml = float(np.prod(zooms)) / 1000.0
                volumes["truth"][phase] = {k: float((truth == v).sum()) * voxel_ml for k, v in STRUCTURES.items()}
                choice = choose_model(zooms, shipped_model_dirs())
                if choice.g not in steps:
                    model = ThroughPlane(load_predictor(choice.path, "auto", "auto"))
                    steps[choice.g] = (model, ThroughPlane(CubicAcross(model.predictor.degradation)))
                acquired = read_scan(path, ndims=(3,))
                for source, step in zip(("model", "cubic"), steps[choice.g], strict=True):
                    out = Path(tmp) / f"{source}.nii.gz"
                    upscale_file(acquired, out, through_plane=step, quiet=True, overwrite=True)
                    _, table, _, _ = measure_scan(out, segmenter, quiet=True, acquired=acquired)
                    (row,) = read_volumes(table)
                    volumes[source][phase] = {k: float(row[f"{k}_ml"]) for k in STRUCTURES}
                    volumes["acquired"][phase] = {k: float(row[f"{ACQUIRED}{k}_ml"]) for k in STRUCTURES}
                bar.update(1)
            for source, by_phase in volumes.items():
                values = patient_measurements(by_phase["ED"], by_phase["ES"])
                for m in MEASURES:
                    measured[source][m].append(values[m])
    truth = measured["truth"]
    print(
        f"{len(patients)} {args.split} patients, ED and ES; each frame across its slices with the shipped model "
        f"nearest its spacing (g = {', '.join(map(str, sorted(steps)))}); segmenter {args.segmenter}"
    )
    print("error against the ground-truth labels' measurements: MAE (bias); units ml, %, g")
    print(f"| measure | {' | '.join(SOURCES)} | model's error minus acquired's [95%] |")
    print(f"|---|{'---|' * len(SOURCES)}---|")
    for m in MEASURES:
        cells = []
        for source in SOURCES:
            a = agreement(measured[source][m], truth[m])
            cells.append(f"{a['mae']:.1f} ({a['bias']:+.1f})")
        errors = {s: np.abs(np.subtract(measured[s][m], truth[m])) for s in ("model", "acquired")}
        d = paired_difference(errors["model"], errors["acquired"])
        print(f"| {m} | {' | '.join(cells)} | {d['mean']:+.1f} [{d['low']:+.1f}, {d['high']:+.1f}] |")


if __name__ == "__main__":
    main()
