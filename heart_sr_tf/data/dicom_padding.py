"""A DICOM image's declared padding: Pixel Padding Value (0028,0120) is the stored value of the pixels that are no
part of the image (outside a reconstruction's field of view, a reformat's corners), and with Pixel Padding Range
Limit (0028,0121) every stored value between the two, inclusive (PS3.3 C.7.5.1.1.2).

The reader finds padding from the values too (``data/intensity.py``), but only far below the tissue: a value the
header declares is padding wherever it lies, also next to the tissue (a background stored as 0 beside tissue
from 40 up). Upscaling leaves such pixels out of the intensity window and passes them through, and the derived
series keeps them at its own padding value, which no upscaled tissue pixel takes (a viewer would hide it).
"""

from __future__ import annotations

import numpy as np

PADDING_KEYWORDS = ("PixelPaddingValue", "PixelPaddingRangeLimit")


def padding_range(header) -> tuple[int, int] | None:
    """The stored values ``(low, high)`` that ``header`` declares padding (one value: ``low == high``), or None."""
    value = _stored(header, "PixelPaddingValue")
    if value is None:
        return None
    limit = _stored(header, "PixelPaddingRangeLimit")
    return (value, value) if limit is None else (min(value, limit), max(value, limit))


def padding_pixels(header, stored: np.ndarray) -> np.ndarray | None:
    """Where ``stored`` (an image's stored values, before the rescale) holds declared padding, or None when it
    holds none."""
    declared = padding_range(header)
    if declared is None:
        return None
    mask = (stored >= declared[0]) & (stored <= declared[1])
    return mask if mask.any() else None


def _stored(header, keyword: str) -> int | None:
    """An attribute of VR "US or SS" as the integer the pixels are compared with: bytes (an implicit-VR file, its VR
    unresolved) decoded by PixelRepresentation, and a signed image's value read as unsigned (-2000 as 63536) turned
    back."""
    value = header.get(keyword)
    signed = int(header.get("PixelRepresentation", 0) or 0) == 1
    if isinstance(value, bytes):
        value = int.from_bytes(value[:2], "little", signed=signed) if len(value) >= 2 else None
    if value is not None and not isinstance(value, (int, float, str)):  # (several values: the first)
        try:
            value = value[0]
        except (TypeError, IndexError):
            return None
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    if signed and number > 0x7FFF:
        number -= 0x10000
    return number


def restated(header, before: tuple[float, float], after: tuple[float, float]) -> dict[str, int]:
    """``header``'s padding attributes for an image stored with ``after``'s slope and intercept instead of
    ``before``'s: the stored values that hold the same real values (padding passes through upscaling unchanged)."""
    (slope0, inter0), (slope, inter) = before, after
    bits, signed = int(header.get("BitsStored", 16) or 16), int(header.get("PixelRepresentation", 0) or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    out = {}
    for keyword in PADDING_KEYWORDS:
        value = _stored(header, keyword)
        if value is not None:  # (a range limit beyond what the new values can hold: at their end)
            out[keyword] = int(np.clip(np.round((value * slope0 + inter0 - inter) / slope), low, high))
    return out


def set_padding(ds, values: dict[str, int]) -> None:
    """``values`` (from :func:`restated`) into ``ds``, each with the VR its image's pixel representation gives."""
    vr = "SS" if int(ds.get("PixelRepresentation", 0) or 0) == 1 else "US"
    for keyword, value in values.items():
        setattr(ds, keyword, value)
        ds[keyword].VR = vr
