"""What an export may append to its generator: data consistency (in-plane) and the geometric self-ensemble (the
eight symmetries of the square in-plane, the four flips through-plane). Each is recorded in the export's metadata
and applied again whenever the generator is rebuilt from it (a bfloat16 twin, TensorFlow's bfloat16 path), so
every backend runs the same model."""

from __future__ import annotations

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError

WRAPPERS = ("data_consistency", "self_ensemble")  # metadata keys, in the order they are applied


def recorded(meta: dict) -> dict[str, bool]:
    """The wrappers an export's metadata says are part of its graph."""
    return {key: bool(meta.get(key)) for key in WRAPPERS}


def wrap(generator, degradation: Degradation, what: str, data_consistency=False, self_ensemble=False):
    """``generator`` with the chosen wrappers; one line naming ``what`` when one does not fit the degradation."""
    if data_consistency:
        from heart_sr_tf.models.consistency import with_consistency

        if degradation.kind == "through_plane":
            raise HeartSRError(f"{what}: data consistency is for in-plane models, not a through-plane one")
        generator = with_consistency(generator, degradation.kind, degradation.factor)
    if self_ensemble and degradation.kind == "through_plane":
        from heart_sr_tf.models.through_plane_ensemble import with_flip_ensemble

        generator = with_flip_ensemble(generator, degradation.factor, degradation.thickness)
    elif self_ensemble:
        from heart_sr_tf.models.inplane_ensemble import with_dihedral_ensemble

        if len(generator.inputs[0].shape) != 4:
            raise HeartSRError(f"{what}: the self-ensemble is for 2D models, not a 3D one")
        generator = with_dihedral_ensemble(generator, degradation.factor)
    return generator
