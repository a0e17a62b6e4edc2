from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.models.discriminator import vgg_discriminator
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.models.vgg import vgg_feature_extractor
from heart_sr_tf.training.distribute import distribute_dataset, distributed_step
from heart_sr_tf.training.srgan import SRGAN


def _batch(n=4, size=24, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    hr = np.stack([0.5 + 0.4 * np.sin(7 * xx + k) * np.cos(5 * yy) for k in range(n)])[..., None]
    hr = np.clip(hr + rng.normal(0, 0.01, hr.shape), 0, 1).astype(np.float32)
    return tf.constant(hr[:, ::3, ::3]), tf.constant(hr)


def _model(optimizer=keras.optimizers.Adam, lr=1e-3, features=None, feature_weight=0.0, seed=0):
    keras.utils.set_random_seed(seed)
    g = rrdb_generator(blocks=1, features=8, growth=8)
    d = vgg_discriminator(features=8, stages=2)
    model = SRGAN(g, d, features)
    model.compile(optimizer(lr), optimizer(lr), feature_weight=feature_weight)
    model.g_optimizer.build(g.trainable_variables)
    model.d_optimizer.build(d.trainable_variables)
    return model


def _snapshot(network):
    return [v.numpy().copy() for v in network.trainable_variables]


def _changed(before, network):
    return all(np.any(a != b.numpy()) for a, b in zip(before, network.trainable_variables) if a.size > 1)


def _run_steps(model, data, mode, steps=1, strategy=None):
    """The production path: the training loop's compiled ``strategy.run(step_fn)`` over a distributed dataset."""
    strategy = strategy or tf.distribute.get_strategy()
    step = distributed_step(strategy, model.step_for(mode))
    batches = iter(distribute_dataset(strategy, data.repeat()))
    return [{k: float(v) for k, v in step(batches).items()} for _ in range(steps)]


def test_adversarial_step_changes_both_networks():
    model = _model()
    g0, d0 = _snapshot(model.generator), _snapshot(model.discriminator)
    for _ in range(2):  # the generator's last convolution starts at zero: the second step reaches every layer
        logs = model.train_step(_batch())
    assert set(logs) == {"g_loss", "d_loss", "pixel", "adversarial"}
    assert all(np.isfinite(float(v)) for v in logs.values())
    assert _changed(g0, model.generator) and _changed(d0, model.discriminator)


def test_pretraining_step_changes_only_the_generator():
    model = _model()
    g0, d0 = _snapshot(model.generator), _snapshot(model.discriminator)
    for _ in range(2):
        logs = model.step_for("generator")(_batch())
    assert set(logs) == {"g_loss", "pixel"}
    assert _changed(g0, model.generator)
    assert all(np.array_equal(a, b.numpy()) for a, b in zip(d0, model.discriminator.trainable_variables))


def test_pixel_loss_goes_down_through_the_loop_step():
    model = _model(lr=2e-3)
    logs = _run_steps(model, tf.data.Dataset.from_tensors(_batch(8)), "generator", steps=40)
    assert set(logs[0]) == {"g_loss", "pixel"}
    assert logs[-1]["pixel"] < 0.7 * logs[0]["pixel"]


def test_unknown_mode_is_refused():
    with pytest.raises(ValueError, match="unknown SRGAN mode"):
        _model().step_for("critic")


def test_feature_loss_term_with_a_vgg_stand_in():
    model = _model(features=vgg_feature_extractor("block2_conv2", weights="random"), feature_weight=0.1)
    logs = model.train_step(_batch())
    assert float(logs["feature"]) > 0 and "feature" in logs


@pytest.mark.slow  # exports and converts, or compiles under two devices: tens of seconds
@pytest.mark.parametrize("adversarial", [False, True])
def test_mirrored_step_equals_single_device_step(adversarial):
    """Gradients summed over 2 replicas of 4 equal the gradient of one device over the batch of 8."""
    cpus = tf.config.list_logical_devices("CPU")
    assert len(cpus) >= 2, "conftest configures two logical CPUs"
    data = tf.data.Dataset.from_tensors(_batch(8, seed=1))
    mode = "both" if adversarial else "generator"
    single = _model(keras.optimizers.SGD, lr=0.5, seed=3)
    single_logs = _run_steps(single, data, mode)
    strategy = tf.distribute.MirroredStrategy(
        [d.name for d in cpus[:2]], cross_device_ops=tf.distribute.ReductionToOneDevice()
    )
    with strategy.scope():
        mirrored = _model(keras.optimizers.SGD, lr=0.5, seed=3)
    assert strategy.num_replicas_in_sync == 2
    mirrored_logs = _run_steps(mirrored, data, mode, strategy=strategy)
    for key, value in single_logs[0].items():  # logged losses are replica means of the same global batch
        np.testing.assert_allclose(mirrored_logs[0][key], value, rtol=1e-5)
    for net in ("generator", "discriminator"):
        a, b = getattr(single, net).trainable_variables, getattr(mirrored, net).trainable_variables
        moved = max(float(np.abs(x.numpy() - y).max()) for x, y in zip(a, _snapshot_init(net, adversarial)))
        for x, y in zip(a, b):
            np.testing.assert_allclose(x.numpy(), y.numpy(), atol=1e-5)
        if net == "generator" or adversarial:
            assert moved > 1e-4  # the step really changed the weights


def _snapshot_init(net, adversarial):
    model = _model(keras.optimizers.SGD, lr=0.5, seed=3)
    return [v.numpy() for v in getattr(model, net).trainable_variables]


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_mixed_precision_steps_are_finite(precision):
    """The GPU options build and step on the CPU too (loss scaling for float16, float32 outputs)."""
    from heart_sr_tf.config import WGANConfig, load_config
    from heart_sr_tf.training.build import build_srgan, build_wgan

    configs = Path(__file__).parent / "configs"
    try:
        srgan_config = load_config(configs / "tiny.toml")
        srgan_config.train.mixed_precision = precision
        model = build_srgan(srgan_config, tf.distribute.get_strategy())
        assert model.generator.layers[1].compute_dtype == precision
        logs = model.step_for("both")(_batch())
        assert all(np.isfinite(float(v)) for v in logs.values())
        assert model.generator(_batch()[0]).dtype == tf.float32
        wgan_config = load_config(configs / "tiny_wgan.toml", WGANConfig)
        wgan_config.train.mixed_precision = precision
        logs = build_wgan(wgan_config, tf.distribute.get_strategy()).joint_step(_batch())
        assert all(np.isfinite(float(v)) for v in logs.values())
    finally:
        keras.mixed_precision.set_global_policy("float32")


@pytest.mark.parametrize(
    "weight, term, factor, seed",
    [
        ("segmentation_weight", "segmentation", 0.7, 0),
        ("segmentation_volume_weight", "segmentation_volume", 0.7, 2),
        ("segmentation_feature_weight", "segmentation_feature", 0.5, 4),
    ],
)
def test_a_term_through_a_frozen_segmenter_goes_down_and_trains_only_the_generator(weight, term, factor, seed):
    from heart_sr_tf.models.unet import unet_segmenter

    keras.utils.set_random_seed(seed)
    segmenter = unet_segmenter(4, features=4, depth=2, dropout=0.0)
    logits = segmenter.get_layer("logits")
    logits.kernel.assign(logits.kernel * 300.0)  # a random U-Net is nearly constant: make its classes decisive
    segmenter.trainable = False
    frozen = [w.numpy().copy() for w in segmenter.weights]  # batch-norm statistics included
    g = rrdb_generator(blocks=1, features=8, growth=8)
    model = SRGAN(g, vgg_discriminator(features=8, stages=2), segmenters=[(segmenter, 4)])
    model.compile(keras.optimizers.Adam(2e-3), keras.optimizers.Adam(2e-3), pixel_weight=0.0, **{weight: 1.0})
    model.g_optimizer.build(g.trainable_variables)
    logs = _run_steps(model, tf.data.Dataset.from_tensors(_batch(8, size=30)), "generator", steps=30)
    assert set(logs[0]) == {"g_loss", "pixel", term}
    assert logs[-1][term] < factor * logs[0][term]
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(frozen, segmenter.weights, strict=True))


def test_segmentation_term_through_several_segmenters_is_their_mean():
    from heart_sr_tf.models.unet import unet_segmenter

    keras.utils.set_random_seed(1)
    segmenters = []
    for depth in (1, 2):
        net = unet_segmenter(4, features=4, depth=depth, dropout=0.0)
        net.get_layer("logits").kernel.assign(net.get_layer("logits").kernel * 300.0)
        net.trainable = False
        segmenters.append((net, 2**depth))
    g = rrdb_generator(blocks=1, features=8, growth=8)
    lr, hr = _batch(4, size=30)
    sr = g(lr)[:, : hr.shape[1], : hr.shape[2]]
    terms = []
    for chosen in ([segmenters[0]], [segmenters[1]], segmenters):
        model = SRGAN(g, vgg_discriminator(features=8, stages=2), segmenters=chosen)
        model.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), segmentation_weight=1.0)
        terms.append(model._generator_terms(sr, hr)["segmentation"].numpy())
    assert terms[0].shape == (4,) and not np.allclose(terms[0], terms[1])
    np.testing.assert_allclose(terms[2], (terms[0] + terms[1]) / 2, rtol=1e-5)


def test_segmenter_encoder_features_are_the_networks_own():
    from heart_sr_tf.models.unet import (
        segment_logits,
        segment_logits_and_features,
        unet_segmenter,
        with_encoder_features,
    )

    keras.utils.set_random_seed(4)
    segmenter = unet_segmenter(4, features=4, depth=2, dropout=0.0)
    probe = with_encoder_features(segmenter)
    images = tf.random.uniform((2, 30, 22, 1))
    logits, features = segment_logits_and_features(probe, images, 4)
    # the same logits as the segmenter alone; one feature map per encoder level, on the padded 32x24 grid
    np.testing.assert_allclose(logits.numpy(), segment_logits(segmenter, images, 4).numpy(), atol=1e-5)
    assert [tuple(f.shape) for f in features] == [(2, 32, 24, 4), (2, 16, 12, 8)]
    assert all(a is b for a, b in zip(probe.weights, segmenter.weights, strict=True))  # shared, not copied


def test_segmentation_and_feature_terms_share_one_pass_through_each_segmenter():
    from heart_sr_tf.models.unet import unet_segmenter

    keras.utils.set_random_seed(5)
    segmenter = unet_segmenter(4, features=4, depth=2, dropout=0.0)
    segmenter.get_layer("logits").kernel.assign(segmenter.get_layer("logits").kernel * 300.0)
    segmenter.trainable = False
    g = rrdb_generator(blocks=1, features=8, growth=8)
    lr, hr = _batch(4, size=30)
    sr = g(lr)[:, : hr.shape[1], : hr.shape[2]]
    both = SRGAN(g, vgg_discriminator(features=8, stages=2), segmenters=[(segmenter, 4)])
    both.compile(
        keras.optimizers.Adam(), keras.optimizers.Adam(), segmentation_weight=1.0, segmentation_feature_weight=1.0
    )
    alone = SRGAN(g, vgg_discriminator(features=8, stages=2), segmenters=[(segmenter, 4)])
    alone.compile(keras.optimizers.Adam(), keras.optimizers.Adam(), segmentation_weight=1.0)
    terms, reference = both._generator_terms(sr, hr), alone._generator_terms(sr, hr)
    np.testing.assert_allclose(terms["segmentation"].numpy(), reference["segmentation"].numpy(), rtol=1e-5)
    assert "segmentation_feature" not in reference and np.all(terms["segmentation_feature"].numpy() > 0)
