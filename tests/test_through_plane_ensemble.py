"""The flip self-ensemble of a through-plane generator: aligned, equivariant."""

import numpy as np
import pytest

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.thick_slices import thick_slices_np
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.models.through_plane_ensemble import with_flip_ensemble


def test_the_row_flip_is_aligned_to_the_slice_profile():
    """An HR row ramp, 6-row boxes: each LR row is the ramp half a row below its HR row, so the untrained model
    (Keys' cubic through the LR rows, exact on ramps) is off by half a row; flipped and read back one row on, it
    is off the other way, and the ensemble is exact wherever both passes reach (away from the edges)."""
    ramp = np.repeat(np.arange(96, dtype=np.float32)[:, None] / 200, 8, axis=1)
    lr = thick_slices_np(ramp, 6, 6)[None, ..., None].astype(np.float32)
    generator = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    single = generator(lr).numpy()[0, :, :, 0]
    ensemble = with_flip_ensemble(generator, 6, 6)(lr).numpy()[0, :, :, 0]
    inner = slice(18, 72)
    np.testing.assert_allclose(single[inner] - ramp[inner], 0.5 / 200, atol=1e-5)
    np.testing.assert_allclose(ensemble[inner], ramp[inner], atol=1e-5)
    assert ensemble.shape == single.shape == (96, 8)


@pytest.mark.parametrize("thickness", [6, 5])
def test_the_ensemble_commutes_with_its_flips(thickness):
    generator = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    rng = np.random.default_rng(2)
    for w in generator.weights:
        w.assign(rng.normal(scale=0.1, size=w.shape).astype(np.float32))
    ensemble = with_flip_ensemble(generator, 6, thickness)
    x = rng.random((2, 9, 7, 1)).astype(np.float32)
    out = ensemble(x).numpy()
    np.testing.assert_allclose(ensemble(x[:, :, ::-1]).numpy(), out[:, :, ::-1], atol=1e-5)
    # rows: flipped input, output flipped back and read (6 - 1 - shift) rows on, where all four passes reach
    offset = 5 - (1 - thickness % 2)
    flipped = ensemble(x[:, ::-1]).numpy()[:, ::-1][:, offset:]
    covered = flipped.shape[1] - offset
    np.testing.assert_allclose(flipped[:, :covered], out[:, :covered], atol=1e-5)
    assert not np.allclose(out, generator(x).numpy(), atol=1e-3)  # the passes do differ


def test_a_wrapper_that_does_not_fit_the_degradation_is_one_error():
    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.export.wrappers import wrap

    across = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    with pytest.raises(HeartSRError, match="m: data consistency is for in-plane models"):
        wrap(across, Degradation("through_plane", 6), "m", data_consistency=True)
    assert wrap(across, Degradation("through_plane", 6), "m") is across  # nothing chosen, nothing added
