"""The intensity protocol behind every number we report, and padding.

Per volume (one 3D frame: all slices of one time point), clip to [min, 99.5th percentile] and scale to
[0, 1]. The minimum and the percentile are those of the image's voxels, not of its padding: scanner exports
and converted DICOMs often fill voxels outside the field of view with one value far below the tissue
(-32768, -2000, ...). One such voxel would otherwise become the window's minimum and squeeze the tissue into a
narrow band. Padding is found as the volume's lowest value when a gap separates it from everything else
(more than ``PADDING_GAP`` of the remaining window), peeled repeatedly for several padding values. ACDC's
volumes have none, so their windows, and every number published on them, are unchanged.
"""

from __future__ import annotations

import numpy as np

PERCENTILE = 99.5
PADDING_GAP = 0.1  # a lowest value counts as padding when it lies this share of the rest's window below it
MAX_PADDING_VALUES = 4


def padding_mask(volume: np.ndarray) -> np.ndarray:
    """Boolean mask of the padding voxels (all False when there is none): NaN voxels (no value, as some resampling
    tools pad), then the lowest values set apart from the rest."""
    volume = np.asarray(volume)
    mask = np.isnan(volume)
    for _ in range(MAX_PADDING_VALUES):
        rest = volume[~mask]
        if rest.size == 0:
            break
        low = rest.min()
        others = rest[rest > low]
        if others.size < max(1, rest.size // 100):  # (nearly) all one value: an image, not padding around one
            break
        following = others.min()
        high = np.percentile(others, PERCENTILE)
        if following - low <= PADDING_GAP * (high - following):
            break
        mask |= volume == low
    return mask


def intensity_window(volume: np.ndarray, padding: np.ndarray | None = None) -> tuple[float, float]:
    """The (low, high) window of the protocol: the minimum and the 99.5th percentile of the non-padding voxels
    (``padding``: a precomputed :func:`padding_mask`)."""
    volume = np.asarray(volume)
    padding = padding_mask(volume) if padding is None else padding
    values = volume[~padding] if padding.any() else volume
    if values.size == 0:  # a frame of padding only (every voxel NaN): any window; the padding passes through
        return 0.0, 1.0
    low = float(np.min(values))
    high = float(np.percentile(values, PERCENTILE))
    if high <= low:  # a mostly constant volume: fall back to its full range
        high = float(np.max(values))
    if high <= low:
        high = low + 1.0
    return low, high


def normalise(volume: np.ndarray, window: tuple[float, float] | None = None) -> np.ndarray:
    """Clip to the window and scale to [0, 1] as float32 (padding, below the window, becomes 0)."""
    low, high = window if window is not None else intensity_window(volume)
    out = (np.asarray(volume, dtype=np.float32) - low) / (high - low)
    return np.clip(out, 0.0, 1.0)


def denormalise(image: np.ndarray, window: tuple[float, float]) -> np.ndarray:
    """Map [0, 1] back to the volume's original intensity range (the inverse inside the window)."""
    low, high = window
    return np.asarray(image, dtype=np.float32) * (high - low) + low
