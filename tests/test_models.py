import keras
import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.interpolation import aligned_bicubic
from heart_sr_tf.models.discriminator import vgg_discriminator
from heart_sr_tf.models.layers import AlignedBicubicUpsample, PixelShuffle
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.models.vgg import VGGWeightsMissing, resolve_weights, vgg_feature_extractor


@pytest.fixture(scope="module")
def generator():
    return rrdb_generator(scale=3, blocks=2, features=16, growth=8)


@pytest.mark.parametrize("size", [(32, 32), (86, 86), (17, 23), (1, 5)])
def test_generator_upsamples_any_size_by_three(generator, size):
    out = generator(tf.random.uniform((2, *size, 1)))
    assert out.shape == (2, 3 * size[0], 3 * size[1], 1) and out.dtype == tf.float32


def test_untrained_generator_with_skip_is_exactly_aligned_bicubic():
    keras.utils.set_random_seed(0)
    g = rrdb_generator(blocks=1, features=8, growth=8)
    lr = np.random.default_rng(0).random((20, 26)).astype(np.float32)
    out = g(lr[None, ..., None])[0, ..., 0].numpy()
    np.testing.assert_allclose(out, aligned_bicubic(lr, 3, (60, 78), clip=False), atol=1e-5)


def test_bicubic_skip_stays_float32_under_mixed_precision():
    """Under mixed_bfloat16 only the residual is rounded; the bicubic image and the sum are float32."""
    lr = np.random.default_rng(3).random((1, 20, 26, 1)).astype(np.float32)
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        g = rrdb_generator(blocks=1, features=8, growth=8)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    last = g.get_layer("conv_last")
    last.set_weights([np.zeros_like(w) for w in last.get_weights()])
    out = g(lr)[0, ..., 0].numpy()
    assert out.dtype == np.float32
    np.testing.assert_allclose(out, aligned_bicubic(lr[0, ..., 0], 3, (60, 78), clip=False), atol=1e-5)


def test_bicubic_layer_equals_the_numpy_baseline():
    lr = np.random.default_rng(1).random((3, 11, 14, 1)).astype(np.float32)
    out = AlignedBicubicUpsample(3)(lr).numpy()
    for k in range(3):
        np.testing.assert_allclose(out[k, ..., 0], aligned_bicubic(lr[k, ..., 0], 3, (33, 42), clip=False), atol=1e-5)


def test_pixel_shuffle_layout():
    x = np.arange(9, dtype=np.float32).reshape(1, 1, 1, 9)
    np.testing.assert_array_equal(PixelShuffle(3)(x).numpy()[0, ..., 0], np.arange(9).reshape(3, 3))


def test_generator_round_trips_through_keras_format(generator, tmp_path):
    path = tmp_path / "g.keras"
    generator.save(path)
    loaded = keras.models.load_model(path)
    x = tf.random.uniform((1, 12, 9, 1))
    np.testing.assert_allclose(loaded(x).numpy(), generator(x).numpy(), atol=1e-6)
    assert not [layer for layer in generator.layers if isinstance(layer, keras.layers.Lambda)]


@pytest.mark.parametrize("size", [(96, 96), (48, 72), (31, 40)])
def test_discriminator_gives_one_logit_per_image(size):
    d = vgg_discriminator(features=8, stages=3)
    assert d(tf.zeros((3, *size, 1))).shape == (3, 1)


def test_vgg_features_are_taken_before_the_activation(tmp_path):
    f = vgg_feature_extractor("block5_conv4", weights="random")
    out = f(tf.random.uniform((1, 64, 64, 1)))
    assert out.shape == (1, 4, 4, 512)
    assert float(tf.reduce_min(out)) < 0  # a fused ReLU would clip these


def test_vgg_weights_from_a_file_are_used(tmp_path):
    vgg = keras.applications.VGG19(include_top=False, weights=None, input_shape=(None, None, 3))
    path = tmp_path / "vgg19.weights.h5"
    vgg.save_weights(path)
    f = vgg_feature_extractor("block2_conv2", weights=str(path))
    conv = next(layer for layer in f.layers if layer.name == "block2_conv2_pre")
    np.testing.assert_array_equal(conv.get_weights()[0], vgg.get_layer("block2_conv2").get_weights()[0])


def test_missing_vgg_weights_say_where_to_put_them(tmp_path, monkeypatch):
    monkeypatch.setenv("KERAS_HOME", str(tmp_path / "keras"))
    with pytest.raises(VGGWeightsMissing) as info:
        resolve_weights("imagenet")
    message = str(info.value)
    assert str(tmp_path / "keras" / "models" / "vgg19_weights_tf_dim_ordering_tf_kernels_notop.h5") in message
    assert "--vgg-weights" in message
    with pytest.raises(VGGWeightsMissing, match="nope.h5"):
        vgg_feature_extractor(weights=str(tmp_path / "nope.h5"))
