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
