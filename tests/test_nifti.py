"""The NIfTI reader refuses what it cannot read without changing a value: one line, no Python warning."""

import warnings

import nibabel as nib
import numpy as np
import pytest

from heart_sr_tf.data.nifti import load_nifti
from heart_sr_tf.errors import DataError


def test_complex_voxels_are_refused_before_the_imaginary_part_is_lost(tmp_path):
    path = tmp_path / "complex.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 2), 1 + 2j, np.complex64), np.eye(4)), str(path))
    with pytest.raises(DataError, match="complex-valued voxels \\(complex64\\); upscale a magnitude image"):
        load_nifti(path)


def test_values_beyond_float32_are_one_error_and_no_warning(tmp_path):
    path = tmp_path / "huge.nii.gz"
    data = np.ones((8, 8, 2))
    data[0, 0, 0] = 1e300
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(DataError, match="1 NaN or infinite voxels \\(or values beyond float32's range\\)"):
            load_nifti(path)
