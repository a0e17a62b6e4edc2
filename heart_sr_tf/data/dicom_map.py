"""Whether a DICOM image holds a quantitative map rather than signal. A T1, T2 or T2* map, an ECV map or an ADC
map is fitted from several images: each value is a relaxation time, a volume fraction or a diffusivity, not an
intensity. The models are trained on magnitude cine; super-resolving a map would change measured quantities, so a
map is no cine. Scanners that store a map as an ordinary MR image (not as a Parametric Map object, which is no
image at all here) name it in ImageType: ``DERIVED\\PRIMARY\\T1 MAP\\MOCO`` (Siemens), ``T2MAP``, ``T2_STAR_MAP``
(the enhanced frame types' spelling), ``ECV``, ``ADC``.

Images whose ImageType names no map are taken as signal, as every cine is.
"""

from __future__ import annotations

import re

QUANTITIES = r"T1|T2|T2\*|T2[ _]?STAR|R1|R2|R2\*|T1[ _]?RHO|ECV|ADC|FA|PD|M0|B0|B1|MTR|MBF|FF"
MAP_VALUE = re.compile(rf"(?P<quantity>{QUANTITIES})[ _]?MAPS?")  # "T1 MAP", "T2MAP", "T2_STAR_MAP", "ECV MAP"
MAPS_BY_NAME = {"ECV", "ADC", "FA", "MBF"}  # ImageType values that are a map on their own


def quantitative_map(ds) -> tuple[str, str] | None:
    """``(the quantity, where the header says so)`` when ``ds``'s ImageType names a quantitative map:
    ``("T1", "ImageType DERIVED\\PRIMARY\\T1 MAP\\MOCO")``; None otherwise."""
    value = ds.get("ImageType") or ""
    values = [str(v) for v in ([value] if isinstance(value, str) else list(value))]
    for part in values[2:]:  # (the first two say original or derived, primary or secondary)
        name = part.strip().upper()
        match = MAP_VALUE.fullmatch(name)
        quantity = re.sub(r"[ _]?STAR", "*", match["quantity"]) if match else name if name in MAPS_BY_NAME else None
        if quantity:
            return quantity.replace("_", ""), "ImageType " + "\\".join(values)
    return None
