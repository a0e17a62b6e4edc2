"""The eight-symmetry self-ensemble of an in-plane generator: aligned to the LR grid, equivariant, serialisable."""

import keras
import numpy as np
import pytest

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.wrappers import wrap
from heart_sr_tf.models.inplane_ensemble import with_dihedral_ensemble
from heart_sr_tf.models.rrdb import rrdb_generator


def _zero_insertion(s: int) -> keras.Model:
    """Puts LR sample (i, j) on HR pixel (s*i, s*j), zeros elsewhere: our grid convention, and nothing else."""
    lr = keras.Input((None, None, 1))
    layer = keras.layers.Conv2DTranspose(1, s, strides=s, use_bias=False)
    model = keras.Model(lr, layer(lr))
    kernel = np.zeros((s, s, 1, 1), np.float32)
    kernel[0, 0] = 1
    layer.set_weights([kernel])
    return model


@pytest.mark.parametrize("s", [2, 3, 4])
def test_the_flipped_passes_are_put_back_on_the_lr_grid(s):
    """Zero insertion commutes with every symmetry once a flipped pass is read s - 1 pixels on: the ensemble is
    exactly the model, border included. A pass left where it was would put samples between the grid points."""
    model = _zero_insertion(s)
    x = np.random.default_rng(s).random((2, 7, 5, 1)).astype(np.float32)
    single = model(x).numpy()
    np.testing.assert_allclose(with_dihedral_ensemble(model, s)(x).numpy(), single, atol=1e-6)
    assert single.shape == (2, 7 * s, 5 * s, 1)


def _random_rrdb(seed=2):
    generator = rrdb_generator(3, blocks=1, features=8, growth=4)
    rng = np.random.default_rng(seed)
    for w in generator.weights:
        w.assign(rng.normal(scale=0.1, size=w.shape).astype(np.float32))
    return generator


def test_the_ensemble_commutes_with_the_symmetries():
    generator = _random_rrdb()
    ensemble = with_dihedral_ensemble(generator, 3)
    x = np.random.default_rng(3).random((2, 9, 7, 1)).astype(np.float32)
    out = ensemble(x).numpy()
    assert out.shape == (2, 27, 21, 1)
    np.testing.assert_allclose(
        ensemble(np.transpose(x, (0, 2, 1, 3))).numpy(), np.transpose(out, (0, 2, 1, 3)), atol=1e-5
    )
    # a column flip: the output flipped back and read two pixels on, where every pass reaches
    flipped = ensemble(x[:, :, ::-1]).numpy()[:, :, ::-1][:, :, 2:]
    np.testing.assert_allclose(flipped[:, :, :-2], out[:, :, :-4], atol=1e-5)
    assert not np.allclose(out, generator(x).numpy(), atol=1e-3)  # the passes do differ


def test_the_ensemble_is_serialisable(tmp_path):
    ensemble = with_dihedral_ensemble(_random_rrdb(), 3)
    ensemble.save(tmp_path / "ensemble.keras")
    loaded = keras.saving.load_model(tmp_path / "ensemble.keras")
    x = np.random.default_rng(4).random((1, 6, 8, 1)).astype(np.float32)
    np.testing.assert_allclose(loaded(x).numpy(), ensemble(x).numpy(), atol=1e-6)


def test_the_wrapper_chooses_the_ensemble_by_degradation():
    generator = _random_rrdb()
    wrapped = wrap(generator, Degradation("kspace", 3), "m", self_ensemble=True)
    assert any(layer.name == "dihedral_ensemble" for layer in wrapped.layers)
    volumetric = keras.Model(inputs := keras.Input((None, None, None, 1)), keras.layers.UpSampling3D((3, 3, 1))(inputs))
    with pytest.raises(HeartSRError, match="m: the self-ensemble is for 2D models"):
        wrap(volumetric, Degradation("kspace", 3), "m", self_ensemble=True)
