"""Every loss is per sample, ``[B]``, for 2D and 3D batches: the train steps average with the global batch."""

import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.training.losses import discriminator_loss, feature_loss, generator_adversarial_loss, pixel_loss


@pytest.mark.parametrize("shape", [(4, 12, 10, 1), (4, 12, 10, 5, 1)])
@pytest.mark.parametrize("kind", ["mse", "l1"])
def test_pixel_loss_is_per_sample_for_4d_and_5d(shape, kind):
    rng = np.random.default_rng(0)
    sr, hr = rng.random(shape).astype(np.float32), rng.random(shape).astype(np.float32)
    loss = pixel_loss(tf.constant(sr), tf.constant(hr), kind).numpy()
    assert loss.shape == (shape[0],)
    diff = sr - hr
    expected = (diff**2 if kind == "mse" else np.abs(diff)).reshape(shape[0], -1).mean(axis=1)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)


def test_feature_and_adversarial_losses_equal_their_formulas_per_sample():
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(3, 5, 5, 8)).astype(np.float32), rng.normal(size=(3, 5, 5, 8)).astype(np.float32)
    np.testing.assert_allclose(
        feature_loss(tf.constant(a), tf.constant(b)).numpy(), ((a - b) ** 2).mean((1, 2, 3)), 1e-5
    )
    real, fake = np.array([[2.0], [-1.0], [0.0]], np.float32), np.array([[0.5], [3.0], [-2.0]], np.float32)

    def bce(logit, label):  # sigmoid cross-entropy
        p = 1 / (1 + np.exp(-logit[:, 0]))
        return -(label * np.log(p) + (1 - label) * np.log(1 - p))

    d = discriminator_loss(tf.constant(real), tf.constant(fake)).numpy()
    np.testing.assert_allclose(d, bce(real, 1.0) + bce(fake, 0.0), rtol=1e-5)
    np.testing.assert_allclose(generator_adversarial_loss(tf.constant(fake)).numpy(), bce(fake, 1.0), rtol=1e-5)
    np.testing.assert_allclose(generator_adversarial_loss(tf.zeros([3, 1])).numpy(), np.log(2.0) * np.ones(3), 1e-6)


def test_3d_wgan_generator_loss_is_not_multiplied_by_the_batch():
    """The 3D bug: a [B, 1] pixel loss broadcast against the critic's [B] gave B times the loss."""
    from heart_sr_tf.models.critic import wgan_critic
    from heart_sr_tf.models.mdcsrn import mdcsrn_generator
    from heart_sr_tf.training.wgan import WGAN

    model = WGAN(mdcsrn_generator(3, blocks=1, units=1, growth=4), wgan_critic(3, 4, 1))
    model.compile(tf.keras.optimizers.SGD(0.0), tf.keras.optimizers.SGD(0.0), lambda_adv=0.0)
    hr = tf.random.uniform([4, 12, 12, 3, 1])
    logs = model.generator_step((hr[:, ::3, ::3], hr))
    np.testing.assert_allclose(float(logs["g_loss"]), float(logs["content"]), rtol=1e-6)
    sr = model.generator(hr[:, ::3, ::3])
    np.testing.assert_allclose(float(logs["content"]), float(tf.reduce_mean(tf.abs(sr - hr))), rtol=1e-5)


def test_ssim_loss_is_one_minus_the_published_ssim():
    from heart_sr_tf.metrics import image_metrics
    from heart_sr_tf.training.losses import ssim_loss

    rng = np.random.default_rng(0)
    hr = rng.random((3, 40, 33, 1)).astype(np.float32)
    sr = np.clip(hr + rng.normal(0, 0.1, hr.shape), 0, 1).astype(np.float32)
    loss = ssim_loss(tf.constant(sr), tf.constant(hr)).numpy()
    expected = [1 - image_metrics(s[..., 0], h[..., 0])["ssim"] for s, h in zip(sr, hr, strict=True)]
    np.testing.assert_allclose(loss, expected, atol=1e-5)
    assert ssim_loss(tf.constant(hr), tf.constant(hr)).numpy() == pytest.approx([0, 0, 0], abs=1e-6)


def test_segmentation_loss_is_a_weighted_kl_of_the_segmenters_outputs():
    from heart_sr_tf.training.losses import segmentation_loss

    rng = np.random.default_rng(0)
    hr = rng.normal(0, 2, (2, 6, 5, 4)).astype(np.float32)
    sr = hr + rng.normal(0, 1, hr.shape).astype(np.float32)
    weights = [0.5, 1.0, 3.0, 2.0]
    loss = segmentation_loss(tf.constant(sr), tf.constant(hr), weights).numpy()

    def log_softmax(x):
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    p, lp, lq = np.exp(log_softmax(hr)), log_softmax(hr), log_softmax(sr)
    kl = (p * (lp - lq)).sum(-1) * np.array(weights)[hr.argmax(-1)]
    np.testing.assert_allclose(loss, kl.reshape(2, -1).mean(1), rtol=1e-5)
    assert np.all(loss > 0)
    np.testing.assert_allclose(segmentation_loss(tf.constant(hr), tf.constant(hr), weights).numpy(), 0, atol=1e-6)
    # the segmenter's own border in HR (largest probability under 0.8) weighs 1 + border_weight times more
    border = p.max(-1) < 0.8
    assert 0 < border.sum() < border.size
    bordered = segmentation_loss(tf.constant(sr), tf.constant(hr), weights, border_weight=4.0).numpy()
    np.testing.assert_allclose(bordered, (kl * (1 + 4.0 * border)).reshape(2, -1).mean(1), rtol=1e-5)


def test_segmentation_volume_loss_is_the_relative_change_of_each_structures_soft_area():
    from heart_sr_tf.training.losses import segmentation_volume_loss

    big = 40.0  # logits decisive enough that the soft areas are the label counts
    hr = np.zeros((2, 10, 10, 4), np.float32)
    hr[..., 0] = big
    hr[0, 2:8, 2:8, 0], hr[0, 2:8, 2:8, 2] = 0, big  # sample 0: 36 pixels of myocardium
    sr = hr.copy()
    sr[0, 1, 2:8, 0], sr[0, 1, 2:8, 2] = 0, big  # its border moved out by one row: 42 pixels
    loss = segmentation_volume_loss(tf.constant(sr), tf.constant(hr), floor=4.0).numpy()
    assert loss.shape == (2,)
    np.testing.assert_allclose(loss, [6 / (36 + 4), 0.0], atol=1e-5)  # sample 1 has no structure: nothing moved
    same = segmentation_volume_loss(tf.constant(hr), tf.constant(hr)).numpy()
    np.testing.assert_allclose(same, 0.0, atol=1e-6)


def test_segmenter_feature_loss_is_each_levels_relative_distance_averaged():
    from heart_sr_tf.training.losses import segmenter_feature_loss

    rng = np.random.default_rng(3)
    hr = [rng.normal(0, s, (2, 8 // 2**i, 6 // 2**i, 4 * 2**i)).astype(np.float32) for i, s in enumerate((1, 5))]
    sr = [h + rng.normal(0, 0.5, h.shape).astype(np.float32) for h in hr]
    loss = segmenter_feature_loss([tf.constant(x) for x in sr], [tf.constant(x) for x in hr]).numpy()
    levels = [((s - h) ** 2).reshape(2, -1).mean(1) / ((h**2).reshape(2, -1).mean(1) + 1e-6) for s, h in zip(sr, hr)]
    np.testing.assert_allclose(loss, (levels[0] + levels[1]) / 2, rtol=1e-5)
    assert loss.shape == (2,) and np.all(loss > 0)
    # every level weighs by its own energy: the same relative error at 10x the scale gives the same loss
    scaled = segmenter_feature_loss([tf.constant(10 * x) for x in sr], [tf.constant(10 * x) for x in hr]).numpy()
    np.testing.assert_allclose(scaled, loss, rtol=1e-4)
    same = segmenter_feature_loss([tf.constant(x) for x in hr], [tf.constant(x) for x in hr]).numpy()
    np.testing.assert_allclose(same, 0.0, atol=1e-7)
