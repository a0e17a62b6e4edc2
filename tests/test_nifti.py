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


def _patched(tmp_path, name, patches=(), sform=(1.5, 1.5, 8.0), pixdim=None):
    """A small .nii with an sform of spacing ``sform`` and the header's ``pixdim``, then each ``(offset, fmt,
    *values)`` of ``patches`` packed into its bytes (a corrupt or odd field)."""
    import struct

    image = nib.Nifti1Image(np.arange(1, 16 * 16 * 4 + 1, dtype=np.float32).reshape(16, 16, 4), np.diag([*sform, 1]))
    if pixdim is not None:
        image.header.set_zooms(pixdim)
    path = tmp_path / f"{name}.nii"
    nib.save(image, str(path))
    raw = bytearray(path.read_bytes())
    for offset, fmt, *values in patches:
        struct.pack_into(fmt, raw, offset, *values)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(
    "name, offset, fmt, value, says",
    [
        ("datatype", 70, "<h", 999, "data code 999 not recognized"),
        ("negative_dim", 42, "<h", -5, "OverflowError"),
        ("offset_in_header", 108, "<f", 10.0, "vox offset 10 too low"),
    ],
)
def test_a_corrupt_header_is_one_line_naming_the_file(tmp_path, capfd, name, offset, fmt, value, says):
    """A header nibabel cannot read (an unknown datatype code, a negative dimension, data said to start inside the
    header) used to escape as nibabel's or mmap's traceback: now it is the reader's one line."""
    from heart_sr_tf.data.scan import read_scan

    path = _patched(tmp_path, name, [(offset, fmt, value)])
    for read in (load_nifti, read_scan):
        with pytest.raises(DataError) as info:
            read(path)
        message = str(info.value)
        assert message.startswith(f"{path}: truncated or unreadable NIfTI") and says in message
        assert "\n" not in message
    assert capfd.readouterr().err == ""


def test_what_nibabel_repairs_in_a_header_is_our_line_naming_the_file(tmp_path, capfd):
    """nibabel prints its header repairs to stderr itself ("sform_code 9 not valid; setting to 0"), naming no file,
    before any line of ours: the reader keeps them as the scan's warnings instead, and leaves nibabel's logger as
    it found it."""
    from nibabel.imageglobals import logger

    from heart_sr_tf.data.nifti import load_image
    from heart_sr_tf.data.scan import read_scan

    handlers, propagate = list(logger.handlers), logger.propagate
    path = _patched(tmp_path, "sform_code", [(254, "<h", 9)])
    _, notes = load_image(path)
    assert notes == [f"{path}: nibabel repaired its header on reading: sform_code 9 not valid; setting to 0"]
    assert read_scan(path).warnings() == notes
    load_nifti(path)
    assert capfd.readouterr().err == ""
    assert logger.handlers == handlers and logger.propagate == propagate


def test_a_header_without_voxel_sizes_takes_the_sforms(tmp_path, capfd):
    """pixdim 0 (nibabel reads it as 1 mm) or NaN beside a true sform: the sform's spacing is the voxel size, in
    the zooms (volumes, the through-plane factor) and in what an output would state, and a warning says so.
    Without an sform, pixdim 0 stays nibabel's 1 mm with a warning; NaN is an error."""
    from heart_sr_tf.data.scan import read_scan

    for name, value in (("zero", 0.0), ("nan", float("nan"))):
        path = _patched(tmp_path, name, [(80, "<3f", value, value, value)])
        scan = read_scan(path)
        assert scan.zooms == pytest.approx((1.5, 1.5, 8.0)), name
        assert scan.image.header.get_zooms() == pytest.approx((1.5, 1.5, 8.0)), name
        assert scan.warnings() == [
            f"{path}: its header's pixdim states no voxel size (0, which nibabel reads as 1, or not a number): the "
            "sform's spacing is used, 1.5 x 1.5 x 8 mm"
        ], name
        _patched(tmp_path, f"{name}_no_sform", [(80, "<3f", value, value, value), (254, "<h", 0)])
    scan = read_scan(tmp_path / "zero_no_sform.nii")
    assert scan.zooms == (1.0, 1.0, 1.0)
    assert scan.warnings() == [
        f"{tmp_path / 'zero_no_sform.nii'}: its header states no voxel size (pixdim 0), nor does an sform: taken as "
        "1 mm, as nibabel does; volumes and the slice spacing are then in voxels, not mm"
    ]
    with pytest.raises(DataError, match="pixdim is not a number, and no sform states a voxel size: the voxels' size"):
        read_scan(tmp_path / "nan_no_sform.nii")
    assert capfd.readouterr().err == ""


def test_a_usable_pixdim_is_the_voxel_size_beside_any_sform(tmp_path):
    """pixdim is the voxel size, as ITK reads it, whatever the sform's spacing: ACDC's files hold a unit sform (a
    placeholder) beside their true pixdim, and this tool's outputs of them that sform scaled by the grid; neither
    is a warning. So is a sform that disagrees outright (1.5 x 1.5 x 8 beside pixdim 1 x 2 x 8)."""
    from heart_sr_tf.data.scan import read_scan

    for name, sform, pixdim in (
        ("acdc_like", (-1.0, -1.0, 1.0), (1.5625, 1.5625, 10.0)),
        ("acdc_like_upscaled", (-1 / 3, -1 / 3, 1.0), (1.5625 / 3, 1.5625 / 3, 10.0)),
        ("disagree", (1.5, 1.5, 8.0), (1.0, 2.0, 8.0)),
    ):
        scan = read_scan(_patched(tmp_path, name, sform=sform, pixdim=pixdim))
        assert scan.zooms == pytest.approx(pixdim), name
        assert scan.warnings() == [], name


def test_header_repairs_are_kept_apart_when_threads_read_at_once(tmp_path):
    """ACDC and a lab's scans are read by a pool of threads: each file gets its own repairs, none another's, and
    nibabel's logger ends as it began."""
    from concurrent.futures import ThreadPoolExecutor

    from nibabel.imageglobals import logger

    from heart_sr_tf.data.nifti import load_image

    handlers = list(logger.handlers)
    repaired = _patched(tmp_path, "repaired", [(254, "<h", 9)])
    clean = _patched(tmp_path, "clean")
    paths = [repaired, clean] * 16
    with ThreadPoolExecutor(max_workers=8) as pool:
        notes = list(pool.map(lambda path: load_image(path)[1], paths))
    for path, lines in zip(paths, notes):
        assert lines == ([f"{path}: nibabel repaired its header on reading: sform_code 9 not valid; setting to 0"]
                         if path == repaired else [])  # fmt: skip
    assert logger.handlers == handlers


def test_a_file_named_against_its_compression_is_told_how_to_name_it(tmp_path):
    """nibabel goes by the name: a .nii.gz that is not gzip-compressed, or a gzip stream named .nii, is
    unreadable to it; the line says which name it needs."""
    import gzip

    plain = _patched(tmp_path, "scan")
    (tmp_path / "plain.nii.gz").write_bytes(plain.read_bytes())
    (tmp_path / "packed.nii").write_bytes(gzip.compress(plain.read_bytes()))
    for name, hint in (("plain.nii.gz", "it is not gzip-compressed: name it plain.nii"),
                       ("packed.nii", "it is gzip-compressed: name it packed.nii.gz")):  # fmt: skip
        with pytest.raises(DataError) as info:
            load_nifti(tmp_path / name)
        message = str(info.value)
        assert message.startswith(f"{tmp_path / name}: truncated or unreadable NIfTI") and message.endswith(hint)


def test_a_constant_scan_is_said_to_be_one_not_a_label_map(tmp_path):
    """A scan of one value everywhere used to be asked "holds only 1 distinct values: is it a label map?"; a cine
    whose first frame alone is blank is no label map either."""
    from heart_sr_tf.data.scan import read_scan

    nib.save(nib.Nifti1Image(np.full((8, 8, 2), 7, np.float32), np.diag([1.5, 1.5, 8, 1])), str(tmp_path / "c.nii"))
    assert read_scan(tmp_path / "c.nii").warnings() == [
        f"{tmp_path / 'c.nii'}: every voxel holds 7: no image to super-resolve; the result holds it too"
    ]
    cine = np.random.default_rng(0).random((8, 8, 2, 3)).astype(np.float32) * 100
    cine[..., 0] = 0
    nib.save(nib.Nifti1Image(cine, np.diag([1.5, 1.5, 8, 1])), str(tmp_path / "blank_first.nii"))
    assert read_scan(tmp_path / "blank_first.nii").warnings() == []
