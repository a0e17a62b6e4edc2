import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.degradation import blocky_np, lr_grid, lr_grid_np


def test_lr_grid_hand_example():
    hr = np.arange(36, dtype=np.float32).reshape(6, 6)
    expected = np.array([[0, 3], [18, 21]], dtype=np.float32)
    np.testing.assert_array_equal(lr_grid_np(hr, 3), expected)
    blocks = blocky_np(expected, 3, (6, 6))
    np.testing.assert_array_equal(blocks[:3, :3], np.zeros((3, 3)))
    np.testing.assert_array_equal(blocks[3:, 3:], np.full((3, 3), 21))


@pytest.mark.parametrize("shape", [(256, 256), (7, 8), (10, 3), (5, 5), (3, 4)])
def test_tf_matches_numpy_reference(shape):
    rng = np.random.default_rng(1)
    hr = rng.random(shape).astype(np.float32)
    lr_np = lr_grid_np(hr, 3)
    assert lr_np.shape == (-(-shape[0] // 3), -(-shape[1] // 3))  # ceil(H / 3) x ceil(W / 3)
    lr_tf = lr_grid(tf.constant(hr[None, ..., None]), 3)[0, ..., 0].numpy()
    np.testing.assert_array_equal(lr_tf, lr_np)
    blocks = blocky_np(lr_np, 3, shape)
    assert blocks.shape == shape and (blocks[::3, ::3] == lr_np).all()


def test_sizes_not_divisible_keep_the_first_element_of_partial_blocks():
    hr = np.arange(7 * 8).reshape(7, 8)
    lr = lr_grid_np(hr, 3)
    assert lr.shape == (3, 3)
    assert lr[2, 2] == hr[6, 6]
    blocks = blocky_np(lr, 3, hr.shape)
    assert blocks[6, 7] == hr[6, 6] and blocks[5, 5] == hr[3, 3]


def test_256_gives_86():
    assert lr_grid(tf.zeros([2, 256, 256, 1])).shape == (2, 86, 86, 1)
