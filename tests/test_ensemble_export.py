"""An exported self-ensemble, in-plane or through-plane, is the same model on every path."""

import importlib.util
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.config import dump_toml, load_config
from heart_sr_tf.export.wrappers import wrap
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.models.registry import make_generator


@pytest.mark.slow  # exports and converts, or compiles under two devices: tens of seconds
@pytest.mark.parametrize("name", ["throughplane_x6", "rrdb_kspace"])
def test_an_exported_ensemble_is_the_same_model_on_every_path(tmp_path, name):
    config = load_config(name)
    config.generator.blocks, config.generator.features, config.generator.growth = 1, 8, 4
    generator = make_generator(config)
    rng = np.random.default_rng(3)
    for w in generator.weights:
        w.assign(rng.normal(scale=0.1, size=w.shape).astype(np.float32))
    ensemble = wrap(generator, config.degradation, name, self_ensemble=True)
    meta = {"config": dump_toml(config), "self_ensemble": True}
    export_generator(ensemble, tmp_path, name, 1, meta, config.degradation)
    x = rng.random((2, 10, 12, 1)).astype(np.float32)
    reference = np.clip(ensemble(tf.constant(x)).numpy(), 0, 1)
    single = np.clip(generator(tf.constant(x)).numpy(), 0, 1)
    paths = [("tensorflow", "float32", 1e-5), ("tensorflow", "bfloat16", 0.03), ("openvino", "float32", 1e-4)]
    if importlib.util.find_spec("openvino") is None:  # the [openvino] extra is optional
        paths = paths[:2]
    for backend, precision, atol in paths:
        out = load_predictor(tmp_path / name, backend, precision)(x)
        np.testing.assert_allclose(out, reference, atol=atol)
        assert np.abs(out - reference).mean() < 0.2 * np.abs(single - reference).mean(), (backend, precision)


@pytest.mark.slow  # exports two SavedModels
def test_a_predictor_with_the_self_ensemble_equals_the_exported_ensemble(tmp_path):
    """`evaluate --self-ensemble` wraps a plain export's predictor; `export --self-ensemble` builds it into the
    graph. The two are the same model, the OpenVINO path included."""
    from heart_sr_tf.errors import HeartSRError

    config = load_config("rrdb_kspace")
    config.generator.blocks, config.generator.features, config.generator.growth = 1, 8, 4
    generator = make_generator(config)
    rng = np.random.default_rng(4)
    for w in generator.weights:
        w.assign(rng.normal(scale=0.1, size=w.shape).astype(np.float32))
    meta = {"config": dump_toml(config)}
    export_generator(generator, tmp_path, "plain", 1, meta, config.degradation)
    ensemble = wrap(generator, config.degradation, "ensemble", self_ensemble=True)
    export_generator(ensemble, tmp_path, "ensemble", 1, {**meta, "self_ensemble": True}, config.degradation)
    x = rng.random((2, 10, 13, 1)).astype(np.float32)  # not square: the transposed passes come back transposed
    reference = load_predictor(tmp_path / "ensemble", "tensorflow", "float32")(x)
    backends = ["tensorflow"] + (["openvino"] if importlib.util.find_spec("openvino") else [])
    for backend in backends:
        plain = load_predictor(tmp_path / "plain", backend, "float32")
        wrapped = plain.with_self_ensemble()
        assert wrapped.source.endswith("+ self-ensemble") and wrapped.with_self_ensemble() is wrapped
        out = wrapped(x)
        np.testing.assert_allclose(out, reference, atol=1e-4)
        assert np.abs(plain(x) - reference).max() > 1e-3  # the ensemble is not the single pass
    already = load_predictor(tmp_path / "ensemble", "tensorflow", "float32")
    assert already.with_self_ensemble() is already  # its metadata says the ensemble is in the graph
    shipped = Path(__file__).resolve().parents[1] / "saved_models" / "throughplane_x6"
    flipped = load_predictor(shipped / "2", "tensorflow", "float32")  # exported with its four-flip ensemble
    assert flipped.with_self_ensemble() is flipped
    with pytest.raises(HeartSRError, match="the in-plane self-ensemble is for 2D in-plane models"):
        load_predictor(shipped / "1", "tensorflow", "float32").with_self_ensemble()
