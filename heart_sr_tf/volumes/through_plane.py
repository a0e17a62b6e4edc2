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

t comes from the slice thickness (``--slice-thickness``, else a DICOM header's SliceThickness or a NIfTI's BIDS
sidecar's, as dcm2niix writes it; when none is stated, contiguous slices are assumed). Many cine protocols leave a
gap: 8 mm slices 10 mm apart fill 0.8 of the spacing, a slab of 4.8 of g = 6 rows. A model trained for contiguous
slices reads such a stack as blurrier than it is (on ACDC's validation slices the x6 model's gain over cubic falls
from +3.0 to +1.3 dB when the slices are 5 of 6 rows thick), so among the models of that g (``throughplane_x<g>``
for t = g, ``throughplane_x<g>_t<t>`` otherwise) the one whose t/g is nearest the stack's thickness over its
spacing is used.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from heart_sr_tf.data.interpolation import axis_matrix
from heart_sr_tf.errors import HeartSRError

THROUGH_PLANE_BATCH = 32  # planes per model call by default: they are narrow (one LR row per slice)
MODEL_PATTERN = re.compile(r"throughplane_x(\d+)(?:_t(\d+))?$")  # g, and t when the slices leave a gap


def check_through_plane(source, degradation) -> None:
    """A model trained for ``degradation`` upscales across the slices, or is refused in one line naming
    ``source``."""
    if degradation.kind != "through_plane":
        raise HeartSRError(
            f"{source}: not a through-plane model (trained for {degradation.kind}); --through-plane needs one, "
            "e.g. throughplane_x6"
        )


class ThroughPlane:
    """The upsampling step for :func:`heart_sr_tf.volumes.upscale.upscale_file`, across the slices."""

    desc, unit = "across slices", "plane"

    def __init__(self, predictor, batch_size: int = 32):
        check_through_plane(predictor.source, predictor.degradation)
        self.predictor, self.batch_size = predictor, batch_size
        self.g = predictor.scale
        self.factors = (1, 1, self.g)
        self.t = predictor.degradation.thickness or self.g  # the slab the model was trained for, in output rows
        self.lead = (self.t - 1) // 2  # the model's rows of the first slab before the first slice's own row
        self.start = -(self.t - 1) / 2  # where output slice 0 lies, in output slices from input slice 0
        self.offsets = (0.0, 0.0, self.start / self.g)  # ... and per axis in input voxels

    def units(self, shape) -> int:  # progress units: planes, both orientations, every frame
        return (shape[0] + shape[1]) * shape[3]

    def describe(self, zooms, thickness: Thickness | None = None) -> str:
        pixel = _inplane(zooms)
        slab = "contiguous slices" if self.t == self.g else f"slices {self.t} of its {self.g} rows thick"
        slab = f"trained for {slab}" if self.predictor.backend != "TF Serving" else "taken to be for contiguous slices"
        return (
            f"{self.predictor.source} (g = {self.g}; {self.predictor.backend}, {self.predictor.precision}; "
            f"{slab}); slice spacing {zooms[2]:g} mm over in-plane pixel {pixel:g} mm = "
            f"{float(zooms[2]) / pixel:.2f}; {(thickness or Thickness(None, '')).describe(zooms, self.g)}; "
            f"the output slices are {zooms[2] / self.g:.3g} mm apart (not resampled) and tile the acquired "
            f"slabs: the first lies {-self.start * zooms[2] / self.g:.3g} mm before IN's first slice"
        )

    def mismatch(self, zooms, thickness: Thickness | None) -> str | None:
        """Why the model's slab does not fit the stack's (more than a row off), or None."""
        return (thickness or Thickness(None, "")).mismatch(zooms, self.g, self.t)

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
class Thickness:
    """A stack's slice thickness in mm and where it was read; ``None``: not stated, contiguous slices assumed, and
    ``source`` then says where it was looked for (empty: nowhere said)."""

    mm: float | None
    source: str

    def fill(self, zooms) -> float:
        """The thickness over the slice spacing: 1 for contiguous slices (and when not stated), < 1 with gaps."""
        return 1.0 if self.mm is None else self.mm / float(zooms[2])

    def describe(self, zooms, g: int) -> str:
        if self.mm is None:
            where = self.source or "no DICOM header or BIDS sidecar"
            return f"slice thickness not stated ({where}; --slice-thickness gives it): contiguous slices assumed"
        return (
            f"slices {self.mm:g} mm thick ({self.source}), {self.fill(zooms):.2f} of the spacing: "
            f"{self.fill(zooms) * g:.2f} of g = {g} rows"
        )

    def mismatch(self, zooms, g: int, t: int) -> str | None:
        rows = self.fill(zooms) * g
        if abs(t - rows) <= 1:
            return None
        stated = (
            f"its slices are {self.mm:g} mm thick ({self.source}) and {float(zooms[2]):g} mm apart"
            if self.mm is not None
            else f"its slice thickness is not stated, so contiguous slices are assumed ({g} rows)"
        )
        return (
            f"{stated}: {rows:.1f} of g = {g} rows, but the through-plane model was trained for slices {t} rows "
            "thick; the result is less reliable"
        )


def header_thickness(scan) -> Thickness:
    """The slice thickness the scan states (a DICOM header's, a NIfTI's BIDS sidecar's), else not stated."""
    return Thickness(*scan.stated_thickness())


@dataclass(frozen=True)
class Choice:
    path: Path
    g: int
    ratio: float
    t: int = 0  # the slab the model was trained for, in rows (t = g: contiguous slices)


def _inplane(zooms) -> float:
    return float(np.mean(zooms[:2]))


def slice_ratio(zooms) -> float:
    """The slice spacing over the in-plane pixel (the mean of the two in-plane zooms): the g a scan needs."""
    if len(zooms) < 3 or min(zooms[:3]) <= 0:
        raise HeartSRError(f"the header's voxel sizes {tuple(zooms)} do not give a slice spacing")
    return float(zooms[2]) / _inplane(zooms)


def available_models(dirs) -> dict[tuple[int, int], Path]:
    """(g, t) -> the first ``throughplane_x<g>`` (t = g) or ``throughplane_x<g>_t<t>`` model found in ``dirs``
    (in order)."""
    found: dict[tuple[int, int], Path] = {}
    for folder in dirs:
        for path in sorted(Path(folder).glob("throughplane_x*")) if Path(folder).is_dir() else []:
            match = MODEL_PATTERN.match(path.name)
            if match and path.is_dir():
                g = int(match.group(1))
                found.setdefault((g, int(match.group(2) or g)), path)
    return found


def choose_model(zooms, dirs, thickness: Thickness | None = None) -> Choice:
    """The through-plane model whose g is nearest the scan's slice spacing over its in-plane pixel, and of those
    the one whose slab (t of g rows) is nearest the scan's slice thickness over its spacing (contiguous slices
    when the thickness is not stated; a tie goes to the thicker slab)."""
    ratio = slice_ratio(zooms)
    models = available_models(dirs)
    if not models:
        raise HeartSRError(f"no through-plane model (throughplane_x<g>) in {', '.join(map(str, dirs))}")
    g = min({g for g, _ in models}, key=lambda k: (abs(k - ratio), k))
    rows = (thickness or Thickness(None, "")).fill(zooms) * g
    t = min((t for k, t in models if k == g), key=lambda k: (abs(k - rows), -k))
    return Choice(models[g, t], g, ratio, t)
