"""Which part of the complex MR signal a DICOM image holds. The models are trained on magnitude cine: a phase
image (a flow study's velocities), or the real or imaginary part of the signal, is no image to super-resolve, and
its values would come out changed. Scanners say so in three places:

- ComplexImageComponent (MAGNITUDE, PHASE, REAL, IMAGINARY, MIXED): an enhanced image's, or its frame's
  (MR Image Frame Type in the functional groups);
- ImageType: one of its values ``P``, ``R`` or ``I`` (as Siemens and Philips mark phase, real and imaginary;
  ``M`` for magnitude), or ``PHASE``, ``REAL``, ``IMAGINARY`` spelled out;
- GE's private image type (0043,102F in the GEMS_PARM_01 block): 0 magnitude, 1 phase, 2 real, 3 imaginary.

Images that say nothing are taken as magnitude, as every cine is.
"""

from __future__ import annotations

NOT_MAGNITUDE = ("PHASE", "REAL", "IMAGINARY")
IMAGE_TYPE_VALUES = {"P": "PHASE", "PHASE": "PHASE", "R": "REAL", "REAL": "REAL", "I": "IMAGINARY",
                     "IMAGINARY": "IMAGINARY"}  # fmt: skip
GE_CREATOR, GE_BLOCK = "GEMS_PARM_01", 0x0043  # GE's private block whose element 0x2F is its image type
GE_IMAGE_TYPES = {1: "PHASE", 2: "REAL", 3: "IMAGINARY"}


def image_component(ds) -> tuple[str, str] | None:
    """``(component, where the header says so)`` when the header ``ds`` says its image is the phase, real or
    imaginary part of the signal: ``("PHASE", "ImageType ORIGINAL\\PRIMARY\\P\\ND")``; None for magnitude, or
    when nothing says."""
    component = str(getattr(ds, "heart_sr_component", None) or ds.get("ComplexImageComponent", "") or "").upper()
    if component in NOT_MAGNITUDE:
        return component, f"ComplexImageComponent {component}"
    if component == "MAGNITUDE":  # said outright: what else the header holds does not overrule it
        return None
    value = ds.get("ImageType") or ""
    values = [str(v) for v in ([value] if isinstance(value, str) else list(value))]
    for part in values:
        if part.strip().upper() in IMAGE_TYPE_VALUES:
            return IMAGE_TYPE_VALUES[part.strip().upper()], "ImageType " + "\\".join(values)
    kind = _ge_image_type(ds)
    if kind in GE_IMAGE_TYPES:
        return GE_IMAGE_TYPES[kind], f"GE's private image type {kind}"
    return None


def _ge_image_type(ds) -> int | None:
    """GE's private image type, where the header holds GE's block (its creator at the slot that owns element
    0x2F); None elsewhere."""
    for slot in range(0x10, 0x100):
        creator = ds.get((GE_BLOCK, slot))
        if creator is None:
            continue
        if str(creator.value).strip() != GE_CREATOR:
            continue
        element = ds.get((GE_BLOCK, (slot << 8) | 0x2F))
        if element is None:
            return None
        value = element.value
        if isinstance(value, bytes | bytearray):
            return int.from_bytes(value[:2], "little", signed=True) if len(value) >= 2 else None
        try:
            return int(value[0] if isinstance(value, list | tuple) else value)
        except (TypeError, ValueError):
            return None
    return None
