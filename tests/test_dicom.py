"""DICOM cine series in: assembly, geometry against dicom2nifti, and every bad series refused in one line."""

import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from dicom_series import Cine, write_cine, write_enhanced, write_localiser

from heart_sr_tf.data.dicom import read_series
from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.errors import DataError
from heart_sr_tf.volumes.grid import OutputGrid


def _values(shape=(20, 16, 4, 3), seed=0) -> np.ndarray:
    """Real-unit values a 12-bit series with slope 2 and intercept -10 holds exactly."""
    stored = np.random.default_rng(seed).integers(0, 4096, shape)
    return (stored * 2.0 - 10.0).astype(np.float32)


def _lps_to_ras(points: np.ndarray) -> np.ndarray:
    return points * np.array([-1.0, -1.0, 1.0])


def test_a_shuffled_oblique_cine_is_assembled_in_slice_and_phase_order(tmp_path):
    cine = Cine(_values())
    write_cine(tmp_path / "cine", cine)
    series = read_series(tmp_path / "cine")
    np.testing.assert_array_equal(series.data, cine.values)  # rescaled, columns first, slices and phases ordered
    row, col = cine.orientation
    # voxel (i, j, k) sits at origin + i * dx * row + j * dy * col + k * gap * normal (LPS), here in RAS
    for i, j, k in [(0, 0, 0), (19, 0, 0), (0, 15, 0), (7, 11, 3)]:
        lps = cine.position(k) + i * cine.spacing[1] * row + j * cine.spacing[0] * col
        np.testing.assert_allclose(series.affine @ [i, j, k, 1], [*_lps_to_ras(lps), 1], atol=1e-3)
    assert series.zooms == pytest.approx((1.3, 1.4, 8.0, 0.0325))


def test_slices_are_ordered_by_position_on_the_normal_not_by_file_or_instance(tmp_path):
    cine = Cine(_values((12, 10, 5, 2)))

    def reverse_numbers(z, t, ds):  # instance numbers run against the slice order
        ds.InstanceNumber = 100 - ds.InstanceNumber

    write_cine(tmp_path / "cine", cine, edit=reverse_numbers)
    np.testing.assert_array_equal(read_series(tmp_path / "cine").data, cine.values)


def test_phases_fall_back_to_instance_number_without_trigger_time(tmp_path):
    cine = Cine(_values((12, 10, 2, 4)))

    def drop_trigger(z, t, ds):
        del ds.TriggerTime

    write_cine(tmp_path / "cine", cine, edit=drop_trigger)
    np.testing.assert_array_equal(read_series(tmp_path / "cine").data, cine.values)

    def zero_trigger(z, t, ds):  # an ungated real-time cine: no trigger, TriggerTime 0 on every image
        ds.TriggerTime = "0"

    write_cine(tmp_path / "real_time", cine, edit=zero_trigger)
    read = read_series(tmp_path / "real_time")
    np.testing.assert_array_equal(read.data, cine.values)
    assert read.zooms[3] == 1.0  # no interval known (not 0)
    copy = tmp_path / "real_time" / "copy"  # a file copied twice is still a duplicate
    first = next(p for p in (tmp_path / "real_time").iterdir() if p.is_file())
    copy.write_bytes(first.read_bytes())
    with pytest.raises(DataError, match="a duplicate image"):
        read_series(tmp_path / "real_time")

    def drop_one_trigger(z, t, ds):  # one image without its TriggerTime: it was sorted after its slice's others,
        if (z, t) == (1, 1):  # so phases 1 to 3 of that slice came out 2, 3, 1, silently
            del ds.TriggerTime

    write_cine(tmp_path / "one_untimed", cine, edit=drop_one_trigger)
    np.testing.assert_array_equal(read_series(tmp_path / "one_untimed").data, cine.values)

    def unordered(z, t, ds):  # neither orders the phases: said so, not taken for duplicates of one number
        del ds.TriggerTime, ds.InstanceNumber

    write_cine(tmp_path / "unordered", cine, edit=unordered)
    with pytest.raises(DataError, match="nothing orders the phases at its slice position: no InstanceNumber"):
        read_series(tmp_path / "unordered")


def test_geometry_and_values_equal_dicom2nifti(tmp_path):
    dicom2nifti = pytest.importorskip("dicom2nifti")
    cine = Cine(_values((24, 18, 6, 1)))
    write_cine(tmp_path / "cine", cine)
    reference = dicom2nifti.dicom_series_to_nifti(str(tmp_path / "cine"), str(tmp_path / "ref.nii"), False)["NII"]
    scan = read_scan(tmp_path / "cine")
    np.testing.assert_allclose(scan.image.affine, reference.affine, atol=1e-4)
    np.testing.assert_allclose(scan.data, np.asarray(reference.dataobj, np.float32), atol=1e-3)


def test_nifti_image_of_a_series_carries_its_geometry_and_integer_type(tmp_path):
    cine = Cine(_values())
    write_cine(tmp_path / "cine", cine)
    scan = read_scan(tmp_path / "cine")
    nib.save(scan.image, tmp_path / "x.nii.gz")
    back = nib.load(tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(np.asarray(back.dataobj), cine.values)
    assert back.get_data_dtype() == np.int16 and back.header.get_zooms()[:3] == pytest.approx((1.3, 1.4, 8.0))
    assert back.get_qform(coded=True)[1] == 1 and back.get_sform(coded=True)[1] == 1


def test_several_series_are_listed_and_one_is_picked(tmp_path):
    cine = Cine(_values((12, 10, 3, 2)))
    write_cine(tmp_path / "study", cine)
    write_localiser(tmp_path / "study", cine.study_uid)
    with pytest.raises(DataError, match="2 image series here; pick one with --series N") as error:
        read_series(tmp_path / "study")
    assert "series 1 'localizer' (3 images)" in str(error.value)
    assert "series 7 'cine_retro_sax' (6 images)" in str(error.value)
    np.testing.assert_array_equal(read_series(tmp_path / "study", series=7).data, cine.values)
    with pytest.raises(DataError, match="--series 3: no series 3 here"):
        read_series(tmp_path / "study", series=3)


def test_a_single_slice_series_takes_its_depth_from_its_slab(tmp_path):
    """One slice has no neighbour to measure the spacing from: SpacingBetweenSlices gives its depth (a legacy
    negative one gives the direction, not the depth), else SliceThickness, else 1 mm, which is then said (not
    silently taken for the scanner's); never a negative zoom."""

    def spacing(value):
        return lambda z, t, ds: setattr(ds, "SpacingBetweenSlices", value)

    def neither(z, t, ds):
        del ds.SliceThickness

    cases = (("neg", spacing(-5), 5.0), ("zero", spacing(0), 8.0), ("pos", spacing(6), 6.0), ("none", neither, 1.0))
    for name, edit, depth in cases:
        write_cine(tmp_path / name, Cine(_values((12, 10, 1, 2))), edit=edit)
        series = read_series(tmp_path / name)
        assert series.zooms[2] == pytest.approx(depth), name
        assert np.linalg.norm(series.affine[:3, 2]) == pytest.approx(depth), name
        scan = read_scan(tmp_path / name)
        assert scan.image.header.get_zooms()[2] == pytest.approx(depth), name  # the NIfTI view refused a negative
        assert scan.warnings() == ([] if name != "none" else [scan.depth_warning()]), name
    assert "state neither SpacingBetweenSlices nor SliceThickness: its depth is taken as 1 mm" in scan.warnings()[0]


def _bad(tmp_path, edit, shape=(12, 10, 4, 2), **cine):
    write_cine(tmp_path / "bad", Cine(_values(shape), **cine), edit=edit)
    with pytest.raises(DataError) as error:
        read_scan(tmp_path / "bad")
    message = str(error.value)
    assert "\n" not in message and str(tmp_path / "bad") in message
    return message


def test_missing_geometry_is_refused(tmp_path):
    def no_spacing(z, t, ds):
        if z == 1:
            del ds.PixelSpacing

    assert "no usable PixelSpacing" in _bad(tmp_path / "a", no_spacing)

    def no_orientation(z, t, ds):
        del ds.ImageOrientationPatient

    assert "no usable ImageOrientationPatient" in _bad(tmp_path / "b", no_orientation)

    def flat(z, t, ds):
        ds.ImageOrientationPatient = [1, 0, 0, 1, 0, 0]

    assert "ImageOrientationPatient [1, 0, 0, 1, 0, 0] is not two orthogonal unit vectors" in _bad(tmp_path / "c", flat)

    def zero(z, t, ds):
        ds.PixelSpacing = [0, 1.5]

    assert "PixelSpacing [0, 1.5] is not positive" in _bad(tmp_path / "d", zero)  # as the header holds them


def test_images_shifted_in_their_plane_are_refused_not_misplaced(tmp_path):
    """One affine holds a stack only if every image lies where the first slice and the slice step put it: a slice
    shifted in its plane (a breath-hold planned apart), or a phase at another place, would be written a millimetre
    off without a word. A shift of a few hundredths of a millimetre (rounding in the header) is no shift."""
    row, _ = Cine(None).orientation

    def shifted(by: float, slice_: int, phase: int | None = None):
        def edit(z, t, ds):
            if z == slice_ and (phase is None or t == phase):
                ds.ImagePositionPatient = [f"{float(v) + by * r:.4f}" for v, r in zip(ds.ImagePositionPatient, row)]

        return edit

    assert "lies 1.00 mm from where the stack's slices put it (slice 3" in _bad(tmp_path / "a", shifted(1.0, 2))
    assert "lies 0.60 mm from where" in _bad(tmp_path / "b", shifted(0.6, 1, phase=1))
    cine = Cine(_values((12, 10, 4, 2)))
    write_cine(tmp_path / "c", cine, edit=shifted(0.03, 2))
    np.testing.assert_array_equal(read_series(tmp_path / "c").data, cine.values)


def test_mixed_sizes_a_gap_a_duplicate_and_a_missing_phase_are_refused(tmp_path):
    def mixed(z, t, ds):
        if z == 2 and t == 1:
            ds.set_pixel_data(np.zeros((8, 8), np.uint16), "MONOCHROME2", 12)

    assert "mixed image sizes" in _bad(tmp_path / "a", mixed)

    def gap(z, t, ds):  # slice 3 sits two gaps on: slice 2's neighbour is missing
        if z == 3:
            ds.ImagePositionPatient = [float(v) + 8.0 * n for v, n in zip(ds.ImagePositionPatient, Cine(None).normal)]

    assert "uneven slice spacing" in _bad(tmp_path / "b", gap)

    def duplicate(z, t, ds):  # phase 1 of slice 2 claims phase 0's trigger time
        if z == 2 and t == 1:
            ds.TriggerTime = "0.00"

    assert "duplicate image" in _bad(tmp_path / "c", duplicate)

    def missing(z, t, ds):
        if z == 1 and t == 1:
            ds.ImagePositionPatient = [float(v) + 500 for v in ds.ImagePositionPatient]

    assert "different numbers of phases" in _bad(tmp_path / "d", missing, shape=(12, 10, 3, 2))


def test_values_that_are_no_grey_level_as_stored_are_refused(tmp_path):
    """A palette's indices, or stored values a Modality LUT maps to real ones, were read as grey levels: the model
    got numbers that are not the image. Each is one line naming the file."""

    def palette(z, t, ds):
        if (z, t) == (2, 1):
            ds.PhotometricInterpretation = "PALETTE COLOR"

    assert "PhotometricInterpretation PALETTE COLOR: not a grey-scale image" in _bad(tmp_path / "p", palette)

    def lookup(z, t, ds):
        from pydicom.dataset import Dataset

        table = Dataset()
        table.LUTDescriptor, table.ModalityLUTType = [4096, 0, 16], "US"
        table.add_new(0x00283006, "OW", np.arange(4096, dtype=np.uint16).tobytes())  # LUTData
        ds.ModalityLUTSequence = [table]

    assert "a Modality LUT maps its stored values to real ones" in _bad(tmp_path / "m", lookup)


def test_a_damaged_or_empty_image_file_is_refused_by_name_not_left_out(tmp_path):
    """A file cut short in a copy (pydicom reads its header up to where it ends, without Rows and Columns) or left
    empty was skipped as "not DICOM", so the series was read without that image: an "incomplete series" at best,
    a missing end slice at worst. Now it is named; a text file beside the series still is no DICOM to mind."""
    files = write_cine(tmp_path / "cut", Cine(_values((12, 10, 3, 2))))
    (tmp_path / "cut" / "notes.txt").write_text("acquired on the 3T")
    assert read_series(tmp_path / "cut").data.shape == (12, 10, 3, 2)
    whole = files[-1].read_bytes()
    for length, says in (
        (400, "its file meta says MR Image Storage, but it holds no Rows and Columns (cut short?)"),
        (0, "an empty file where DICOM images lie (a copy that never finished?)"),
    ):
        files[-1].write_bytes(whole[:length])
        with pytest.raises(DataError) as error:
            read_scan(tmp_path / "cut")
        assert str(error.value) == (
            f"{files[-1]}: a damaged DICOM file: {says}; replace it from the scanner's export, or remove it if it is "
            "no image of the series"
        )


def test_a_rescale_slope_of_zero_is_refused_not_read_as_one(tmp_path):
    """RescaleSlope 0 makes every pixel the intercept; it used to be read as 1, values nobody stated. An empty
    slope is still 1."""

    def zero(z, t, ds):
        if z == 1:
            ds.RescaleSlope = "0"

    assert "its RescaleSlope is '0': the pixels' values cannot be known from it" in _bad(tmp_path / "zero", zero)
    values = _values((12, 10, 2, 2))

    def empty(z, t, ds):
        ds.RescaleSlope, ds.RescaleIntercept = None, None

    write_cine(tmp_path / "empty", Cine(values), edit=empty)
    stored = (values + 10.0) / 2.0
    assert np.array_equal(read_series(tmp_path / "empty").data, stored)


def test_bits_above_bits_stored_are_left_out_and_said(tmp_path):
    """Bits set above BitsStored are not part of the value (the standard), and pydicom masks them off; where a
    header understates the data, that wraps the brightest values round to dark ones. The values stay as the
    standard reads them, and a line now counts the pixels and names the first file: before, nothing said so. A
    signed series' sign extension is no such bit."""
    values = np.random.default_rng(1).integers(0, 4096, (20, 16, 3, 2)).astype(np.float32)
    cine = Cine(values, slope=1.0, intercept=0.0)

    def overlay(z, t, ds):  # three pixels of one image with bit 12 (a 13-bit value under BitsStored 12)
        if (z, t) == (1, 1):
            words = np.frombuffer(ds.PixelData, np.uint16).copy()
            words[[0, 5, 7]] |= 1 << 12
            ds.PixelData = words.tobytes()

    write_cine(tmp_path / "over", cine, edit=overlay)
    scan = read_scan(tmp_path / "over")
    np.testing.assert_array_equal(scan.data, values)  # as the standard reads them: the bit left out
    (line,) = [w for w in scan.warnings() if "BitsStored" in w]
    first = next(f for f in (tmp_path / "over").iterdir() if pydicom.dcmread(f).InstanceNumber == 4)  # z 1, t 1
    assert line.startswith(f"{tmp_path / 'over'}: 3 pixels (the first in {first.name}) have bits set above ")
    assert "BitsStored (12)" in line
    assert not any("BitsStored" in w for w in read_scan(_written(tmp_path / "plain", cine)).warnings())

    def signed(z, t, ds):  # values -2048..2047 stored as 16-bit two's complement: every negative one sign-extended
        ds.PixelRepresentation = 1
        ds.PixelData = (np.frombuffer(ds.PixelData, np.uint16).astype(np.int16) - 2048).tobytes()

    write_cine(tmp_path / "signed", cine, edit=signed)
    scan = read_scan(tmp_path / "signed")
    np.testing.assert_array_equal(scan.data, values - 2048)
    assert (scan.data < 0).any() and not any("BitsStored" in w for w in scan.warnings())


def _written(folder: Path, cine: Cine) -> Path:
    write_cine(folder, cine)
    return folder


@pytest.mark.parametrize("syntax", ["JPEGLSLossless", "JPEGLSNearLossless"])
def test_a_jpeg_ls_series_reads_as_it_was_written(tmp_path, syntax):
    """JPEG-LS, which some PACS archives store in, reads through pylibjpeg-libjpeg (a dependency): lossless value for
    value, near-lossless within the error bound it was written with."""
    pytest.importorskip("jpeg_ls", reason="pyjpegls (a dev extra) writes the JPEG-LS series")
    import pydicom.uid

    cine = Cine(_values((24, 20, 3, 2)))
    files = write_cine(tmp_path / "plain", cine)
    packed = tmp_path / "packed"
    packed.mkdir()
    for file in files:
        ds = pydicom.dcmread(file)
        ds.compress(getattr(pydicom.uid, syntax), jls_error=2 if "Near" in syntax else 0)
        ds.save_as(packed / file.name, enforce_file_format=True)
    data = read_series(packed).data
    if "Near" in syntax:  # each stored value within 2 of what was written; slope 2 in real units
        assert 0 < np.abs(data - cine.values).max() <= 4.0
    else:
        np.testing.assert_array_equal(data, cine.values)


def test_compressed_pixels_that_cannot_be_decoded_are_refused(tmp_path):
    """Damaged compressed data, a syntax whose decoder is not installed, and one no decoder reads: each its own
    line (a damaged stream was once called a missing decoder: its error said "SOI marker missing")."""
    from pydicom.encaps import encapsulate
    from pydicom.uid import MPEG2MPML, JPEG2000Lossless, JPEGLSLossless

    def compressed(uid):
        def edit(z, t, ds):
            ds.file_meta.TransferSyntaxUID = uid
            ds.PixelData = encapsulate([b"\xff\x4f\xff\x51 not a real codestream"])
            ds["PixelData"].VR = "OB"

        return edit

    damaged = _bad(tmp_path / "a", compressed(JPEG2000Lossless))  # its decoder (pylibjpeg-openjpeg) is installed
    assert "compressed pixel data (JPEG 2000 Image Compression (Lossless Only)) that cannot be decoded" in damaged
    video = _bad(tmp_path / "b", compressed(MPEG2MPML))
    assert "pixel data in MPEG2 Main Profile / Main Level, which no DICOM decoder here reads" in video
    # A syntax whose decoder is not installed: every syntax pydicom knows decodes in our install, so JPEG-LS in a
    # new process where pyjpegls and python-gdcm cannot import and pylibjpeg's plugin is taken out (pydicom's own
    # remove_plugin), as in an install without pylibjpeg-libjpeg.
    write_cine(tmp_path / "c" / "bad", Cine(_values((12, 10, 4, 2))), edit=compressed(JPEGLSLossless))
    code = (
        "import sys; sys.modules.update(jpeg_ls=None, gdcm=None)\n"
        "from pydicom.pixels import get_decoder\n"
        "from pydicom.uid import JPEGLSLossless\n"
        "get_decoder(JPEGLSLossless).remove_plugin('pylibjpeg')\n"
        "from heart_sr_tf.data.scan import read_scan\n"
        "from heart_sr_tf.errors import DataError\n"
        "try:\n    read_scan(sys.argv[1])\nexcept DataError as error:\n    print(error)\n"
    )
    run = subprocess.run([sys.executable, "-c", code, str(tmp_path / "c" / "bad")], capture_output=True, text=True)
    assert run.returncode == 0, run.stderr
    missing = run.stdout.strip()
    assert "\n" not in missing and str(tmp_path / "c" / "bad") in missing
    assert "(JPEG-LS Lossless Image Compression) and no decoder installed for it (pydicom's plugins: " in missing
    assert "pyjpegls" in missing


def test_non_image_objects_and_non_dicom_files_are_refused(tmp_path):
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

    folder = tmp_path / "reports"
    folder.mkdir()
    (folder / "notes.txt").write_text("not DICOM")
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = BasicTextSRStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.save_as(folder / "report.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match="holds no DICOM image \\(only: a Basic Text SR Storage\\)"):
        read_scan(folder)
    with pytest.raises(DataError, match="is not a DICOM image"):
        read_scan(folder / "report.dcm")
    with pytest.raises(DataError, match="notes.nii.gz: file not found"):
        read_scan(Path(folder / "notes.nii.gz"), series=2)
    nib.save(nib.Nifti1Image(np.ones((4, 4, 2), np.float32), np.eye(4)), str(folder / "scan.nii.gz"))
    with pytest.raises(DataError, match="series 2 was asked for, but a NIfTI file holds one scan"):
        read_scan(Path(folder / "scan.nii.gz"), series=2)
    maps = tmp_path / "maps"  # a parametric map (T1 values, floating point) has rows and columns, but is no image
    maps.mkdir()
    ds.SOPClassUID = ds.file_meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.30"
    ds.Rows, ds.Columns = 4, 4
    ds.save_as(maps / "t1map.dcm", enforce_file_format=True)
    with pytest.raises(DataError, match="holds no DICOM image \\(only: a Parametric Map Storage\\)"):
        read_scan(maps)
    (folder / "report.dcm").unlink()  # a folder of NIfTI scans given where one scan belongs: said so
    with pytest.raises(DataError, match=r"holds no DICOM image but 1 NIfTI file\(s\) \(scan.nii.gz\): a NIfTI scan is"):
        read_scan(folder)


@pytest.mark.parametrize("shared", [True, False])
def test_an_enhanced_multi_frame_file_reads_as_the_same_classic_series(tmp_path, shared):
    """One enhanced MR file (frames shuffled; geometry and rescale shared by all frames or given per frame) gives
    the array, affine and spacings of the same cine written as classic single-frame images."""
    cine = Cine(_values())
    write_cine(tmp_path / "classic", cine)
    enhanced = write_enhanced(tmp_path / "enhanced" / "cine.dcm", cine, shared_geometry=shared)
    classic, multi = read_series(tmp_path / "classic"), read_series(enhanced)
    np.testing.assert_array_equal(multi.data, classic.data)
    np.testing.assert_allclose(multi.affine, classic.affine, atol=1e-6)
    np.testing.assert_allclose(multi.zooms, classic.zooms, atol=1e-6)
    header = multi.headers[0][0]
    assert str(header.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.4"  # written back as classic MR images
    assert "PerFrameFunctionalGroupsSequence" not in header and "NumberOfFrames" not in header


def test_an_enhanced_cine_without_trigger_delays_keeps_its_phases_in_time_order(tmp_path):
    """An ungated (real-time) enhanced cine: no trigger delay in any frame, the frames stored out of time order.
    Its phases came out in the order of the frames in the file, scrambled without a word; the frames'
    TemporalPositionIndex (Frame Content) orders them."""
    cine = Cine(_values((12, 10, 3, 4)))
    enhanced = write_enhanced(tmp_path / "cine.dcm", cine)
    ds = pydicom.dcmread(enhanced)
    for groups in ds.PerFrameFunctionalGroupsSequence:
        del groups.CardiacSynchronizationSequence
    ds.save_as(enhanced, enforce_file_format=True)
    np.testing.assert_array_equal(read_series(enhanced).data, cine.values)


def test_a_damaged_enhanced_file_is_refused_by_name(tmp_path):
    enhanced = write_enhanced(tmp_path / "cine.dcm", Cine(_values()))
    ds = pydicom.dcmread(enhanced)
    ds.PerFrameFunctionalGroupsSequence = list(ds.PerFrameFunctionalGroupsSequence)[:-1]
    ds.save_as(enhanced, enforce_file_format=True)
    with pytest.raises(DataError, match="cine.dcm: .* frames but .* per-frame functional groups"):
        read_series(enhanced)


def test_an_enhanced_input_is_written_back_as_a_classic_derived_series(tmp_path):
    from heart_sr_tf.volumes.dicom_writer import write_dicom_series

    cine = Cine(_values())
    series = read_series(write_enhanced(tmp_path / "in" / "cine.dcm", cine))
    upscaled = np.repeat(np.repeat(series.data, 2, axis=0), 2, axis=1)
    (tmp_path / "tmp").mkdir()
    out = write_dicom_series(series, upscaled, OutputGrid((2, 2, 1)), tmp_path / "tmp", tmp_path / "out", "x2 test")
    back = read_series(out)
    np.testing.assert_array_equal(back.data, upscaled)
    files = [p for p in out.iterdir() if not p.name.startswith(".")]
    assert len(files) == 4 * 3
    first = pydicom.dcmread(files[0])
    assert str(first.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.4" and "NumberOfFrames" not in first
    np.testing.assert_allclose(back.affine[:3, :2], series.affine[:3, :2] / 2, atol=1e-6)
    source = pydicom.dcmread(tmp_path / "in" / "cine.dcm", stop_before_pixels=True)
    (item,) = back.headers[2][1].SourceImageSequence  # the enhanced file, its class and the frame's number
    assert item.ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert str(item.ReferencedSOPClassUID) == str(source.SOPClassUID) == "1.2.840.10008.5.1.4.1.1.4.1"
    assert item.ReferencedFrameNumber == series.headers[2][1].heart_sr_frame + 1


def _ge_image_type(kind: int):
    def edit(z, t, ds):
        ds.Manufacturer = "GE MEDICAL SYSTEMS"
        ds.ImageType = ["ORIGINAL", "PRIMARY", "OTHER"]
        ds.private_block(0x0043, "GEMS_PARM_01", create=True).add_new(0x2F, "SS", kind)

    return edit


def test_phase_real_and_imaginary_images_are_no_cine_to_upscale(tmp_path):
    """A flow study's phase (velocity) images, or the real or imaginary part of the signal, are refused as no cine
    (:class:`NoCine`, which a cohort leaves out), as each vendor marks them: ImageType's P / R / I (Siemens,
    Philips), ComplexImageComponent (an enhanced file's frames), GE's private image type; a series mixing
    magnitude and phase images (Philips writes both into one) too. Magnitude images, however marked, are read."""
    from heart_sr_tf.cohort.task import LEFT_OUT, upscale_task
    from heart_sr_tf.errors import NoCine

    values = np.random.default_rng(0).integers(0, 400, (12, 10, 3, 2)).astype(np.float32) * 2.0 - 10.0
    cine = Cine(values)

    def image_type(kind, only=None):
        def edit(z, t, ds):
            if only is None or (z, t) == only:
                ds.ImageType = ["ORIGINAL", "PRIMARY", kind, "ND"]

        return edit

    cases = {
        "siemens_p": (write_cine, {"edit": image_type("P")}, "a phase image (ImageType ORIGINAL\\PRIMARY\\P\\ND)"),
        "real": (write_cine, {"edit": image_type("R")}, "a real image (ImageType ORIGINAL\\PRIMARY\\R\\ND)"),
        "imaginary": (write_cine, {"edit": image_type("IMAGINARY")}, "an imaginary image"),
        "mixed": (write_cine, {"edit": image_type("P", only=(1, 1))}, "(1 of its 6 images): the rest are magnitude"),
        "ge": (write_cine, {"edit": _ge_image_type(1)}, "a phase image (GE's private image type 1)"),
        "enhanced": (write_enhanced, {"component": lambda z, t: "PHASE"}, "(ComplexImageComponent PHASE)"),
    }
    for name, (write, options, expected) in cases.items():
        where = tmp_path / name if write is write_cine else tmp_path / name / "cine.dcm"
        write(where, cine, **options)
        with pytest.raises(NoCine) as error:
            read_series(tmp_path / name)
        assert expected in str(error.value), name
        advice = "give the cine series" if name == "mixed" else "give the magnitude series"
        assert advice in str(error.value), name  # (mixed: its magnitude images are a flow study's, no cine)
        result = upscale_task(
            tmp_path / name, str(tmp_path / f"{name}.nii.gz"), {"backend": "openvino", "through_plane": False}
        )
        assert result["status"] == LEFT_OUT and expected in result["error"], name
        assert not (tmp_path / f"{name}.nii.gz").exists()
    for name, write, options in (
        ("ge_magnitude", write_cine, {"edit": _ge_image_type(0)}),
        ("enhanced_magnitude", write_enhanced, {"component": lambda z, t: "MAGNITUDE"}),
        ("magnitude", write_cine, {"edit": image_type("M")}),
    ):
        write(tmp_path / name if write is write_cine else tmp_path / name / "cine.dcm", cine, **options)
        np.testing.assert_allclose(read_series(tmp_path / name).data, values)


def test_quantitative_maps_stored_as_mr_images_are_no_cine_to_upscale(tmp_path):
    """A T1, T2* or ECV map stored as an ordinary MR image (not a Parametric Map object) is refused as no cine,
    named as its vendor's ImageType names it, and a cohort leaves it out; a series holding one such image among
    cine images too. A cine whose ImageType names no map is read."""
    from heart_sr_tf.cohort.task import LEFT_OUT, upscale_task
    from heart_sr_tf.errors import NoCine

    values = np.random.default_rng(1).integers(0, 400, (12, 10, 3, 1)).astype(np.float32) * 2.0 - 10.0
    cine = Cine(values)

    def image_type(*kinds, only=None):
        def edit(z, t, ds):
            if only is None or (z, t) == only:
                ds.ImageType = ["DERIVED", "PRIMARY", *kinds]

        return edit

    cases = {
        "siemens_t1": (image_type("T1 MAP", "MOCO"), "a T1 map (ImageType DERIVED\\PRIMARY\\T1 MAP\\MOCO): its"),
        "t2star": (image_type("T2_STAR_MAP"), "a T2* map"),
        "ecv": (image_type("ECV"), "an ECV map"),
        "one_image": (image_type("T2MAP", only=(2, 0)), "a T2 map (ImageType DERIVED\\PRIMARY\\T2MAP) (1 of its 3"),
    }
    for name, (edit, expected) in cases.items():
        write_cine(tmp_path / name, cine, edit=edit)
        with pytest.raises(NoCine) as error:
            read_series(tmp_path / name)
        assert expected in str(error.value) and "give the cine series" in str(error.value), name
        result = upscale_task(
            tmp_path / name, str(tmp_path / f"{name}.nii.gz"), {"backend": "openvino", "through_plane": False}
        )
        assert result["status"] == LEFT_OUT and expected in result["error"], name
        assert not (tmp_path / f"{name}.nii.gz").exists()
    for kinds in (("M", "ND", "RETRO"), ("OTHER", "BITMAP"), ("T1",)):  # a T1-weighted image is signal
        write_cine(tmp_path / kinds[0], cine, edit=image_type(*kinds))
        np.testing.assert_allclose(read_series(tmp_path / kinds[0]).data, values)


def test_a_dicomdir_given_as_the_input_reads_the_media_it_indexes(tmp_path):
    """A CD or an export written as DICOM media (a DICOMDIR beside PT*/ST*/SE* folders of files without
    extension, here written by pydicom's FileSet): the DICOMDIR itself, as a user picks it, reads as its folder."""
    from pydicom.fileset import FileSet

    values = np.random.default_rng(2).integers(0, 400, (12, 10, 3, 2)).astype(np.float32) * 2.0 - 10.0
    write_cine(tmp_path / "plain", Cine(values))
    media = FileSet()
    for file in sorted((tmp_path / "plain").iterdir()):
        ds = pydicom.dcmread(file)
        ds.PatientID, ds.PatientName, ds.StudyDate, ds.StudyTime, ds.StudyID = "P1", "X", "20260105", "1200", "1"
        media.add(ds)
    media.write(tmp_path / "cd")
    assert not list((tmp_path / "cd").glob("*.dcm")) and (tmp_path / "cd" / "DICOMDIR").is_file()
    series = read_series(tmp_path / "cd" / "DICOMDIR")
    np.testing.assert_allclose(series.data, values)
    np.testing.assert_allclose(series.affine, read_series(tmp_path / "plain").affine)
    with pytest.raises(DataError, match="no such file or folder"):
        read_series(tmp_path / "cd" / "DICOMDIR2")


def test_the_seg_and_the_report_accept_the_header_defects_exports_leave(tmp_path):
    """A PatientSex of U or f, a birth date 19700000, a study date 2026-01-05, a study time 12:30 and no
    SliceThickness (as anonymisers and exports leave them) are valid enough for the images but refused by
    highdicom: the SEG and the report are written with those values made valid or left empty (the images keep
    theirs); a defect nothing can mend (no frame of reference) is one line naming the output, and nothing of it
    is left behind."""
    import highdicom as hd

    from heart_sr_tf.errors import DataError
    from heart_sr_tf.volumes.dicom_seg import write_dicom_seg
    from heart_sr_tf.volumes.dicom_sr import write_dicom_sr

    values = np.random.default_rng(3).integers(0, 400, (12, 10, 3, 2)).astype(np.float32) * 2.0 - 10.0

    def defects(z, t, ds):
        ds.PatientSex, ds.PatientBirthDate, ds.StudyDate, ds.StudyTime = "U", "19700000", "2026-01-05", "12:30"
        if "SliceThickness" in ds:
            del ds.SliceThickness

    write_cine(tmp_path / "study", Cine(values), edit=defects)
    series = read_series(tmp_path / "study")
    assert series.headers[0][0].PatientSex == "U"
    labels = np.zeros(values.shape, np.uint8)
    labels[3:8, 2:7] = 3
    segs = write_dicom_seg(series, labels, tmp_path / "seg", "heart-sr-tf test", "1")
    measured = {"ED_frame": 1, "ES_frame": 2, "LVEDV_ml": 10.0, "LVESV_ml": 5.0, "LVEF_pct": 50.0, "myo_mass_g": 3.0}
    write_dicom_sr(series, segs, measured, tmp_path / "report", "heart-sr-tf test", "1")
    seg = hd.seg.segread(tmp_path / "seg" / "SEG0000.dcm")
    assert (seg.PatientSex, seg.PatientBirthDate, seg.StudyDate) == ("", "", "20260105")
    report = pydicom.dcmread(next((tmp_path / "report").glob("*.dcm")))
    assert report.StudyInstanceUID == series.headers[0][0].StudyInstanceUID and report.StudyDate == "20260105"
    for column in series.headers:
        for header in column:
            del header.FrameOfReferenceUID
    with pytest.raises(DataError) as error:
        write_dicom_seg(series, labels, tmp_path / "seg2", "heart-sr-tf test", "1")
    assert str(error.value).startswith(f"{tmp_path / 'seg2'}: cannot write the SEG series from these headers (")
    assert not [p.name for p in tmp_path.iterdir() if "seg2" in p.name]


def test_an_output_header_is_copied_whole_and_apart_from_its_template(tmp_path):
    """The writer copies each input header (classic, and an enhanced file's frames as read) by a pickle round trip,
    not ``copy.deepcopy``: the same dataset, file meta and the reader's own notes, and editing the copy (nested
    items and private elements too) leaves the template as it was."""
    import copy

    from pydicom.dataset import Dataset

    from heart_sr_tf.volumes.dicom_writer import _copy

    cine = Cine(_values((12, 10, 2, 3)))
    write_cine(
        tmp_path / "classic",
        cine,
        edit=lambda z, t, ds: ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(
            0x0E, "FL", 1.5
        ),
    )
    enhanced = write_enhanced(tmp_path / "enhanced" / "cine.dcm", cine)
    for series in (read_series(tmp_path / "classic"), read_series(enhanced)):
        for template in (h for row in series.headers for h in row):
            made, reference = _copy(template), copy.deepcopy(template)
            assert made == reference and made.file_meta == reference.file_meta
            notes = {k: v for k, v in vars(reference).items() if k.startswith("heart_sr")}
            assert {k: v for k, v in vars(made).items() if k.startswith("heart_sr")} == notes
            before = copy.deepcopy(template)
            made.PixelSpacing = ["9", "9"]
            made.SourceImageSequence = [Dataset()]
            if "ReferencedImageSequence" in made:
                made.ReferencedImageSequence[0].ReferencedSOPInstanceUID = "1.2.3"
            if (0x2005, 0x0010) in made:  # (the classic series' private scale slope)
                made.private_block(0x2005, "Philips MR Imaging DD 001")[0x0E].value = 99.0
            assert template == before
        assert (0x2005, 0x0010) in template or series.path == enhanced
