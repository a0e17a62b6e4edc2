"""Where a DICOM image lies: the tolerances within which two images share a plane, a position or a spacing, and
an image's plane read from its header (shared by reading a series and by joining per-slice series into a stack)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

POSITION_TOLERANCE = 0.01  # mm: two images closer than this along the normal are at the same slice position
SPACING_TOLERANCE = 0.05  # relative: every gap between neighbouring slices within 5% of their median spacing
ORIENTATION_TOLERANCE = 1e-3


@dataclass(frozen=True)
class Plane:
    """One image's plane: ImageOrientationPatient (row, then column direction), PixelSpacing and
    ImagePositionPatient (LPS, mm)."""

    orientation: np.ndarray
    spacing: np.ndarray
    position: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.orientation[:3], self.orientation[3:])


def plane_of(ds) -> Plane | None:
    """The plane ``ds`` states, or None where its geometry is missing or unusable."""
    try:
        orientation, spacing, position = (
            np.array([float(v) for v in ds.get(keyword)], dtype=np.float64)
            for keyword in ("ImageOrientationPatient", "PixelSpacing", "ImagePositionPatient")
        )
    except (TypeError, ValueError):
        return None
    if orientation.shape != (6,) or spacing.shape != (2,) or position.shape != (3,):
        return None
    if not all(np.all(np.isfinite(v)) for v in (orientation, spacing, position)) or np.any(spacing <= 0):
        return None
    return Plane(orientation, spacing, position)


def evenly_spaced(positions: list[float]) -> bool:
    """Whether sorted ``positions`` along a normal (mm) are distinct and evenly spaced, as a stack's slices are."""
    gaps = np.diff(positions)
    if gaps.size == 0:
        return True
    median = float(np.median(gaps))
    return median > POSITION_TOLERANCE and bool(np.all(np.abs(gaps - median) <= SPACING_TOLERANCE * median))
