"""The data-consistency layer: degrading its output gives back the LR input, for both degradations."""

import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.models.consistency import DataConsistency, with_consistency
from heart_sr_tf.models.rrdb import rrdb_generator


@pytest.mark.parametrize("size", [(255, 255), (99, 123), (33, 36)])
def test_kspace_projection_degrades_back_to_the_input(size):
    rng = np.random.default_rng(0)
    degradation = Degradation("kspace", 3)
    hr = rng.random(size).astype(np.float32)
    lr, hr = degradation.pair_np(hr)
    sr = hr + 0.1 * rng.standard_normal(hr.shape).astype(np.float32)  # a wrong guess
    before, _ = degradation.pair_np(sr)
    assert np.abs(before - lr).max() > 0.01
    out = DataConsistency("kspace", 3)([sr[None, ..., None], lr[None, ..., None]]).numpy()[0, ..., 0]
    after, _ = degradation.pair_np(out)
    if lr.shape[0] % 2 and lr.shape[1] % 2:
        np.testing.assert_allclose(after, lr, atol=1e-4)
    else:  # an even LR side has an unpaired Nyquist row or column, which the real part halves
        assert np.abs(after - lr).mean() < 0.2 * np.abs(before - lr).mean()
    assert np.abs(out - hr).mean() < np.abs(sr - hr).mean()  # the projection moved towards the truth


@pytest.mark.parametrize("size", [(255, 255), (100, 101)])
def test_decimation_projection_puts_the_samples_back(size):
    rng = np.random.default_rng(1)
    hr = rng.random(size).astype(np.float32)
    lr = hr[::3, ::3]
    sr = rng.random((3 * lr.shape[0], 3 * lr.shape[1])).astype(np.float32)
    out = DataConsistency("decimation", 3)([sr[None, ..., None], lr[None, ..., None]]).numpy()[0, ..., 0]
    np.testing.assert_array_equal(out[::3, ::3], lr)
    keep = np.ones_like(sr, bool)
    keep[::3, ::3] = False
    np.testing.assert_array_equal(out[keep], sr[keep])


def test_layer_serialises_inside_a_model(tmp_path):
    generator = rrdb_generator(3, blocks=1, features=8, growth=4)
    model = with_consistency(generator, "kspace", 3)
    lr = np.random.default_rng(2).random((2, 17, 19, 1)).astype(np.float32)
    path = tmp_path / "dc.keras"
    model.save(path)
    loaded = tf.keras.models.load_model(path)
    np.testing.assert_allclose(loaded(lr).numpy(), model(lr).numpy(), atol=1e-6)
    assert loaded.get_layer("data_consistency").get_config()["kind"] == "kspace"
    with pytest.raises(ValueError, match="unknown degradation"):
        DataConsistency("blur", 3)
