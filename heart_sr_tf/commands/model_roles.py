"""Each local model given to ``upscale`` or ``cohort`` is one for its step (in-plane, or across the slices), read
from its export's metadata or its run's config before any model loads or any scan is read. Before, a
through-plane model given as ``--model`` was refused only once it had loaded (12 s in OpenVINO), and by a
cohort only in each scan's task, every scan failing with the same line."""

from __future__ import annotations

from heart_sr_tf.inference.predictor import model_degradation
from heart_sr_tf.volumes.through_plane import check_through_plane
from heart_sr_tf.volumes.upscale import check_in_plane


def check_model_roles(in_plane_model=None, through_plane_model=None) -> None:
    """``in_plane_model`` upscales in-plane and ``through_plane_model`` across the slices (either None: not given,
    or chosen later per scan), else one line naming the model."""
    if in_plane_model is not None:
        check_in_plane(*model_degradation(in_plane_model))
    if through_plane_model is not None:
        check_through_plane(*model_degradation(through_plane_model))
