"""The README's through-plane figure: a long-axis reslice of a real ACDC short-axis stack, upsampled across its
slices by g with cubic interpolation and with the through-plane model, beside the stack as acquired.

    python benchmarks/throughplane_figure.py [--patient patient085] [--model throughplane_x6] [--out PNG]

A real stack holds no ground truth between its slices, so this picture shows plausibility (continuous walls,
no staircase); the numbers with ground truth come from `evaluate --through-plane` on in-plane slices.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--acdc-dir", type=Path, default=os.environ.get("HEART_SR_ACDC_DIR"))
    parser.add_argument("--patient", default="patient032")
    parser.add_argument("--model", default="throughplane_x6")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "throughplane_reslice.png")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures
    if args.acdc_dir is None:
        sys.exit("error: --acdc-dir or $HEART_SR_ACDC_DIR: the real ACDC folder")

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import nibabel as nib
    import numpy as np

    from heart_sr_tf.data.acdc import find_patients
    from heart_sr_tf.data.intensity import normalise
    from heart_sr_tf.data.interpolation import axis_matrix
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.volumes.through_plane import ThroughPlane

    patient = next(p for p in find_patients(args.acdc_dir) if p.id == args.patient)
    frame = sorted(patient.folder.glob(f"{patient.id}_frame[0-9][0-9].nii.gz"))[0]
    image = nib.load(str(frame))
    zooms = image.header.get_zooms()
    volume = normalise(np.asarray(image.dataobj, np.float32))  # [x, y, z]
    labels = np.asarray(nib.load(str(frame).replace(".nii.gz", "_gt.nii.gz")).dataobj)
    across = ThroughPlane(load_predictor(args.model))
    g = across.g

    class Bar:
        def update(self, n):
            pass

    model = across.model(volume[..., None], Bar())[..., 0]  # [x, y, g*z]
    rows = axis_matrix(volume.shape[2], g * volume.shape[2], g, "cubic", start=across.start)  # at its slices
    cubic = np.clip(np.einsum("kz,xyz->xyk", rows, volume), 0, 1)
    stack = np.repeat(volume, g, axis=2)  # each acquired slice over its slab: the g output rows that tile it
    xs, ys = np.nonzero((labels == 3).any(axis=2))  # a line through the left ventricle's centre
    y = int(np.round(ys.mean()))
    x0, x1 = max(0, xs.min() - 40), min(volume.shape[0], xs.max() + 40)
    panels = [("acquired stack (each slice repeated)", stack), ("cubic across slices", cubic), ("model", model)]
    aspect = (zooms[2] / g) / zooms[0]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for ax, (title, data) in zip(axes, panels, strict=True):
        ax.imshow(data[x0:x1, y, :].T, cmap="gray", vmin=0, vmax=1, aspect=aspect, origin="lower")
        ax.set_title(title, fontsize=10)
        ax.axis("off")
    fig.suptitle(
        f"ACDC {patient.id} {frame.name}: reslice along the slice axis at y = {y}; slices {zooms[2]:g} mm apart, "
        f"pixels {zooms[0]:.2f} mm; x{g} across slices ({args.model})",
        fontsize=9,
    )
    fig.tight_layout()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
