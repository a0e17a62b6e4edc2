"""The through-plane degradation (thick slices along one axis), its baselines and the anisotropic generator."""

import cv2
import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.interpolation import axis_matrix, interpolation_matrix
from heart_sr_tf.data.pipeline import aligned_patches
from heart_sr_tf.data.thick_slices import thick_slices, thick_slices_np
from heart_sr_tf.models.layers import AlignedBicubicUpsample, PixelShuffle
from heart_sr_tf.models.rrdb import rrdb_generator


def test_hand_example_box_of_t_rows_with_edge_replication():
    hr = np.arange(8, dtype=np.float32)[:, None] * np.ones((1, 3), np.float32)  # row i holds i
    # g = 3, t = 3: rows {-1, 0, 1} -> {0, 0, 1}, {2, 3, 4}, {5, 6, 7}
    np.testing.assert_allclose(thick_slices_np(hr, 3, 3)[:, 0], [1 / 3, 3, 6])
    # g = 3, t = 2: rows {0, 1}, {3, 4}, {6, 7}
    np.testing.assert_allclose(thick_slices_np(hr, 3, 2)[:, 0], [0.5, 3.5, 6.5])
    # g = 4, t = 4: rows {-1..2}, {3..6}: offsets -1 .. 2
    np.testing.assert_allclose(thick_slices_np(hr, 4, 4)[:, 0], [(0 + 0 + 1 + 2) / 4, 4.5])


@pytest.mark.parametrize("shape,g,t", [((256, 256), 6, 6), ((37, 20), 6, 6), ((31, 9), 4, 2), ((10, 5), 8, 8)])
def test_tf_op_matches_the_numpy_reference(shape, g, t):
    hr = np.random.default_rng(0).random(shape).astype(np.float32)
    expected = thick_slices_np(hr, g, t)
    assert expected.shape == (-(-shape[0] // g), shape[1])
    got = thick_slices(tf.constant(hr[..., None]), g, t)[..., 0].numpy()
    np.testing.assert_allclose(got, expected, atol=1e-6)


def test_constant_stays_constant_and_a_row_ramp_is_reproduced_at_the_lr_rows():
    np.testing.assert_allclose(thick_slices_np(np.full((40, 7), 0.3), 6, 6), 0.3, atol=1e-7)
    ramp = np.repeat(np.arange(60, dtype=np.float64)[:, None] / 100, 5, axis=1)
    lr = thick_slices_np(ramp, 6, 5)  # odd t: the box is symmetric, so the mean is the centre row's value
    np.testing.assert_allclose(lr[1:-1], ramp[6:-6:6], atol=1e-6)  # away from the replicated edges


@pytest.mark.parametrize("method", ["linear", "cubic", "sinc"])
def test_baselines_pass_through_the_lr_rows_and_keep_linear_ramps(method):
    lr = np.random.default_rng(1).random((9, 4))
    hr = axis_matrix(9, 50, 6, method) @ lr
    np.testing.assert_allclose(hr[::6], lr, atol=1e-9)
    ramp = np.arange(9.0)[:, None] * np.ones((1, 4))
    interpolated = axis_matrix(9, 49, 6, method) @ ramp
    expected = np.arange(49.0)[:, None] / 6 * np.ones((1, 4))
    inner = slice(12, 36)  # away from the replicated edge samples (three taps for the windowed sinc)
    # Lanczos and cv2's cubic (a = -0.75; Keys' a = -0.5 is the exact one) reproduce a ramp only approximately
    atol = {"sinc": 0.02, "cubic": 0.05}.get(method, 1e-9)
    np.testing.assert_allclose(interpolated[inner], expected[inner], atol=atol)


def test_degradation_pairs_and_baselines_have_the_right_shapes():
    degradation = Degradation("through_plane", 6)
    assert degradation.thickness == 6 and degradation.factors == (6, 1)
    hr = np.random.default_rng(2).random((50, 33)).astype(np.float32)
    lr, hr_out = degradation.pair_np(hr)
    assert lr.shape == (9, 33) and hr_out.shape == (50, 33)
    images = degradation.baseline_images(lr, hr.shape)
    assert set(images) == {"cubic", "linear", "sinc"}
    assert all(image.shape == (50, 33) for image in images.values())
    meta = degradation.metadata()
    assert meta["thickness"] == 6 and meta["factors"] == [6, 1]
    assert Degradation.from_metadata({"degradation": meta}) == degradation


def test_aligned_patches_are_anisotropic():
    hr = tf.random.uniform([100, 80, 1])
    lr = thick_slices(hr, 6, 6)
    lr_patches, hr_patches = aligned_patches(lr, hr, 48, 5, (6, 1))
    assert lr_patches.shape == (5, 8, 48, 1) and hr_patches.shape == (5, 48, 48, 1)
    for lp, hp in zip(lr_patches.numpy(), hr_patches.numpy(), strict=True):
        # each LR patch is the thick-slice grid of its HR patch (away from the image edge rows)
        np.testing.assert_allclose(lp[1:], thick_slices_np(hp, 6, 6)[1:], atol=1e-6)


def test_anisotropic_layers_and_generator():
    x = tf.random.uniform([2, 5, 7, 6 * 3])
    out = PixelShuffle((6, 1))(x).numpy()
    assert out.shape == (2, 30, 7, 3)
    np.testing.assert_array_equal(out[:, 6 * 2 + 4, 5, 1], x.numpy()[:, 2, 5, 4 * 3 + 1])
    lr = np.random.default_rng(3).random((2, 9, 11, 1)).astype(np.float32)
    cubic = AlignedBicubicUpsample((6, 1))(tf.constant(lr)).numpy()
    expected = np.einsum("hr,brwc->bhwc", interpolation_matrix(9, 54, 6), lr)  # Keys' cubic along the axis
    np.testing.assert_allclose(cubic, expected, atol=1e-5)
    generator = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    sr = generator(tf.constant(lr)).numpy()
    assert sr.shape == (2, 54, 11, 1)
    np.testing.assert_allclose(sr, expected, atol=1e-5)  # untrained with the skip: exactly Keys' cubic along the axis
    assert generator.get_layer("pixel_shuffle").get_config()["scale"] == [6, 1]


def test_cubic_baseline_is_opencvs_cubic_at_the_aligned_rows():
    """The "cubic" baseline is cv2.INTER_CUBIC (a = -0.75) with LR row r at HR row 6r: cv2.warpAffine with that map
    (its coordinates are quantised to 1/32 pixel, hence the tolerance)."""
    lr = np.random.default_rng(4).random((9, 5)).astype(np.float32)
    ours = axis_matrix(9, 49, 6, "cubic") @ lr
    to_hr = np.float32([[1, 0, 0], [0, 6, 0]])  # (x, y) -> (x, 6y): LR row r lands on HR row 6r
    theirs = cv2.warpAffine(lr, to_hr, (5, 49), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REPLICATE)
    np.testing.assert_allclose(ours, theirs, atol=3e-3)
