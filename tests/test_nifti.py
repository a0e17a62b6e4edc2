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


def test_nan_padding_is_refused_naming_how_many_where_and_what_to_do(tmp_path):
    """A resampling tool pads with NaN outside the field of view: refused (no voxel is changed silently), saying
    how many, the first one's index in the file and what to do."""
    path = tmp_path / "padded.nii.gz"
    data = np.ones((8, 8, 3, 2), dtype=np.float32)
    data[5:, 2:4, 1, :] = np.nan
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(path))
    with pytest.raises(DataError) as error:
        load_nifti(path, ndims=(4,))
    message = str(error.value)
    assert "12 NaN or infinite voxels" in message and "the first at (5, 2, 1, 0)" in message, message
    assert "replace them" in message and "\n" not in message


def test_nan_allowed_for_upscaling_still_needs_values_and_refuses_infinity():
    """``allow_nan`` (upscale keeps NaN as NaN) accepts NaN among values, but not a scan of NaN alone, of NaN and
    zeros only, or with an infinite voxel."""
    from heart_sr_tf.data.nifti import check_volume

    data = np.ones((6, 6, 2), dtype=np.float32)
    data[0] = np.nan
    check_volume("ok.nii", data, allow_nan=True)
    with pytest.raises(DataError, match="NaN or infinite"):
        check_volume("strict.nii", data)
    only_nan, nan_and_zeros, with_inf = np.full_like(data, np.nan), np.where(np.isnan(data), data, 0), data.copy()
    with_inf[3, 3, 1] = np.inf
    for bad, message in ((only_nan, "every voxel is NaN"), (nan_and_zeros, "all voxels are zero"), (with_inf, "1 inf")):
        with pytest.raises(DataError, match=message):
            check_volume("bad.nii", bad, allow_nan=True)


def test_a_cine_with_a_trailing_axis_of_one_voxel_is_the_cine(tiny_export, tmp_path):
    """(x, y, z, t, 1), as some tools write a cine: read as the 4D cine (nothing lies in the fifth axis) and
    upscaled to the very voxels of its 4D twin; a fifth axis that holds voxels stays refused."""
    from in_process import run_cli

    from heart_sr_tf.data.scan import read_scan

    values = np.random.default_rng(0).uniform(0, 300, (24, 21, 3, 4)).astype(np.float32)
    for name, data in (("four.nii.gz", values), ("five.nii.gz", values[..., None])):
        image = nib.Nifti1Image(data, np.diag([1.4, 1.4, 8.0, 1.0]))
        image.header.set_zooms((1.4, 1.4, 8.0, 0.03, 1.0)[: data.ndim])
        nib.save(image, str(tmp_path / name))
    scan = read_scan(tmp_path / "five.nii.gz")
    assert scan.data.shape == values.shape and np.array_equal(scan.data, values)
    assert scan.zooms[:4] == pytest.approx((1.4, 1.4, 8.0, 0.03))
    for name in ("four", "five"):
        done = run_cli("upscale", tmp_path / f"{name}.nii.gz", tmp_path / f"{name}_x3.nii.gz", "--model", tiny_export)
        assert done.returncode == 0, done.stderr[-2000:]
    four, five = (np.asarray(nib.load(str(tmp_path / f"{n}_x3.nii.gz")).dataobj) for n in ("four", "five"))
    assert five.shape == four.shape == (72, 63, 3, 4) and np.array_equal(four, five)
    nib.save(nib.Nifti1Image(np.stack([values, values], -1), np.eye(4)), str(tmp_path / "two.nii.gz"))
    with pytest.raises(DataError, match="got a 5D array"):
        read_scan(tmp_path / "two.nii.gz")


def test_voxel_sizes_are_millimetres_whatever_unit_the_header_states(tmp_path):
    """Some tools write NIfTI voxel sizes in metres or microns (``xyzt_units``), or frame times in ms: the scan's
    zooms, which volumes and the through-plane factor come from, are in mm (and s) all the same; a header that
    states no unit (ACDC's) is read as mm, as every NIfTI reader does."""
    from heart_sr_tf.data.scan import read_scan

    data = np.random.default_rng(0).random((12, 10, 4, 3)).astype(np.float32) + 1.0
    expected = (1.5, 1.25, 8.0, 0.04)
    for name, spatial, temporal, scale, time_scale in (
        ("mm", "mm", "sec", 1.0, 1.0),
        ("metres", "meter", "msec", 0.001, 1000.0),
        ("microns", "micron", "usec", 1000.0, 1e6),
        ("unstated", "unknown", "unknown", 1.0, 1.0),
    ):
        image = nib.Nifti1Image(data, np.diag([*(z * scale for z in expected[:3]), 1.0]))
        image.header.set_zooms((*(z * scale for z in expected[:3]), expected[3] * time_scale))
        image.header.set_xyzt_units(spatial, temporal)
        nib.save(image, str(tmp_path / f"{name}.nii.gz"))
        assert read_scan(tmp_path / f"{name}.nii.gz").zooms == pytest.approx(expected, rel=1e-5), name
        assert load_nifti(tmp_path / f"{name}.nii.gz", ndims=(4,))[1] == pytest.approx(expected, rel=1e-5), name


def test_voxels_of_exactly_one_millimetre_are_a_warning_for_measurements(tmp_path):
    """A converter that knows no voxel size writes 1 x 1 x 1 mm, which no short-axis cine has: --measure's
    volumes would count voxels, so it says so; real voxel sizes and DICOM series say nothing."""
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.volumes.measure import placeholder_voxels

    data = np.random.default_rng(0).random((12, 10, 4)).astype(np.float32) + 1.0
    nib.save(nib.Nifti1Image(data, np.eye(4)), str(tmp_path / "unit.nii.gz"))
    nib.save(nib.Nifti1Image(data, np.diag([1.4, 1.4, 8.0, 1.0])), str(tmp_path / "real.nii.gz"))
    line = placeholder_voxels(read_scan(tmp_path / "unit.nii.gz"))
    assert line.startswith(f"{tmp_path / 'unit.nii.gz'}: its header gives voxels of exactly 1 x 1 x 1 mm")
    assert placeholder_voxels(read_scan(tmp_path / "real.nii.gz")) is None


def test_nan_voxels_make_a_scan_unmeasurable_with_the_way_out(tmp_path):
    """--measure (upscale and cohort) reads NaN padding like upscale does, then says why it cannot segment it and
    that upscaling without --measure keeps the NaN; a scan without NaN is measurable."""
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.volumes.measure import unmeasurable

    data = np.random.default_rng(0).random((12, 12, 4, 2)).astype(np.float32)
    path = tmp_path / "ok.nii.gz"
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    assert unmeasurable(read_scan(path, allow_nan=True)) is None
    data[1, 2, 3, 1] = data[5, 5, 0, 0] = np.nan
    nib.save(nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0])), str(path))
    why = unmeasurable(read_scan(path, allow_nan=True))
    assert why.startswith("2 voxels are NaN (no value), the first at (1, 2, 3, 1)")
    assert why.endswith("or upscale without --measure, which keeps them NaN")
