import numpy as np
import pytest
import tensorflow as tf

from heart_sr_tf.data.acdc import find_patients
from heart_sr_tf.data.acdc_sr import crop
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.pipeline import (
    eval_pairs,
    patient_volumes,
    slice_dataset,
    to_unit,
    train_pairs,
    train_volumes,
)
from heart_sr_tf.data.prepare import prepare
from heart_sr_tf.data.slices import patient_slices


def test_train_pairs_shapes_ranges_and_on_the_fly_degradation(phantom_tfds):
    ds = train_pairs(slice_dataset(phantom_tfds, "full", "train"), patch=48, batch_size=8, shuffle_buffer=16)
    for lr, hr in ds.take(3):
        assert lr.shape == (8, 16, 16, 1) and hr.shape == (8, 48, 48, 1)
        assert lr.dtype == tf.float32
        assert float(tf.reduce_min(hr)) >= 0.0 and float(tf.reduce_max(hr)) <= 1.0
        np.testing.assert_array_equal(lr.numpy(), hr.numpy()[:, ::3, ::3])
        assert float(tf.math.reduce_std(hr)) > 0.01


def test_patch_must_be_a_multiple_of_the_scale(phantom_tfds):
    with pytest.raises(ValueError, match="multiple of the scale"):
        train_pairs(slice_dataset(phantom_tfds, "full", "train"), patch=50)


def test_eval_pairs_are_whole_slices(phantom_tfds):
    full = next(iter(eval_pairs(slice_dataset(phantom_tfds, "full", "validation"), batch_size=4)))
    assert full[0].shape == (4, 86, 86, 1) and full[1].shape == (4, 256, 256, 1)
    lr, hr = next(iter(eval_pairs(slice_dataset(phantom_tfds, "heart", "validation"))))
    assert hr.shape[1] < 256 and lr.shape[1] == -(-hr.shape[1] // 3)


def test_heart_patches_smaller_than_the_box_are_padded(phantom_tfds):
    ds = train_pairs(slice_dataset(phantom_tfds, "heart", "train"), patch=240, batch_size=2, shuffle_buffer=4)
    lr, hr = next(iter(ds))
    assert hr.shape == (2, 240, 240, 1) and lr.shape == (2, 80, 80, 1)


def test_splits_are_patient_disjoint_and_complete(phantom_tfds):
    seen = {}
    for split in ("train", "validation", "test"):
        seen[split] = {ex["patient"].numpy().decode() for ex in slice_dataset(phantom_tfds, "full", split)}
    assert not (seen["train"] & seen["validation"]) and not (seen["train"] & seen["test"])
    assert not (seen["validation"] & seen["test"])
    assert len(set().union(*seen.values())) == 5


def test_stored_slices_match_fresh_ones_above_80_db(phantom_root, phantom_tfds):
    patients = {p.id: p for p in find_patients(phantom_root)}
    for roi in ("full", "heart"):
        for ex in slice_dataset(phantom_tfds, roi, "validation").take(8):
            pid = ex["patient"].numpy().decode()
            fresh = next(
                s for s in patient_slices(patients[pid]) if s.slice == int(ex["slice"]) and s.frame == int(ex["frame"])
            )
            image = fresh.image if roi == "full" else crop(fresh.image, fresh.box)
            stored = to_unit(ex["hr"]).numpy()[..., 0]
            assert stored.shape == image.shape
            mse = np.mean((stored - image) ** 2)
            assert 10 * np.log10(1.0 / mse) >= 80


def test_3d_volumes_are_degraded_slice_by_slice_and_cut_aligned(phantom_root):
    volumes = [volume for _, volume in patient_volumes(phantom_root)][:3]
    decimation = Degradation("decimation", 3)
    lr, hr = next(iter(train_volumes(lambda: iter(volumes), decimation, patch=48, depth=5, batch_size=2)))
    assert hr.shape == (2, 48, 48, 5, 1) and lr.shape == (2, 16, 16, 5, 1)
    np.testing.assert_array_equal(lr.numpy(), hr.numpy()[:, ::3, ::3])
    kspace = Degradation("kspace", 3)
    lr, hr = next(iter(train_volumes(lambda: iter(volumes), kspace, patch=48, depth=4, batch_size=2)))
    assert hr.shape == (2, 48, 48, 4, 1) and lr.shape == (2, 16, 16, 4, 1)
    # every depth slice of a whole degraded volume equals the 2D degradation of that slice
    volume = tf.constant(volumes[0][:, :, :4, None])
    lr_volume, hr_volume = kspace.pair_volume(volume)
    for d in range(4):
        lr_slice, hr_slice = kspace.pair_np(volumes[0][:, :, d])
        np.testing.assert_allclose(lr_volume.numpy()[:, :, d, 0], lr_slice, atol=1e-5)
        np.testing.assert_allclose(hr_volume.numpy()[:, :, d, 0], hr_slice, atol=1e-6)


def test_prepare_on_real_acdc_counts_and_disjointness(acdc_dir, tmp_path):
    report = prepare(acdc_dir, tmp_path / "tfds", quiet=True)
    assert report.patients == {"train": 70, "validation": 15, "test": 15}
    assert not report.bad
    counts = report.counts["full"]
    assert sum(counts.values()) == 1972  # ED/ES slices of 99 patients + 12 frames x 7 slices of patient090
    lr, hr = next(iter(eval_pairs(slice_dataset(tmp_path / "tfds", "full", "test"))))
    assert hr.shape == (1, 256, 256, 1)


def test_stored_pngs_decode_to_the_quantised_slice_exactly():
    from heart_sr_tf.data.acdc_sr import png, quantise

    rng = np.random.default_rng(5)
    image = quantise(rng.random((37, 53)))  # a heart box's odd shape; the full 0..65535 range
    image[0, 0], image[-1, -1] = 0, 65535
    decoded = tf.io.decode_png(png(image), channels=1, dtype=tf.uint16).numpy()
    assert decoded.shape == (37, 53, 1) and np.array_equal(decoded[..., 0], image)
    with pytest.raises(ValueError, match="expected a 2D uint16 image"):
        png(rng.random((4, 4)))


def test_acdc_patients_without_labels_give_full_slices_and_clinical_says_why(phantom_root, tiny_export, tmp_path):
    """An ACDC folder whose patients have no *_gt.nii.gz (the challenge's test set as first released; the cropped
    whole cines): `prepare` ended in TFDS's "No examples were yielded" traceback, also where only one split had no
    labelled patient, and `evaluate --clinical` wrote tables of NaN. Now such a split has no heart slices, and
    the lines say why."""
    import shutil

    from in_process import run_cli

    from heart_sr_tf.data.pipeline import num_slices
    from heart_sr_tf.data.segmentation import split_of

    root = tmp_path / "acdc"
    shutil.copytree(phantom_root, root)
    for gt in split_of(root, "test")[0].folder.glob("*_gt.nii.gz"):  # the test patient's labels only
        gt.unlink()
    partly = tmp_path / "partly"
    done = run_cli("prepare", "--acdc-dir", root, "--data-dir", partly)
    assert done.returncode == 0, done.stderr[-2000:]
    assert num_slices(partly, "heart", "test") == 0 < num_slices(partly, "heart", "train")
    assert num_slices(partly, "full", "test") > 0
    out = tmp_path / "clinical"
    refused = run_cli("evaluate", tiny_export, "--data-dir", partly, "--clinical", "--out", out, "--quiet")
    assert refused.returncode == 2 and not out.exists(), refused.stderr
    assert refused.stderr.strip() == (
        f"error: {root}: no patient of the test split has labels (*_gt.nii.gz), which --clinical measures against; "
        "on scans without labels, `evaluate MODEL --scans PATH --clinical` measures against full resolution's own "
        "segmentation"
    )
    for gt in root.rglob("*_gt.nii.gz"):
        gt.unlink()
    unlabelled = tmp_path / "unlabelled"
    done = run_cli("prepare", "--acdc-dir", root, "--data-dir", unlabelled)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "heart slices: none (no patient has labels, *_gt.nii.gz, so no heart boxes" in done.stdout
    refused = run_cli("evaluate", tiny_export, "--data-dir", unlabelled, "--roi", "heart", "--out", out, "--quiet")
    assert refused.returncode == 2 and not out.exists(), refused.stderr
    assert (
        refused.stderr.strip()
        == f"error: {unlabelled}: no split holds heart slices (no labels: no heart boxes); --roi full"
    )
