"""Bits set above BitsStored in a DICOM image's stored words.

The standard says such bits are not part of the value (an old overlay may live there), and pydicom masks them
off, as every reader should. A header whose BitsStored understates the data (a converter that rewrote the
pixels and kept the header) makes masking wrap the brightest values round to dark ones: the reader counts the
pixels where it happened, so that a line can say so, rather than change them silently.
"""

from __future__ import annotations

import numpy as np


def bits_above(ds, count: int = 1) -> int:
    """How many of ``ds``'s ``count`` frames' pixels have bits set above BitsStored, other than a signed value's
    sign extension. Native (uncompressed) pixel data only: a compressed stream holds no bits beyond its precision.
    """
    syntax = ds.file_meta.get("TransferSyntaxUID") if hasattr(ds, "file_meta") else None
    allocated, stored = int(ds.get("BitsAllocated", 0)), int(ds.get("BitsStored", 0))
    if syntax is None or syntax.is_compressed or allocated not in (8, 16, 32) or not 0 < stored < allocated:
        return 0
    size = count * int(ds.Rows) * int(ds.Columns)
    data = ds.get("PixelData")
    if data is None or len(data) < size * allocated // 8:
        return 0
    order = "<" if syntax.is_little_endian else ">"
    words = np.frombuffer(data, dtype=np.dtype(f"{order}u{allocated // 8}"), count=size)
    high = words >> np.array(stored, words.dtype)
    wrong = high != 0
    if int(ds.get("PixelRepresentation", 0)) == 1:  # a negative value's sign extended into them is its own
        wrong &= high != (1 << (allocated - stored)) - 1
    return int(np.count_nonzero(wrong))
