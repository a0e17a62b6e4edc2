import cv2
import numpy as np

from heart_sr_tf.data.degradation import lr_grid_np
from heart_sr_tf.data.interpolation import aligned_bicubic, interpolation_matrix


def test_rows_of_the_matrix_sum_to_one_and_hit_the_samples():
    m = interpolation_matrix(10, 28, 3)
    np.testing.assert_allclose(m.sum(axis=1), 1.0, atol=1e-12)
    for i in range(10):
        expected = np.zeros(10)
        expected[i] = 1
        np.testing.assert_allclose(m[3 * i], expected, atol=1e-12)


def test_linear_ramp_is_reproduced_in_the_interior():
    hr = np.add.outer(np.arange(60.0), 2 * np.arange(60.0)) / 200
    out = aligned_bicubic(lr_grid_np(hr, 3), 3, hr.shape, clip=False)
    np.testing.assert_allclose(out[3:-6, 3:-6], hr[3:-6, 3:-6], atol=1e-6)


def test_aligned_beats_plain_cv2_resize_on_a_smooth_image():
    yy, xx = np.mgrid[0:96, 0:96] / 96.0
    hr = (0.5 + 0.4 * np.sin(6 * xx) * np.cos(5 * yy)).astype(np.float32)
    lr = lr_grid_np(hr, 3)
    aligned = aligned_bicubic(lr, 3, hr.shape)
    plain = cv2.resize(lr, (96, 96), interpolation=cv2.INTER_CUBIC)
    err_aligned = np.sqrt(np.mean((aligned - hr)[4:-4, 4:-4] ** 2))
    err_plain = np.sqrt(np.mean((plain - hr)[4:-4, 4:-4] ** 2))
    assert err_aligned < err_plain / 3
