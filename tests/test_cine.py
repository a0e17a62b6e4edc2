"""Whole cines for the temporal models: the protocol grid, frame windows, inflation from 2D, tiling in 3D."""

from pathlib import Path

import cv2
import nibabel as nib
import numpy as np
import pytest

from heart_sr_tf.data.cine import cine_slices, degraded_cines, frame_windows
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.intensity import intensity_window, normalise
from heart_sr_tf.errors import DataError


def _patient(root: Path, pid: str, image: np.ndarray, name: str, frames: int = 1) -> None:
    folder = root / "training" / pid
    folder.mkdir(parents=True)
    (folder / "Info.cfg").write_text(f"ED: 1\nES: {frames}\nGroup: NOR\nHeight: 170\nNbFrame: {frames}\nWeight: 70\n")
    nib.save(nib.Nifti1Image(image.astype(np.float32), np.eye(4)), str(folder / f"{pid}_{name}.nii.gz"))


def _full_and_turned_crop(tmp_path, turns: int):
    rng = np.random.default_rng(0)
    full = cv2.GaussianBlur(rng.random((60, 50, 5)).astype(np.float32), (5, 5), 2) * 900
    full[:4, :4] = 2000  # bright corner outside the crop: the window must come from the full volume
    crop = full[10:40, 5:45, 1:4]  # 30 x 40 x 3 (rows, columns, slices)
    frames = np.stack([crop * (1 + 0.05 * t) for t in range(6)], axis=3)
    frames[..., 0] = crop  # ED is frame 1: exactly the crop
    _patient(tmp_path / "full", "patient007", full, "frame01")
    _patient(tmp_path / "cropped", "patient007", np.rot90(frames, turns, axes=(0, 1)), "4d", frames=6)
    return full, crop, frames


@pytest.mark.parametrize("turns", [0, 1])
def test_a_cropped_cine_is_put_back_on_the_grid_of_its_full_scan(tmp_path, turns):
    full, crop, frames = _full_and_turned_crop(tmp_path, turns)
    roots = [tmp_path / "full", tmp_path / "cropped"]
    cines = list(cine_slices(roots, roots[:1]))
    assert [(c.patient, c.slice) for c in cines] == [("patient007", z) for z in range(3)]
    shape = (round(30 * 256 / 60), round(40 * 256 / 50))  # the full scan's factors, turned back
    window = intensity_window(full)
    for cine in cines:
        assert cine.images.shape == (*shape, 6)
        for t in (0, 3):
            plane = normalise(frames[:, :, cine.slice, t], window)
            expected = np.clip(cv2.resize(plane, shape[::-1], interpolation=cv2.INTER_CUBIC), 0, 1)
            np.testing.assert_allclose(cine.images[:, :, t], expected, atol=1e-6)


def test_a_cine_that_is_not_a_crop_of_its_full_scan_is_refused(tmp_path):
    _full_and_turned_crop(tmp_path, 0)
    other = np.random.default_rng(1).random((30, 40, 3, 6)) * 900
    folder = tmp_path / "cropped" / "training" / "patient007"
    nib.save(nib.Nifti1Image(other.astype(np.float32), np.eye(4)), str(folder / "patient007_4d.nii.gz"))
    with pytest.raises(DataError, match="patient007_4d.nii.gz: its ED frame 1 is not a crop of the full-size"):
        list(cine_slices([tmp_path / "full", tmp_path / "cropped"], [tmp_path / "full"]))


def test_a_full_size_cine_takes_the_2d_protocol_per_frame(tmp_path):
    cine = np.random.default_rng(2).random((40, 30, 2, 4)).astype(np.float32) * [1, 2, 3, 4]
    _patient(tmp_path, "patient001", cine, "4d", frames=4)
    (only,) = [c for c in cine_slices([tmp_path]) if c.slice == 1]
    for t in range(4):
        expected = cv2.resize(
            normalise(cine[:, :, 1, t], intensity_window(cine[..., t])), (256, 256), interpolation=cv2.INTER_CUBIC
        )
        np.testing.assert_allclose(only.images[:, :, t], np.clip(expected, 0, 1), atol=1e-6)


def test_frame_windows_wrap_around_the_cycle():
    lr = np.arange(5, dtype=np.float32)[None, None, :] * np.ones((2, 3, 1), np.float32)
    windows = frame_windows(lr, 3)
    assert windows.shape == (5, 2, 3, 3)
    assert windows[:, 0, 0].tolist() == [[4, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4], [3, 4, 0]]
    assert frame_windows(lr[:, :, :1], 3)[0, 0, 0].tolist() == [0, 0, 0]  # one frame: itself all round


def test_degraded_cines_degrade_every_frame_as_a_2d_slice():
    images = np.random.default_rng(3).random((31, 28, 4)).astype(np.float32)
    from heart_sr_tf.data.cine import SliceCine

    ((_, lr, hr),) = degraded_cines([SliceCine("p", 0, images)], Degradation("kspace", 3))
    assert lr.shape == (10, 9, 4) and hr.shape == (30, 27, 4)
    for t in range(4):
        lr2, hr2 = Degradation("kspace", 3).pair_np(images[:, :, t])
        np.testing.assert_allclose(lr[:, :, t], lr2, atol=1e-6)
        np.testing.assert_array_equal(hr[:, :, t], hr2)


def _random_generator(dims: int, seed: int):
    from heart_sr_tf.models.mdcsrn import mdcsrn_generator

    generator = mdcsrn_generator(dims, 3, blocks=2, units=2, growth=4)
    rng = np.random.default_rng(seed)
    for weight in generator.weights:
        if "moving_variance" in weight.path:
            weight.assign(rng.uniform(0.5, 1.5, weight.shape))
        elif weight.trainable:
            weight.assign(rng.normal(0, 0.2, weight.shape))
    return generator


def test_a_2d_generator_inflated_into_3d_computes_the_same_on_every_frame():
    from heart_sr_tf.export.reader import _adapted

    two, three = _random_generator(2, 0), _random_generator(3, 1)
    values = {w.path: w.numpy() for w in two.weights}
    for weight in three.weights:
        value = values[weight.path]
        if value.shape != tuple(weight.shape):
            value = _adapted(value, weight, (3, 3), (3, 3))
        weight.assign(value)
    lr = np.random.default_rng(4).random((1, 12, 10, 5, 1)).astype(np.float32)
    out = three(lr, training=False).numpy()
    for d in range(5):
        np.testing.assert_allclose(out[:, :, :, d], two(lr[:, :, :, d], training=False).numpy(), atol=1e-4)


def test_a_3d_model_tiled_in_plane_equals_the_whole_volume():
    from heart_sr_tf.inference.tiling import tiled_apply

    generator = _random_generator(3, 5)
    lr = np.random.default_rng(6).random((2, 70, 64, 3, 1)).astype(np.float32)

    def fn(x):
        return generator(x, training=False).numpy()

    whole = fn(lr)
    tiled = tiled_apply(fn, lr, (3, 3), tile=24, margin=12, budget=20 * 20 * 3)
    assert tiled.shape == whole.shape == (2, 210, 192, 3, 1)
    np.testing.assert_allclose(tiled, whole, atol=1e-3)
