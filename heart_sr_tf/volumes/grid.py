"""Where an upscaled scan's voxels lie in the scan it came from.

Along each axis, output voxel ``j`` lies at input voxel ``j / factor + offset``. In-plane, the models place
input pixel i at output pixel ``factor * i`` (offset 0). Across the slices, the output tiles the acquired slabs,
so its first slice lies before the first acquired one (a negative offset: ``volumes/through_plane.py``). Every
writer of an upscaled scan (the NIfTI affine, the DICOM positions, slice locations and source images) and the
padding pass-through read the positions from here, so they agree.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class OutputGrid:
    factors: tuple[int, int, int] = (1, 1, 1)
    offsets: tuple[float, float, float] = (0.0, 0.0, 0.0)

    def then(self, step) -> OutputGrid:
        """This grid followed by ``step`` (its ``factors`` and ``offsets`` on this grid's voxels)."""
        factors = tuple(int(a * b) for a, b in zip(self.factors, step.factors, strict=True))
        offsets = tuple(
            float(o + s / f) for o, s, f in zip(self.offsets, step.offsets, self.factors, strict=True)
        )  # an output voxel j of the step lies at this grid's voxel j / factor + offset
        return OutputGrid(factors, offsets)  # type: ignore[arg-type]

    def positions(self, axis: int, length: int) -> np.ndarray:
        """Where each of ``length`` output voxels along ``axis`` lies, in input voxels."""
        return np.arange(length) / self.factors[axis] + self.offsets[axis]

    def nearest(self, axis: int, input_length: int) -> np.ndarray:
        """For each output voxel along ``axis``, the nearest input voxel (clipped to the input)."""
        positions = self.positions(axis, self.factors[axis] * input_length)
        return np.clip(np.round(positions), 0, input_length - 1).astype(int)

    def affine(self, affine: np.ndarray) -> np.ndarray:
        """The output's voxel-to-world matrix from the input's: same orientation, steps divided by the factors,
        the origin moved to where output voxel 0 lies."""
        to_input = np.eye(4)
        to_input[:3, :3] = np.diag(1.0 / np.asarray(self.factors, dtype=np.float64))
        to_input[:3, 3] = self.offsets
        return np.asarray(affine, dtype=np.float64) @ to_input

    def reordered(self, order) -> OutputGrid:
        """The same grid with its axes in ``order`` (``order[i]``: which of this grid's axes becomes axis i)."""
        return OutputGrid(
            tuple(self.factors[a] for a in order),  # type: ignore[arg-type]
            tuple(self.offsets[a] for a in order),  # type: ignore[arg-type]
        )
