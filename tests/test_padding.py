"""Padding voxels (scanner exports fill the outside of the field of view with one value far below the tissue)
must neither move the intensity window nor reach the tissue, and come out where they went in."""

import nibabel as nib
import numpy as np
import pytest

from heart_sr_tf.data.intensity import intensity_window, padding_mask
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.volumes.upscale import upscale_file


def test_padding_is_found_only_below_a_gap():
    rng = np.random.default_rng(0)
    tissue = rng.integers(0, 4000, (40, 40, 5)).astype(np.float32)
    assert not padding_mask(tissue).any()  # a plain image: no padding, the protocol's window as always
    assert intensity_window(tissue) == (float(tissue.min()), float(np.percentile(tissue, 99.5)))
    padded = tissue.copy()
    padded[:3] = -32768
    padded[-2:] = -2000  # two padding values, peeled one after the other
    mask = padding_mask(padded)
    assert mask.sum() == 5 * 40 * 5 and mask[:3].all() and mask[-2:].all()
    window = intensity_window(padded)
    image = tissue[3:-2]
    assert window == (float(image.min()), float(np.percentile(image, 99.5)))
    background = tissue.copy()
    background[:3] = 0  # zeros next to tissue starting at 0: ordinary background, not padding
    assert not padding_mask(background).any()


@pytest.mark.slow
def test_padding_passes_through_and_leaves_the_tissue_as_it_was(acdc_dir, tmp_path):
    source = nib.load(str(acdc_dir / "training" / "patient001" / "patient001_frame01.nii.gz"))
    crop = np.asarray(source.dataobj)[60:156, 60:156, :].astype(np.int16)
    padded = crop.copy()
    padded[:3] = -32768
    paths = {}
    for name, data in (("clean", crop), ("padded", padded)):
        image = nib.Nifti1Image(data, source.affine, source.header)
        image.set_data_dtype(np.int16)
        nib.save(image, str(tmp_path / f"{name}.nii.gz"))
        paths[name] = tmp_path / f"{name}.nii.gz"
    predictor = load_predictor("rrdb_kspace", "tensorflow", "float32")
    out = {}
    for name, path in paths.items():
        upscale_file(path, tmp_path / f"{name}-up.nii.gz", predictor, quiet=True)
        out[name] = np.asarray(nib.load(str(tmp_path / f"{name}-up.nii.gz")).dataobj).astype(np.float32)
    assert out["padded"].shape == (288, 288, crop.shape[2])
    assert (out["padded"][:8] == -32768).all()  # every output row whose nearest input row is padding
    tissue = out["padded"][8:]
    assert tissue.min() >= crop[3:].min() and tissue.max() <= crop[3:].max()  # no value that was never there
    far = slice(45, None)  # 15 input rows away from the padding
    difference = np.abs(out["padded"][far] - out["clean"][far])
    assert difference.mean() < 0.5 and np.percentile(difference, 99) <= 3, (difference.mean(), difference.max())


@pytest.mark.slow
def test_nan_padding_is_kept_nan_and_the_rest_is_upscaled_as_with_padding_values(acdc_dir, tmp_path):
    """A resampling tool's NaN outside the field of view: upscale keeps every value (NaN stays NaN wherever the
    nearest input voxel is NaN) and gives the other voxels exactly what the same scan padded with -32768 gets,
    in-plane and across the slices then in-plane; the terminal says so. --measure, which segments, refuses it."""
    from in_process import run_cli

    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.errors import DataError

    source = nib.load(str(acdc_dir / "training" / "patient001" / "patient001_frame01.nii.gz"))
    crop = np.asarray(source.dataobj)[72:132, 72:132, :].astype(np.float32)
    affine = np.diag([1.5, 1.5, 9.0, 1.0])  # (g = 6 across the slices)
    paths = {}
    for name, value in (("nan", np.nan), ("low", -32768.0)):
        data = crop.copy()
        data[:4] = value
        data[:, -3:, 2] = value  # and a corner of one slice
        paths[name] = tmp_path / f"{name}.nii.gz"
        nib.save(nib.Nifti1Image(data, affine), str(paths[name]))
    with pytest.raises(DataError, match="NaN or infinite voxels"):  # not accepted unless asked
        read_scan(paths["nan"])
    scan = read_scan(paths["nan"], allow_nan=True)
    assert scan.nan_note() is not None and f"{4 * 60 * 10 + 3 * 56:,} of its" in scan.nan_note()
    for args in ((), ("--through-plane", "--in-plane")):
        out = {}
        for name, path in paths.items():
            target = tmp_path / f"{name}{len(args)}-up.nii.gz"
            result = run_cli("upscale", path, target, "--backend", "tensorflow", "--precision", "float32", *args)
            assert result.returncode == 0, result.stderr
            assert ("voxels are NaN" in result.stderr) == (name == "nan"), result.stderr
            out[name] = np.asarray(nib.load(str(target)).dataobj, dtype=np.float32)
        padding = out["low"] == -32768
        assert padding.any() and not np.isnan(out["low"]).any()
        np.testing.assert_array_equal(np.isnan(out["nan"]), padding)  # NaN exactly where the padding went
        np.testing.assert_array_equal(out["nan"][~padding], out["low"][~padding])
    refused = run_cli("upscale", paths["nan"], tmp_path / "m.nii.gz", "--measure")
    assert refused.returncode == 2, refused.stderr
    line = f"--measure: {paths['nan']}: {4 * 60 * 10 + 3 * 56:,} voxels are NaN (no value), the first at (0, 0, 0)"
    assert line in refused.stderr and "upscale without --measure, which keeps them NaN" in refused.stderr
    assert "warning" not in refused.stderr and "Traceback" not in refused.stderr  # one line, before any note
    assert not (tmp_path / "m.nii.gz").exists()
