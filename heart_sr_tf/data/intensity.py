"""The intensity protocol behind every number we report.

Per volume (one 3D frame: all slices of one time point), clip to [min, 99.5th percentile]
and scale to [0, 1].
"""

from __future__ import annotations

import numpy as np

PERCENTILE = 99.5


def intensity_window(volume: np.ndarray) -> tuple[float, float]:
    """The (low, high) window of the protocol: the minimum and the 99.5th percentile."""
    low = float(np.min(volume))
    high = float(np.percentile(volume, PERCENTILE))
    if high <= low:  # a mostly constant volume: fall back to its full range
        high = float(np.max(volume))
    if high <= low:
        high = low + 1.0
    return low, high


def normalise(volume: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Clip to the window and scale to [0, 1] as float32."""
    low, high = window if window is not None else intensity_window(volume)
    out = (np.asarray(volume, dtype=np.float32) - low) / (high - low)
    return np.clip(out, 0.0, 1.0)


def denormalise(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map [0, 1] back to the volume's original intensity range (the inverse inside the window)."""
    low, high = window
    return np.asarray(image, dtype=np.float32) * (high - low) + low
