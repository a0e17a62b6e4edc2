"""The k-space degradation: TF op against the NumPy reference, band-limited exactness, mean, odd sizes."""

import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.kspace import (
    acquired_np,
    crop_to_multiple,
    kspace_lr,
    kspace_lr_np,
    window_np,
    zero_fill_np,
)


def _smooth_positive(shape, seed=0):
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.arange(shape[0]), np.arange(shape[1]), indexing="ij")
    image = 0.5 + 0.2 * np.sin(2 * np.pi * yy / shape[0] + rng.random()) * np.cos(2 * np.pi * 2 * xx / shape[1])
    return image.astype(np.float32)


@pytest.mark.parametrize("shape", [(255, 255), (256, 256), (97, 130), (60, 61), (10, 11)])
@pytest.mark.parametrize("window", ["none", "hamming", "tukey"])
def test_tf_op_matches_numpy_reference(shape, window):
    hr = np.random.default_rng(3).random(shape).astype(np.float32)
    lr_np = kspace_lr_np(hr, 3, window)
    lr_tf, hr_tf = kspace_lr(tf.constant(hr[..., None]), 3, window)
    assert lr_np.shape == (shape[0] // 3, shape[1] // 3)
    assert lr_tf.shape == lr_np.shape + (1,)
    assert hr_tf.shape == (3 * lr_np.shape[0], 3 * lr_np.shape[1], 1)
    np.testing.assert_array_equal(hr_tf.numpy()[..., 0], crop_to_multiple(hr, 3))
    np.testing.assert_allclose(lr_tf.numpy()[..., 0], lr_np, atol=2e-5)


@pytest.mark.parametrize("shape", [(255, 255), (96, 99), (257, 131)])
def test_band_limited_image_is_reproduced_exactly_at_the_lr_positions(shape):
    """A sum of cosines below the LR Nyquist frequency survives: LR[i, j] == HR[3i, 3j]."""
    hr = crop_to_multiple(np.zeros(shape), 3)
    height, width = hr.shape
    h, w = height // 3, width // 3
    yy, xx = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    rng = np.random.default_rng(0)
    hr = np.full(hr.shape, 1.0)
    for _ in range(6):
        ky, kx = rng.integers(0, (h - 1) // 2), rng.integers(0, (w - 1) // 2)  # integer frequencies below Nyquist
        hr += 0.1 * np.cos(2 * np.pi * (ky * yy / height + kx * xx / width) + rng.random() * 6)
    lr = kspace_lr_np(hr, 3)
    np.testing.assert_allclose(lr, hr[::3, ::3], atol=1e-5)
    lr_tf, _ = kspace_lr(tf.constant(hr[..., None], tf.float32), 3)
    np.testing.assert_allclose(lr_tf.numpy()[..., 0], hr[::3, ::3], atol=1e-4)
    # and zero-filling, the scanner's interpolation, gives the band-limited image back everywhere
    np.testing.assert_allclose(zero_fill_np(lr, 3, clip=False), hr, atol=1e-4)


@pytest.mark.parametrize("window", ["none", "hamming", "tukey"])
def test_mean_intensity_is_kept(window):
    hr = _smooth_positive((255, 240))
    lr = kspace_lr_np(hr, 3, window)
    assert abs(lr.mean() - hr.mean()) < 1e-4 * hr.mean()


def test_sizes_not_divisible_by_the_scale_crop_first():
    hr = np.random.default_rng(1).random((100, 104)).astype(np.float32)
    lr = kspace_lr_np(hr, 3)
    assert lr.shape == (33, 34)
    np.testing.assert_allclose(lr, kspace_lr_np(hr[:99, :102], 3), atol=1e-6)


def test_windows_peak_at_dc_and_taper():
    for n in (85, 86):
        for kind in ("hamming", "tukey"):
            window = window_np(n, kind)
            assert window[n // 2] == 1.0 and window[0] < 0.6 and window.shape == (n,)
    np.testing.assert_array_equal(window_np(85, "none"), np.ones(85))
    with pytest.raises(ValueError, match="unknown k-space window"):
        window_np(8, "hann")


def test_rician_noise_has_the_requested_sigma():
    hr = np.full((255, 255), 0.0, np.float32)  # zero signal: the magnitude is Rayleigh, mean sigma*sqrt(pi/2)
    lr_tf, _ = kspace_lr(tf.constant(hr[..., None]), 3, noise=(0.05, 0.05))
    assert abs(float(tf.reduce_mean(lr_tf)) - 0.05 * np.sqrt(np.pi / 2)) < 0.004
    lr_np = kspace_lr_np(hr, 3, sigma=0.05, rng=np.random.default_rng(0))
    assert abs(lr_np.mean() - 0.05 * np.sqrt(np.pi / 2)) < 0.004
    clean, _ = kspace_lr(tf.constant(hr[..., None]), 3)
    assert float(tf.reduce_max(clean)) < 1e-6


def test_degradation_choice_dispatches_and_names_its_baselines():
    hr = _smooth_positive((256, 256))
    dec, ksp = Degradation("decimation", 3), Degradation("kspace", 3)
    lr, cropped = dec.pair_np(hr)
    assert lr.shape == (86, 86) and cropped.shape == (256, 256)
    lr, cropped = ksp.pair_np(hr)
    assert lr.shape == (85, 85) and cropped.shape == (255, 255)
    assert ksp.baselines == ("zero_fill", "bicubic") and dec.baselines == ("bicubic", "blocky")
    images = ksp.baseline_images(lr, cropped.shape)
    assert set(images) == {"zero_fill", "bicubic"} and images["zero_fill"].shape == (255, 255)
    assert Degradation.from_metadata({"degradation": ksp.metadata()}) == ksp
    assert Degradation.from_metadata({"degradation": "LR = HR[::3, ::3]", "scale": 3}) == dec
    with pytest.raises(ValueError, match="unknown degradation"):
        Degradation("blur", 3)


@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("window", ["none", "hamming"])
def test_an_integer_acquisition_is_the_zero_filled_degradation(factor, window):
    """The ladder's rung at an integer factor is exactly the zero-filled baseline of that degradation."""
    hr = np.random.default_rng(factor).random((96, 120))
    expected = zero_fill_np(kspace_lr_np(hr, factor, window), factor)
    np.testing.assert_allclose(acquired_np(hr, factor, window), expected, atol=1e-6)
    noisy = [acquired_np(hr, factor, window, sigma=0.05, rng=np.random.default_rng(1)) for _ in range(2)]
    reference = zero_fill_np(kspace_lr_np(hr, factor, window, sigma=0.05, rng=np.random.default_rng(1)), factor)
    np.testing.assert_allclose(noisy[0], reference, atol=1e-6)


def test_milder_acquisitions_come_closer_to_full_resolution():
    """On HR's own grid at any real factor; factor 1 keeps every sample, and the error grows with the factor."""
    hr = np.clip(_smooth_positive((101, 128)) + 0.1 * np.random.default_rng(0).random((101, 128)), 0, 1)
    np.testing.assert_allclose(acquired_np(hr, 1.0), hr, atol=1e-6)
    errors = []
    for factor in (1.25, 1.5, 2.0, 2.5, 3.0):
        image = acquired_np(hr, factor)
        assert image.shape == hr.shape and image.dtype == np.float32
        assert 0 <= image.min() and image.max() <= 1
        errors.append(float(np.mean((image - hr) ** 2)))
    assert all(a < b for a, b in zip(errors, errors[1:], strict=False)), errors
    with pytest.raises(ValueError, match="at least 1"):
        acquired_np(hr, 0.5)
