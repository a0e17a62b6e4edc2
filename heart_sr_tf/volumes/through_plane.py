"""Through-plane super-resolution of a stack: each frame's slice axis upsampled by g with a 2D model.

A through-plane model (trained on the ``through_plane`` degradation, data/thick_slices.py) maps an image whose
first axis is sampled every g rows to one sampled every row: ``[h, w] -> [g*h, w]``. For a frame
``[x, y, z]`` the planes that contain the slice axis are fed to it in both in-plane orientations (the ``[z, y]``
planes at every x and the ``[z, x]`` planes at every y) and the two results are averaged.

Where the output slices lie: the model learnt that LR row r is the mean of the t HR rows
``g*r - floor((t-1)/2) .. g*r + floor(t/2)``, so an acquired slice (the centre of its slab) lies (t-1)/2 output
slices after the first of its t rows. The output holds the g*z slices that tile the acquired slabs, from the
first slab's first row to the last slab's last (for contiguous slices, t = g): output slice j lies at input
slice ``(j - (t-1)/2) / g``, so it covers exactly the extent the acquired stack covers, and ventricular volumes
summed over it count what the stack's own slices count. (The rows before the first slice's own come from the
model with the first slice repeated in front.) For an even t no output slice lies on an acquired one: they lie
half a row either side.

g comes from the header: the slice spacing over the in-plane pixel. The shipped model with the nearest g is
used; the output grid is not resampled: its slices are ``spacing / g`` apart, so a non-integer ratio leaves the
voxels slightly anisotropic (the spacing is written in the header, and said).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heart_sr_tf.data.interpolation import axis_matrix
from heart_sr_tf.errors import HeartSRError

THROUGH_PLANE_BATCH = 32  # planes per model call by default: they are narrow (one LR row per slice)
MODEL_PATTERN = re.compile(r"throughplane_x(\d+)$")


class ThroughPlane:
    """The upsampling step for :func:`heart_sr_tf.volumes.upscale.upscale_file`, across the slices."""

    desc, unit = "across slices", "plane"

    def __init__(self, predictor, batch_size: int = 32):
        if predictor.degradation.kind != "through_plane":
            raise HeartSRError(
                f"{predictor.source}: not a through-plane model (trained for {predictor.degradation.kind}); "
                "--through-plane needs one, e.g. throughplane_x6"
            )
        self.predictor, self.batch_size = predictor, batch_size
        self.g = predictor.scale
        self.factors = (1, 1, self.g)
        thickness = predictor.degradation.thickness or self.g
        self.lead = (thickness - 1) // 2  # the model's rows of the first slab before the first slice's own row
        self.start = -(thickness - 1) / 2  # where output slice 0 lies, in output slices from input slice 0
        self.offsets = (0.0, 0.0, self.start / self.g)  # ... and per axis in input voxels

    def units(self, shape) -> int:  # progress units: planes, both orientations, every frame
        return (shape[0] + shape[1]) * shape[3]

    def describe(self, zooms) -> str:
        pixel = _inplane(zooms)
        return (
            f"{self.predictor.source} (g = {self.g}; {self.predictor.backend}, {self.predictor.precision}); "
            f"slice spacing {zooms[2]:g} mm over in-plane pixel {pixel:g} mm = {float(zooms[2]) / pixel:.2f}; "
            f"the output slices are {zooms[2] / self.g:.3g} mm apart (not resampled) and tile the acquired "
            f"slabs: the first lies {-self.start * zooms[2] / self.g:.3g} mm before IN's first slice"
        )

    def model(self, scaled: np.ndarray, bar) -> np.ndarray:
        """``[x, y, z, T]`` in [0, 1] -> ``[x, y, g*z, T]``, the mean of both orientations."""
        x, y, z, frames = scaled.shape
        along_y = self._planes(np.transpose(scaled, (0, 3, 2, 1)).reshape(x * frames, z, y), bar)  # [z, y] planes
        along_x = self._planes(np.transpose(scaled, (1, 3, 2, 0)).reshape(y * frames, z, x), bar)  # [z, x] planes
        along_y = np.transpose(along_y.reshape(x, frames, -1, y), (0, 3, 2, 1))
        along_x = np.transpose(along_x.reshape(y, frames, -1, x), (3, 0, 2, 1))
        return 0.5 * (along_y + along_x)

    def _planes(self, planes: np.ndarray, bar) -> np.ndarray:
        """``[n, z, w]`` planes, slice axis first -> ``[n, g*z, w]``: the rows that tile the acquired slabs (the
        first slice repeated in front gives the model's rows before the first slice's own)."""
        padded, first = planes, 0
        if self.lead:
            padded, first = np.concatenate([planes[:, :1], planes], axis=1), self.g - self.lead
        out = []
        for start in range(0, len(padded), self.batch_size):
            batch = np.ascontiguousarray(padded[start : start + self.batch_size, ..., None], dtype=np.float32)
            out.append(self.predictor(batch)[:, first : first + self.g * planes.shape[1], :, 0])
            bar.update(len(batch))
        return np.concatenate(out)

    def interpolate(self, excess: np.ndarray) -> np.ndarray:
        """Cubic along the slice axis at the output slices' positions, for the part of the intensities above the
        protocol's clip."""
        n = excess.shape[2]
        rows = axis_matrix(n, self.g * n, self.g, "cubic", start=self.start).astype(np.float32)
        return np.einsum("kz,xyz->xyk", rows, excess)


@dataclass(frozen=True)
class Choice:
    path: Path
    g: int
    ratio: float


def _inplane(zooms) -> float:
    return float(np.mean(zooms[:2]))


def slice_ratio(zooms) -> float:
    """The slice spacing over the in-plane pixel (the mean of the two in-plane zooms): the g a scan needs."""
    if len(zooms) < 3 or min(zooms[:3]) <= 0:
        raise HeartSRError(f"the header's voxel sizes {tuple(zooms)} do not give a slice spacing")
    return float(zooms[2]) / _inplane(zooms)


def available_models(dirs) -> dict[int, Path]:
    """g -> the first ``throughplane_x<g>`` model found in ``dirs`` (in order)."""
    found: dict[int, Path] = {}
    for folder in dirs:
        for path in sorted(Path(folder).glob("throughplane_x*")) if Path(folder).is_dir() else []:
            match = MODEL_PATTERN.match(path.name)
            if match and path.is_dir():
                found.setdefault(int(match.group(1)), path)
    return found


def choose_model(zooms, dirs) -> Choice:
    """The through-plane model whose g is nearest the scan's slice spacing over its in-plane pixel."""
    ratio = slice_ratio(zooms)
    models = available_models(dirs)
    if not models:
        raise HeartSRError(f"no through-plane model (throughplane_x<g>) in {', '.join(map(str, dirs))}")
    g = min(models, key=lambda k: (abs(k - ratio), k))
    return Choice(models[g], g, ratio)
