import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf
from in_process import run_cli

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.layout import METADATA_FILE, versions
from heart_sr_tf.export.writer import export_generator, write_version
from heart_sr_tf.inference.predictor import load_predictor, load_run

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("size", [(86, 86), (17, 30), (5, 4)])
def test_saved_model_matches_the_keras_generator(tiny_run, tiny_export, size):
    generator = load_run(tiny_run).generator
    signature = tf.saved_model.load(str(tiny_export)).signatures["serving_default"]
    lr = np.random.default_rng(0).random((2, *size, 1)).astype(np.float32)
    served = signature(lr_image=tf.constant(lr))["sr_image"].numpy()
    expected = np.clip(generator(lr, training=False).numpy(), 0, 1)
    assert served.shape == (2, 3 * size[0], 3 * size[1], 1) and served.dtype == np.float32
    np.testing.assert_allclose(served, expected, atol=1e-5)
    assert served.min() >= 0 and served.max() <= 1


def test_uint8_signature(tiny_export):
    signature = tf.saved_model.load(str(tiny_export)).signatures["serving_uint8"]
    lr = np.random.default_rng(1).integers(0, 256, (1, 10, 12, 1), dtype=np.uint8)
    out = signature(lr_image=tf.constant(lr))["sr_image"].numpy()
    assert out.dtype == np.uint8 and out.shape == (1, 30, 36, 1)
    reference = tf.saved_model.load(str(tiny_export)).signatures["serving_default"]
    as_float = reference(lr_image=tf.constant(lr.astype(np.float32) / 255))["sr_image"].numpy()
    assert np.abs(out.astype(float) - np.round(as_float * 255)).max() <= 1


def test_saved_model_cli_lists_both_signatures(tiny_export):
    cli = shutil.which("saved_model_cli") or str(Path(sys.executable).parent / "saved_model_cli")
    result = subprocess.run([cli, "show", "--dir", str(tiny_export), "--all"], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-1000:]
    for text in ("serving_default", "serving_uint8", "lr_image", "sr_image", "(-1, -1, -1, 1)"):
        assert text in result.stdout


def test_bad_shape_or_dtype_is_refused(tiny_export):
    signature = tf.saved_model.load(str(tiny_export)).signatures["serving_default"]
    with pytest.raises((ValueError, TypeError, tf.errors.OpError)):
        signature(lr_image=tf.zeros((1, 8, 8, 3)))
    with pytest.raises((ValueError, TypeError, tf.errors.OpError)):
        signature(lr_image=tf.zeros((1, 8, 8, 1), tf.float64))
    predictor = load_predictor(tiny_export)
    with pytest.raises(HeartSRError, match=r"shape \[batch, h, w, 1\]"):
        predictor(np.zeros((8, 8), np.float32))
    with pytest.raises(HeartSRError, match="float32"):
        predictor(np.zeros((1, 8, 8, 1), np.float64))


def test_versions_increment_and_never_overwrite(tiny_run, tmp_path):
    generator = load_run(tiny_run).generator
    first = export_generator(generator, tmp_path, "m")
    second = export_generator(generator, tmp_path, "m")
    assert (first.name, second.name) == ("1", "2") and versions(tmp_path / "m") == [1, 2]
    stamp = (first / "saved_model.pb").stat().st_mtime_ns
    with pytest.raises(HeartSRError, match="already exists"):
        export_generator(generator, tmp_path, "m", version=1)
    assert (first / "saved_model.pb").stat().st_mtime_ns == stamp
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["1", "2"]  # no temporary folders left
    assert load_predictor(tmp_path / "m").source.endswith("/m/2")  # a base path means its highest version


def test_an_export_that_takes_the_version_meanwhile_is_left_as_it_is(tmp_path):
    """Two exports at once both chose the next version: the second to finish failed on rename ("Directory not
    empty") after all its work. Now an export whose version was chosen takes the next free one; one given
    --version is refused as before the work. The other export is never touched."""
    base = tmp_path / "m"

    def write_while_another_finishes(version: str):
        def write(path: Path) -> None:
            path.mkdir()
            (path / "saved_model.pb").write_bytes(b"mine")
            theirs = base / version
            theirs.mkdir()
            (theirs / "saved_model.pb").write_bytes(b"theirs")

        return write

    first = write_version(tmp_path, "m", None, {"run": "mine"}, write_while_another_finishes("1"))
    assert first.name == "2" and (first / "saved_model.pb").read_bytes() == b"mine"
    assert (base / "1" / "saved_model.pb").read_bytes() == b"theirs" and not (base / "1" / "assets.extra").exists()
    with pytest.raises(HeartSRError, match=r"/m/3: version 3 appeared while this export was written"):
        write_version(tmp_path, "m", 3, {}, write_while_another_finishes("3"))
    assert (base / "3" / "saved_model.pb").read_bytes() == b"theirs"
    assert sorted(p.name for p in base.iterdir()) == ["1", "2", "3"]  # no temporary folder left


def test_metadata_travels_with_the_model(tiny_export):
    meta = json.loads((tiny_export / "assets.extra" / METADATA_FILE).read_text())
    assert meta["scale"] == 3 and "99.5" in meta["intensity"]
    assert meta["degradation"]["kind"] == "decimation" and "HR[3*i, 3*j]" in meta["degradation"]["description"]


def test_export_cli(tiny_run, tmp_path):
    args = ["export", tiny_run, "--name", "srgan", "--out", tmp_path]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    meta = json.loads((tmp_path / "srgan" / "1" / "assets.extra" / METADATA_FILE).read_text())
    assert meta["run"] == str(tiny_run) and "ckpt-6" in meta["checkpoint"] and "[generator]" in meta["config"]
    assert result.stdout.strip().endswith(f"to {tmp_path / 'srgan' / '1'} (float32)")
    result = run_cli(*args, "--version", "1")
    assert result.returncode == 2 and "already exists" in result.stderr and "Traceback" not in result.stderr
    result = run_cli("export", tiny_run, "--name", "ensemble", "--out", tmp_path, "--self-ensemble")
    assert result.stdout.strip().endswith(f"to {tmp_path / 'ensemble' / '1'} (float32, self-ensemble)"), result.stdout


def test_training_can_start_from_an_export(tiny_run, tiny_export):
    from heart_sr_tf.config import load_config
    from heart_sr_tf.models.registry import make_generator
    from heart_sr_tf.training.runs import initialise_generator

    config = load_config(tiny_run / "config.toml")
    fresh = make_generator(config)
    initialise_generator(tiny_export, fresh)
    reference = load_run(tiny_run).generator
    for a, b in zip(fresh.weights, reference.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    config.generator.features = 4
    with pytest.raises(HeartSRError, match="not this architecture"):
        initialise_generator(tiny_export, make_generator(config))


def test_a_corrupt_export_given_to_init_from_is_one_error(tiny_run, tmp_path):
    from heart_sr_tf.config import load_config
    from heart_sr_tf.models.registry import make_generator
    from heart_sr_tf.training.runs import initialise_generator

    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"not a model")
    with pytest.raises(HeartSRError, match="not a loadable heart-sr SavedModel"):
        initialise_generator(tmp_path / "m", make_generator(load_config(tiny_run / "config.toml")))


def test_each_weight_is_stored_once(tiny_run, tiny_export):
    """Keras' ExportArchive writes every weight twice when the model is also tracked (keras-team/keras#23553)."""
    generator = load_run(tiny_run).generator
    reader = tf.train.load_checkpoint(str(tiny_export / "variables" / "variables"))
    shapes = reader.get_variable_to_shape_map()
    stored = sum(int(np.prod(shape)) for key, shape in shapes.items() if "VARIABLE_VALUE" in key)
    assert stored == generator.count_params()


def test_a_deeper_generator_starts_from_a_shallower_export_computing_the_same(tmp_path):
    """--init-from an export with fewer RRDB blocks: the added blocks pass their input through (x 1.2, undone by
    conv_body), so the deeper network's output equals the source's; its own blocks are copied, and training moves
    the new ones (their last convolutions, at zero, get gradients). A shallower target is refused."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.models.rrdb import rrdb_generator
    from heart_sr_tf.training.runs import initialise_generator

    source = rrdb_generator(3, blocks=2, features=8, growth=4)
    rng = np.random.default_rng(2)
    for w in source.weights:
        w.assign(0.1 * rng.normal(size=w.shape).astype(np.float32))
    export_generator(source, tmp_path, "shallow", degradation=Degradation("kspace", 3))
    deep = rrdb_generator(3, blocks=5, features=8, growth=4)
    described = initialise_generator(tmp_path / "shallow", deep, (3, 3))
    assert "3 RRDB blocks added" in described
    lr = rng.random((2, 14, 17, 1)).astype(np.float32)
    expected = source(lr).numpy()
    fresh = rrdb_generator(3, blocks=5, features=8, growth=4)(lr).numpy()  # the bicubic baseline
    assert np.abs(expected - fresh).max() > 1e-2
    np.testing.assert_allclose(deep(lr).numpy(), expected, atol=1e-5)
    by_path = {w.path: w.numpy() for w in source.weights}
    np.testing.assert_array_equal(deep.get_layer("rrdb1_db2_conv3").kernel.numpy(), by_path["rrdb1_db2_conv3/kernel"])
    assert not deep.get_layer("rrdb4_db1_conv4").kernel.numpy().any()
    assert deep.get_layer("rrdb4_db1_conv3").kernel.numpy().std() > 0  # fresh, not zero
    with tf.GradientTape() as tape:
        loss = tf.reduce_mean(tf.abs(deep(lr) - tf.random.uniform(expected.shape, seed=1)))
    grad = tape.gradient(loss, deep.get_layer("rrdb4_db1_conv4").kernel)
    assert float(tf.reduce_max(tf.abs(grad))) > 0
    with pytest.raises(HeartSRError, match="no place for"):
        initialise_generator(tmp_path / "shallow", rrdb_generator(3, blocks=1, features=8, growth=4), (3, 3))


def test_a_deeper_generator_starts_from_a_shallower_run_folder_computing_the_same(tiny_run):
    """--init-from a run folder whose config has fewer RRDB blocks: its generator is rebuilt from that config, its
    latest checkpoint restored and deepened as an export would be; a generator of another width is one line,
    and none of its weights is touched."""
    import copy

    from heart_sr_tf.models.registry import make_generator
    from heart_sr_tf.training.runs import Run, initialise_generator

    config = copy.deepcopy(Run.open(tiny_run).config)
    config.generator.blocks += 2
    deep = make_generator(config)
    described = initialise_generator(tiny_run, deep, config.degradation.factors)
    assert "2 RRDB blocks added" in described and "ckpt" in described
    lr = np.random.default_rng(3).random((1, 16, 20, 1)).astype(np.float32)
    expected = load_run(tiny_run).generator(lr).numpy()
    np.testing.assert_allclose(deep(lr).numpy(), expected, atol=1e-5)
    assert not deep.get_layer(f"rrdb{config.generator.blocks - 1}_db1_conv4").kernel.numpy().any()
    config.generator.features += 4
    wider = make_generator(config)
    before = [w.numpy() for w in wider.weights]
    with pytest.raises(HeartSRError, match="not this architecture"):
        initialise_generator(tiny_run, wider, config.degradation.factors)
    assert all(np.array_equal(b, w.numpy()) for b, w in zip(before, wider.weights))  # nothing half-copied


def test_a_run_folder_starts_a_generator_for_other_factors_as_its_export_does(tiny_run, tiny_export):
    """--init-from a run folder trained for other factors: its head is re-laid exactly as from its export."""
    import copy

    from heart_sr_tf.models.registry import make_generator
    from heart_sr_tf.training.runs import Run, initialise_generator

    config = copy.deepcopy(Run.open(tiny_run).config)
    config.degradation = type(config.degradation)(config.degradation.kind, 2)
    from_run, from_export = make_generator(config), make_generator(config)
    described = initialise_generator(tiny_run, from_run, config.degradation.factors)
    assert "ckpt" in described and "its upsampling head re-laid for (2, 2)" in described
    initialise_generator(tiny_export, from_export, config.degradation.factors)
    for a, b in zip(from_run.weights, from_export.weights, strict=True):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    trained = {w.path: w.numpy() for w in load_run(tiny_run).generator.weights}
    np.testing.assert_array_equal(from_run.get_layer("conv_body").kernel.numpy(), trained["conv_body/kernel"])
    lr = np.random.default_rng(4).random((1, 10, 12, 1)).astype(np.float32)
    assert from_run(lr).shape == (1, 20, 24, 1)
