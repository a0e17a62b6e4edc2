import numpy as np
import tensorflow as tf
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from heart_sr_tf.metrics import image_metrics, psnr_tf, ssim7_tf, ssim_gauss_tf


def _pairs():
    rng = np.random.default_rng(0)
    hr = np.clip(rng.random((3, 40, 52)) * 0.3 + np.linspace(0, 0.7, 52), 0, 1)
    sr = np.clip(hr + rng.normal(0, 0.05, hr.shape), 0, 1)
    return sr.astype(np.float32), hr.astype(np.float32)


def test_tf_metrics_match_scikit_image():
    sr, hr = _pairs()
    p, t = tf.constant(sr[..., None]), tf.constant(hr[..., None])
    psnr, ssim7, ssimg = psnr_tf(p, t).numpy(), ssim7_tf(p, t).numpy(), ssim_gauss_tf(p, t).numpy()
    for k in range(3):
        ref = image_metrics(sr[k], hr[k])
        assert abs(psnr[k] - peak_signal_noise_ratio(hr[k], sr[k], data_range=1)) < 1e-4
        assert abs(ssim7[k] - structural_similarity(hr[k], sr[k], data_range=1)) < 1e-4
        assert abs(ssim7[k] - ref["ssim"]) < 1e-4 and abs(psnr[k] - ref["psnr"]) < 1e-4
        assert abs(ssimg[k] - ref["ssim_gauss"]) < 1e-3


def test_identical_images_and_nrmse():
    _, hr = _pairs()
    m = image_metrics(hr[0], hr[0])
    assert m["ssim"] == 1.0 and m["nrmse"] == 0.0 and m["psnr"] == np.inf
    m = image_metrics(hr[0] * 0.9, hr[0])
    np.testing.assert_allclose(m["nrmse"], 0.1, rtol=1e-5)
