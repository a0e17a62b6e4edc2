"""A DICOM series' grey scale: which images' values the reader can take as grey levels, and which way up.

MONOCHROME2 shows the lowest value black, MONOCHROME1 white. Every cine the models and the segmenter learnt from
is shown as stored; a MONOCHROME1 series is read as it is shown (see :func:`shown_inverted`) and written back
as it was. Values that are no grey level as stored (a palette's indices, a Modality LUT's inputs) are refused.
"""

from __future__ import annotations

from heart_sr_tf.errors import DataError

GREY = ("MONOCHROME1", "MONOCHROME2", "")  # (an image stating none is taken as MONOCHROME2)


def shown_inverted(members: list) -> bool:
    """Whether the series is MONOCHROME1: its lowest value shown white. Every cine the models and the segmenter
    learnt from is shown as stored (MONOCHROME2); given as stored, this one's blood would look dark to them. A
    series that mixes the two is refused: its images would not be one scan's values. So are values that are no
    grey level as stored: indices into a colour palette, or stored values that a Modality LUT (a table, not a
    slope and intercept) turns into the real ones."""
    for file, ds in members:
        kind = str(ds.get("PhotometricInterpretation", "")).strip()
        if kind not in GREY:
            raise DataError(file, f"PhotometricInterpretation {kind}: not a grey-scale image (an MR cine is one)")
        if "ModalityLUTSequence" in ds:
            raise DataError(file, "a Modality LUT maps its stored values to real ones: not read here (an MR image's "
                            "are mapped by RescaleSlope and RescaleIntercept)")  # fmt: skip
    kinds = [str(ds.get("PhotometricInterpretation", "")).strip() == "MONOCHROME1" for _, ds in members]
    if any(kinds) and not all(kinds):
        file = members[kinds.index(not kinds[0])][0]
        first = "MONOCHROME1" if kinds[0] else "MONOCHROME2"
        raise DataError(
            file,
            f"{'MONOCHROME2' if kinds[0] else 'MONOCHROME1'}, but {members[0][0].name} is {first}: "
            "one series shown in two grey scales (low values dark in some images, bright in others)",
        )
    return kinds[0]
