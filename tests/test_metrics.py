import numpy as np
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from heart_sr_tf.metrics import image_metrics


def _pairs():
    rng = np.random.default_rng(0)
    hr = np.clip(rng.random((3, 40, 52)) * 0.3 + np.linspace(0, 0.7, 52), 0, 1)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1)
    return sr.astype(np.float32), hr.astype(np.float32)


def test_metrics_follow_the_stated_conventions():
    sr, hr = _pairs()
    for k in range(3):
        ref = image_metrics(sr[k], hr[k])
        mse = np.mean((sr[k].astype(np.float64) - hr[k]) ** 2)
        np.testing.assert_allclose(ref["psnr"], 10 * np.log10(1.0 / mse), rtol=1e-9)  # data range 1
        np.testing.assert_allclose(ref["psnr"], peak_signal_noise_ratio(hr[k], sr[k], data_range=1), rtol=1e-9)
        np.testing.assert_allclose(ref["ssim"], structural_similarity(hr[k], sr[k], data_range=1), rtol=1e-6)
        assert ref["ssim_gauss"] != ref["ssim"] and 0 < ref["ssim_gauss"] < 1


def test_identical_images_and_nrmse():
    _, hr = _pairs()
    m = image_metrics(hr[0], hr[0])
    assert m["ssim"] == 1.0 and m["nrmse"] == 0.0 and m["psnr"] == np.inf
    m = image_metrics(hr[0] * 0.9, hr[0])
    np.testing.assert_allclose(m["nrmse"], 0.1, rtol=1e-5)


def test_ahead_means_gains_that_show_as_positive():
    """A 2-step run 0.004 dB and 0.00003 SSIM ahead of bicubic was called "ahead" next to "+0.00 dB PSNR,
    +0.0000 SSIM": ahead means both gains positive as they are shown."""
    from heart_sr_tf.metrics import ahead, gain_text

    base = {"psnr": 27.26, "ssim": 0.8750}
    assert ahead({"psnr": 27.28, "ssim": 0.8752}, base)
    barely = {"psnr": 27.264, "ssim": 0.87503}
    assert gain_text(barely, base, "b") == "model - b: +0.00 dB PSNR, +0.0000 SSIM" and not ahead(barely, base)
    assert not ahead({"psnr": 28.0, "ssim": 0.8749}, base) and not ahead({"psnr": 27.25, "ssim": 0.9}, base)
