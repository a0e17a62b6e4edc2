"""A real ACDC cine written as a DICOM series (oblique, shuffled, slope/intercept, a localiser beside it) through
``upscale``: to NIfTI and to a derived DICOM series, in-plane and across slices, against the NIfTI path."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pydicom
import pytest
from click.testing import CliRunner
from dicom_series import Cine, write_cine, write_localiser
from meanwhile import Meanwhile
from pydicom.dataset import Dataset

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.dicom import read_series
from heart_sr_tf.data.intensity import intensity_window
from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.volumes.grid import OutputGrid
from heart_sr_tf.volumes.through_plane import ThroughPlane
from heart_sr_tf.volumes.upscale import upscale_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Untrained exports: an in-plane x3 (aligned bicubic) and a throughplane_x6 (cubic along the slices)."""
    out = tmp_path_factory.mktemp("models")
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), out, "inplane", degradation=Degradation())
    across = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    export_generator(across, out, "throughplane_x6", degradation=Degradation("through_plane", 6))
    return out


@pytest.fixture(scope="module")
def study(acdc_dir, tmp_path_factory) -> tuple[Path, Cine]:
    """patient001's ED and ES frames (a 60x64 crop around the heart, 10 slices) as series 7 of a study, with a
    localiser series in the same folder."""
    frames = [acdc_dir / "training" / "patient001" / f"patient001_frame{f:02d}.nii.gz" for f in (1, 12)]
    values = np.stack([np.asarray(nib.load(str(f)).dataobj)[80:140, 90:154] for f in frames], axis=3)
    cine = Cine((2.0 * values - 10.0).astype(np.float32), spacing=(1.5625, 1.5625), gap=10.0)
    folder = tmp_path_factory.mktemp("study")
    write_cine(folder, cine)
    write_localiser(folder, cine.study_uid)
    return folder, cine


def _nifti_twin(study, tmp_path) -> Path:
    """The same series as a NIfTI file (its data and affine from the DICOM reader)."""
    scan = read_scan(study, series=7)
    path = tmp_path / "twin.nii.gz"
    nib.save(scan.image, str(path))
    return path


def test_dicom_to_nifti_equals_the_nifti_path(study, models, tmp_path):
    folder, cine = study
    predictor = load_predictor(models / "inplane")
    from_dicom = upscale_file(folder, tmp_path / "a.nii.gz", predictor, quiet=True, series=7)
    from_nifti = upscale_file(_nifti_twin(folder, tmp_path), tmp_path / "b.nii.gz", predictor, quiet=True)
    a, b = nib.load(str(from_dicom)), nib.load(str(from_nifti))
    np.testing.assert_array_equal(np.asarray(a.dataobj), np.asarray(b.dataobj))
    np.testing.assert_allclose(a.affine, b.affine)
    np.testing.assert_allclose(a.affine, OutputGrid((3, 3, 1)).affine(read_series(folder, 7).affine))
    assert a.shape == (180, 192, 10, 2) and a.get_data_dtype() == np.int16


def test_dicom_out_is_a_derived_series_with_the_right_geometry_and_values(study, models, tmp_path):
    folder, cine = study
    predictor = load_predictor(models / "inplane")
    out = upscale_file(folder, tmp_path / "sr", predictor, quiet=True, series=7)
    nifti = nib.load(str(upscale_file(folder, tmp_path / "sr.nii.gz", predictor, quiet=True, series=7)))
    back = read_series(out)
    # values: the NIfTI output's, to the input's quantisation (slope 2)
    np.testing.assert_allclose(back.data, np.asarray(nifti.dataobj, np.float32), atol=1.0 + 1e-6)
    # geometry: output voxel (3i, 3j) sits where input voxel (i, j) sat; phases keep their trigger times
    source = read_series(folder, 7)
    np.testing.assert_allclose(back.affine, OutputGrid((3, 3, 1)).affine(source.affine), atol=1e-4)
    for i, j, k in [(0, 0, 0), (20, 33, 4), (59, 63, 9)]:
        np.testing.assert_allclose(back.affine @ [3 * i, 3 * j, k, 1], source.affine @ [i, j, k, 1], atol=1e-3)
    assert back.zooms == pytest.approx((source.zooms[0] / 3, source.zooms[1] / 3, *source.zooms[2:]), rel=1e-6)
    first_in, first_out = source.headers[0][1], back.headers[0][1]
    assert first_out.TriggerTime == first_in.TriggerTime
    assert first_out.StudyInstanceUID == first_in.StudyInstanceUID and first_out.PatientID == first_in.PatientID
    assert first_out.SeriesInstanceUID != first_in.SeriesInstanceUID
    assert first_out.SeriesNumber == 1007 and list(first_out.ImageType[:2]) == ["DERIVED", "SECONDARY"]
    assert "x3 in-plane inplane/1" in first_out.SeriesDescription
    assert (first_out.Rows, first_out.Columns) == (3 * first_in.Rows, 3 * first_in.Columns)
    uids = {pydicom.dcmread(f).SOPInstanceUID for f in out.iterdir() if f.suffix == ".dcm"}
    assert len(uids) == 20 and not uids & {h.SOPInstanceUID for s in source.headers for h in s}
    for k, t in [(0, 0), (4, 1), (9, 1)]:  # each image names the input image it was made from
        (item,) = back.headers[k][t].SourceImageSequence
        assert item.ReferencedSOPInstanceUID == source.headers[k][t].SOPInstanceUID
        assert item.ReferencedSOPClassUID == source.headers[k][t].SOPClassUID


def test_through_plane_dicom_out_has_g_times_the_slices(study, models, tmp_path):
    folder, cine = study
    across = ThroughPlane(load_predictor(models / "throughplane_x6"))
    out = upscale_file(folder, tmp_path / "tp", through_plane=across, quiet=True, series=7)
    source, back = read_series(folder, 7), read_series(out)
    assert back.data.shape == (60, 64, 60, 2)
    # the output slices tile the acquired slabs: the first lies 2.5 of them before the first acquired slice
    np.testing.assert_allclose(back.affine, OutputGrid((1, 1, 6), (0, 0, -2.5 / 6)).affine(source.affine), atol=1e-4)
    # the untrained model is cubic along the slices, through input slice k at its row 6k (output slice 6k + 2);
    # the part above the clip is interpolated at the output slices' places, half a row off the acquired ones
    below = _below_clip(source.data)
    np.testing.assert_allclose(back.data[:, :, 2::6][below], source.data[below], atol=2.0 + 1e-6)
    locations = [float(s[0].SliceLocation) for s in back.headers]
    np.testing.assert_allclose(np.diff(locations), 10.0 / 6, atol=1e-3)
    first = float(source.headers[0][0].SliceLocation)
    assert locations[0] == pytest.approx(first - 2.5 * 10.0 / 6, abs=1e-3)
    named = [[item.ReferencedSOPInstanceUID for item in s[1].SourceImageSequence] for s in back.headers]
    ids = [h[1].SOPInstanceUID for h in source.headers]
    assert named[0] == [ids[0]] and named[-1] == [ids[-1]]  # in the first and last slabs, outside the others
    assert named[14] == [ids[1], ids[2]]  # between two acquired slices (at 1.92)
    assert float(back.headers[3][0].SpacingBetweenSlices) == pytest.approx(10.0 / 6)
    assert float(back.headers[3][0].SliceThickness) == pytest.approx(10.0 / 6)  # not the acquired slab's
    assert float(source.headers[3][0].SliceThickness) == pytest.approx(10.0)


def test_a_series_scaled_image_by_image_keeps_every_value_across_slices(acdc_dir, models, tmp_path):
    """Slices stored with slopes 0.25 and 1 in turn, each using most of its 12 bits: the slices made between two
    of them hold values beyond the finer one's range, and must not be clipped to it."""
    values = np.asarray(nib.load(str(acdc_dir / "training" / "patient001" / "patient001_frame01.nii.gz")).dataobj)
    values = values[80:140, 90:154, :4, None].astype(np.float32)
    slopes = (0.25, 1.0, 0.25, 1.0)
    for z, slope in enumerate(slopes):  # each slice spans 0 .. 4000 stored values
        values[:, :, z] = np.round(values[:, :, z] / values[:, :, z].max() * 4000) * slope
    cine = Cine(values, spacing=(1.5625, 1.5625), gap=10.0, intercept=0.0, slice_slopes=slopes)

    def other_maps(z, t, ds):  # Philips' private scale slope and a Real World Value Mapping, as Philips writes them
        ds.private_block(0x2005, "Philips MR Imaging DD 001", create=True).add_new(0x0E, "FL", 0.005 / slopes[z])
        copies = ds.private_block(0x2005, "Philips MR Imaging DD 005", create=True)
        copies.add_new(0x0A, "DS", f"{slopes[z]:g}")
        copies.add_new(0x09, "DS", "0")
        item = Dataset()  # real-world value = 2 x the displayed one
        item.RealWorldValueSlope, item.RealWorldValueIntercept = 2.0 * slopes[z], 0.0
        item.RealWorldValueFirstValueMapped, item.RealWorldValueLastValueMapped = 0, 4095
        lut = Dataset()
        lut.RealWorldValueLUTData, lut.RealWorldValueFirstValueMapped, lut.RealWorldValueLastValueMapped = [0.0], 0, 0
        ds.RealWorldValueMappingSequence = [item, lut]

    write_cine(tmp_path / "study", cine, edit=other_maps)
    across = ThroughPlane(load_predictor(models / "throughplane_x6"))
    out = upscale_file(tmp_path / "study", tmp_path / "tp", through_plane=across, quiet=True)
    nifti = upscale_file(tmp_path / "study", tmp_path / "tp.nii.gz", through_plane=across, quiet=True)
    back = read_series(out)
    expected = nib.load(str(nifti)).get_fdata()
    assert expected[:, :, 1:6].max() > 1100  # beyond what slice 0's slope can hold (4095 x 0.25)
    np.testing.assert_allclose(back.data[..., 0], expected, atol=0.5 + 1e-3)  # to the coarser slope's half step
    below = _below_clip(values)
    np.testing.assert_allclose(back.data[:, :, 2::6][below], values[below], atol=0.5 + 1e-3)
    # the other maps from stored values follow a coarser slope: Philips' "precise" value (displayed / (RescaleSlope
    # x its scale slope)) stays 200 x the displayed one, the real-world value 2 x; before, off by the slopes' ratio
    restated = 0
    for file in sorted(out.glob("*.dcm")):
        ds = pydicom.dcmread(file)
        slope, intercept = float(ds.RescaleSlope), float(ds.RescaleIntercept)
        scale = ds.private_block(0x2005, "Philips MR Imaging DD 001")[0x0E].value
        assert slope * scale == pytest.approx(0.005, rel=1e-6)
        copies = ds.private_block(0x2005, "Philips MR Imaging DD 005")
        assert (float(copies[0x0A].value), float(copies[0x09].value)) == (slope, intercept)
        (item,) = ds.RealWorldValueMappingSequence if slope not in slopes else ds.RealWorldValueMappingSequence[:1]
        assert (float(item.RealWorldValueSlope), float(item.RealWorldValueIntercept)) == pytest.approx(
            (2 * slope, 2 * intercept)
        )
        coarser = slope not in slopes
        assert item.RealWorldValueFirstValueMapped == 0  # (the stored range it covers, in the new stored values)
        assert 0 < item.RealWorldValueLastValueMapped < 4095 if coarser else item.RealWorldValueLastValueMapped == 4095
        restated += coarser
    assert restated > 0


def _below_clip(data: np.ndarray) -> np.ndarray:
    """The voxels of ``data[x, y, z, T]`` whose column across the slices lies within its frame's intensity window:
    where the model's part alone makes the output."""
    inside = np.stack([data[..., t] <= intensity_window(data[..., t])[1] for t in range(data.shape[3])], 3)
    return np.broadcast_to(inside.all(axis=2, keepdims=True), data.shape)


def _stored_by_instance(folder: Path) -> tuple[np.ndarray, set]:
    """A written series' stored pixels in InstanceNumber order, and its (photometric, slope, intercept)s."""
    images = [pydicom.dcmread(f) for f in folder.iterdir() if f.suffix == ".dcm"]
    images.sort(key=lambda d: d.InstanceNumber)
    kinds = {(d.PhotometricInterpretation, float(d.RescaleSlope), float(d.RescaleIntercept)) for d in images}
    return np.stack([d.pixel_array.astype(np.int64) for d in images]), kinds


def test_a_monochrome1_series_is_read_as_it_is_shown_and_written_back_as_it_was(study, tmp_path):
    """MONOCHROME1: the lowest value is shown white. Read as stored, the shipped model saw the cine inverted (dark
    blood, bright background), unlike anything it learnt from, and so would the segmenter of --measure. Now it is
    read as shown: the same image, shown the same, upscales to the same result whichever grey scale stores it, and
    the derived series is MONOCHROME1 again in the input's values (the two outputs' stored values add up to 4095,
    as the inputs' do)."""
    folder, cine = study

    def monochrome1(z, t, ds):  # the same image as shown: stored 4095 - s, lowest shown white
        ds.PixelData = (4095 - ds.pixel_array.astype(np.int64)).astype(np.uint16).tobytes()
        ds.PhotometricInterpretation = "MONOCHROME1"

    write_cine(tmp_path / "m1", cine, edit=monochrome1)
    write_cine(tmp_path / "m2", cine)
    m1, m2 = read_scan(tmp_path / "m1"), read_scan(tmp_path / "m2")
    shift = m1.data - m2.data  # as shown: the same image, up to a constant
    assert np.ptp(shift) < 1e-3 and any("MONOCHROME1 (low values shown bright)" in w for w in m1.warnings())
    assert not any("MONOCHROME1" in w for w in m2.warnings())
    predictor = load_predictor(ROOT / "saved_models" / "rrdb_kspace")  # the shipped default: not linear
    one, kinds1 = _stored_by_instance(upscale_file(tmp_path / "m1", tmp_path / "sr1", predictor, quiet=True))
    two, kinds2 = _stored_by_instance(upscale_file(tmp_path / "m2", tmp_path / "sr2", predictor, quiet=True))
    assert {k[0] for k in kinds1} == {"MONOCHROME1"} and {k[0] for k in kinds2} == {"MONOCHROME2"}
    assert {k[1:] for k in kinds1} == {k[1:] for k in kinds2} == {(2.0, -10.0)}  # the input's rescale, both
    assert one.shape == two.shape == (20, 192, 180)  # [image, rows, columns]
    assert np.abs(one + two - 4095).max() <= 1  # (rounding to stored integers)
    # A series whose images mix the two grey scales is one line, not half of it inverted.
    write_cine(tmp_path / "mixed", cine, edit=lambda z, t, ds: monochrome1(z, t, ds) if (z, t) == (3, 1) else None)
    with pytest.raises(DataError, match="one series shown in two grey scales"):
        read_scan(tmp_path / "mixed")


def test_a_32_bit_series_is_refused_as_dicom_output_before_the_model_loads(tmp_path):
    """A series of 32-bit integer pixels ran through the model, and then writing its derived series failed in a
    pydicom traceback (it writes 8 and 16 bits). Now that is one line before any model loads, nothing is written,
    and a NIfTI output of the same series is made as before."""
    from heart_sr_tf.cli import main

    values = np.random.default_rng(0).integers(0, 4000, (20, 16, 3, 2)).astype(np.float32)

    def to32(z, t, ds):
        words = ds.pixel_array.astype(np.uint32) * 1000
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 32, 32, 31
        ds.PixelData = words.tobytes()

    write_cine(tmp_path / "b32", Cine(values, slope=1.0, intercept=0.0), edit=to32)
    refused = CliRunner().invoke(main, ["upscale", str(tmp_path / "b32"), str(tmp_path / "sr") + "/", "--quiet"])
    assert refused.exit_code == 2 and "model:" not in refused.output, refused.output
    (line,) = [x for x in refused.output.splitlines() if x.startswith("error: ")]
    assert line == (
        f"error: {tmp_path / 'b32'}: images of BitsAllocated 32 and BitsStored 32: a derived DICOM series is written "
        "in its input's pixel type, and only 8 or 16 bits are; write a NIfTI (OUT ending in .nii.gz) instead"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["b32"]
    done = CliRunner().invoke(main, ["upscale", str(tmp_path / "b32"), str(tmp_path / "sr.nii.gz"), "--quiet"])
    assert done.exit_code == 0, done.output
    assert nib.load(str(tmp_path / "sr.nii.gz")).shape == (60, 48, 3, 2)


def test_the_cli_refuses_several_series_and_an_output_it_did_not_write(study, models, tmp_path):
    from heart_sr_tf.cli import main

    folder, _ = study
    runner = CliRunner()
    args = ["upscale", str(folder), str(tmp_path / "out") + "/", "--model", str(models / "inplane"), "--quiet"]
    result = runner.invoke(main, args)
    assert result.exit_code == 2 and "2 image series here; pick one with --series N" in result.output
    assert "Traceback" not in result.output and not (tmp_path / "out").exists()
    (tmp_path / "theirs").mkdir()
    (tmp_path / "theirs" / "notes.txt").write_text("a user's file")
    args[2] = str(tmp_path / "theirs")
    result = runner.invoke(main, [*args, "--series", "7", "--overwrite"])
    assert result.exit_code == 2 and "holds files the tool did not write" in result.output
    result = runner.invoke(main, ["upscale", str(_nifti_twin(folder, tmp_path)), str(tmp_path / "d") + "/"])
    assert result.exit_code == 2 and "needs DICOM input" in result.output
    args[2] = str(tmp_path / "ok")
    result = runner.invoke(main, [*args, "--series", "7"])
    assert result.exit_code == 0, result.output
    assert "read series 7 'cine_retro_sax': 60 x 64 x 10 x 2" in result.output
    assert len(list((tmp_path / "ok").glob("*.dcm"))) == 20
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".heart-sr")]  # no temporary folder left
    (tmp_path / "ok" / "report.pdf").write_bytes(b"a user's report, put in the tool's output since")
    result = runner.invoke(main, [*args, "--series", "7", "--overwrite"])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert (
        f"{tmp_path / 'ok'}: an earlier output that now also holds 1 file(s) the tool did not write (report.pdf)"
        in (result.output)
    )
    assert (tmp_path / "ok" / "report.pdf").is_file() and len(list((tmp_path / "ok").glob("*.dcm"))) == 20
    (tmp_path / "ok" / "report.pdf").unlink()
    marker = tmp_path / "ok" / ".heart-sr-series"
    marker.write_text(marker.read_text().splitlines()[0] + "\n")  # as earlier versions marked it: the UID alone
    result = runner.invoke(main, [*args, "--series", "7", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert len(marker.read_text().splitlines()) == 21  # the UID, then the 20 files


def test_a_compressed_series_reads_and_derives_as_its_uncompressed_twin(models, tmp_path):
    """PACS exports often hold compressed pixel data: a series of RLE Lossless and JPEG 2000 Lossless images
    (pylibjpeg's decoders are dependencies) reads value for value as the same series uncompressed, and its derived
    series, written uncompressed, equals the twin's."""
    import pydicom
    from pydicom.uid import JPEG2000Lossless, RLELossless

    values = np.random.default_rng(3).integers(0, 2000, (64, 48, 3, 2)).astype(np.float32) * 2.0 - 10.0
    plain = tmp_path / "plain"
    files = write_cine(plain, Cine(values))
    packed = tmp_path / "packed"
    packed.mkdir()
    for n, file in enumerate(files):
        ds = pydicom.dcmread(file)
        ds.compress(RLELossless if n % 2 else JPEG2000Lossless)
        ds.save_as(packed / file.name, enforce_file_format=True)
    assert str(pydicom.dcmread(packed / files[0].name).file_meta.TransferSyntaxUID) == JPEG2000Lossless
    np.testing.assert_array_equal(read_series(packed).data, values)
    predictor = load_predictor(models / "inplane")
    twin = read_series(upscale_file(plain, tmp_path / "sr_plain", predictor, quiet=True))
    derived = read_series(upscale_file(packed, tmp_path / "sr_packed", predictor, quiet=True))
    np.testing.assert_array_equal(derived.data, twin.data)
    assert str(derived.headers[0][0].file_meta.TransferSyntaxUID) == "1.2.840.10008.1.2.1"  # written uncompressed


def test_a_series_without_the_preamble_reads_and_derives_as_its_twin(models, tmp_path):
    """Some older scanners and archives write DICOM without the Part 10 preamble and file meta (a raw dataset,
    implicit VR): such a series reads value for value as the same series written normally, upscales, and its
    derived series is written as proper Part 10 files. A non-DICOM file beside it is still left aside."""
    values = np.random.default_rng(4).integers(0, 2000, (40, 36, 3, 2)).astype(np.float32) * 2.0 - 10.0
    normal = tmp_path / "normal"
    files = write_cine(normal, Cine(values))
    raw = tmp_path / "raw"
    raw.mkdir()
    for file in files:
        ds = pydicom.dcmread(file)
        del ds.file_meta
        ds.preamble = None
        ds.save_as(raw / file.stem, implicit_vr=True, little_endian=True, enforce_file_format=False)
    (raw / "notes.txt").write_text("not DICOM")
    first = (raw / files[0].stem).read_bytes()
    assert first[128:132] != b"DICM" and first[:2] == b"\x08\x00"  # no preamble: the first tag is (0008,xxxx)
    np.testing.assert_array_equal(read_series(raw).data, values)
    predictor = load_predictor(models / "inplane")
    twin = read_series(upscale_file(normal, tmp_path / "sr_normal", predictor, quiet=True))
    derived_dir = upscale_file(raw, tmp_path / "sr_raw", predictor, quiet=True)
    derived = read_series(derived_dir)
    np.testing.assert_array_equal(derived.data, twin.data)
    np.testing.assert_allclose(derived.affine, twin.affine)
    for file in Path(derived_dir).glob("*.dcm"):
        assert file.read_bytes()[128:132] == b"DICM"  # written as Part 10 files


def test_a_derived_series_written_inside_the_input_is_left_out_when_it_is_read_again(models, tmp_path):
    """`upscale IN IN/sr/` puts the derived series inside IN; reading IN again used to find two series and ask
    for --series. This tool's own series is now left out, with a line naming it; --series still reads it."""
    cine = Cine(np.random.default_rng(3).integers(0, 2000, (24, 20, 3, 2)).astype(np.float32) * 2.0 - 10.0)
    write_cine(tmp_path / "in", cine)
    upscale_file(tmp_path / "in", tmp_path / "in" / "sr", load_predictor(models / "inplane"), quiet=True)
    again = read_scan(tmp_path / "in")
    assert np.array_equal(again.data, cine.values)
    (line,) = again.warnings()
    assert line.startswith(f"{tmp_path / 'in'}: left out series 1007 'heart-sr x") and line.endswith(
        "(6 images): written by heart-sr, not upscaled again (--series picks it if you mean to)"
    )
    derived = read_scan(tmp_path / "in", series=1007)
    assert derived.data.shape[:2] == (72, 60) and derived.made_by_heart_sr() is not None
    assert derived.warnings() == []


def test_an_output_that_appears_while_upscaling_is_left_as_it_is(study, models, tmp_path):
    """OUT was checked free before the work only: a DICOM OUT folder that someone made while the model ran, with a
    file in it, was moved aside and deleted when the series was placed (probed by hand), and a NIfTI OUT that
    appeared was replaced, though --overwrite was not given. Both are now one error naming OUT, left as it was;
    no temporary output is left. With --overwrite a NIfTI that appeared is replaced, as one there before would be.
    --measure's label map and table follow the same rule."""
    from heart_sr_tf.inference.segmenter import Segmenter
    from heart_sr_tf.volumes.measure import measure_outputs, measure_scan

    folder, _ = study
    predictor = load_predictor(models / "inplane", "tensorflow", "float32")
    for out, is_folder in ((tmp_path / "sr", True), (tmp_path / "sr.nii.gz", False)):
        with pytest.raises(HeartSRError) as refused:
            upscale_file(folder, out, Meanwhile(predictor, out, is_folder), quiet=True, series=7)
        assert str(refused.value).startswith(f"{out}: ")
        assert "this result was not written" in str(refused.value) or "the series was not written" in str(refused.value)
        kept = out / "notes.txt" if is_folder else out
        assert kept.read_text() == "a lab's file"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr", "sr.nii.gz"]  # no temporary output left
    out = tmp_path / "again.nii.gz"
    upscale_file(folder, out, Meanwhile(predictor, out, False), quiet=True, series=7, overwrite=True)
    assert nib.load(str(out)).shape == (180, 192, 10, 2)
    labels, table = measure_outputs(out)  # --measure's files: the same rule
    with pytest.raises(DataError, match="appeared while this run worked"):
        measure_scan(out, Meanwhile(Segmenter(), labels), quiet=True)
    assert labels.read_text() == "a lab's file" and not table.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_a_file_that_appears_after_the_last_check_is_left_as_it_is(study, models, tmp_path, monkeypatch):
    """The last check before placing a NIfTI OUT, its --measure table or label map, and the rename after it were
    two steps: a file put at OUT between them was replaced without --overwrite. The file is now placed by a hard
    link, which fails on anything at OUT, so the check and the placing are one step. Here the check is blinded
    (``occupied`` says OUT is free), as it would be for a file that came just after it: the file is kept."""
    from heart_sr_tf import outputs
    from heart_sr_tf.inference.segmenter import Segmenter
    from heart_sr_tf.volumes.measure import measure_outputs, measure_scan

    folder, _ = study
    predictor = load_predictor(models / "inplane", "tensorflow", "float32")
    upscale_file(folder, tmp_path / "done.nii.gz", predictor, quiet=True, series=7)
    labels, table = measure_outputs(tmp_path / "done.nii.gz")
    out = tmp_path / "sr.nii.gz"
    monkeypatch.setattr(outputs, "occupied", lambda path: False)
    with pytest.raises(DataError, match=f"{out}: appeared while this run worked"):
        upscale_file(folder, out, Meanwhile(predictor, out), quiet=True, series=7)
    assert out.read_text() == "a lab's file"
    with pytest.raises(DataError, match="appeared while this run worked"):
        measure_scan(tmp_path / "done.nii.gz", Meanwhile(Segmenter(), labels), quiet=True)
    assert labels.read_text() == "a lab's file" and not table.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary output left


def test_declared_padding_passes_through_and_no_tissue_pixel_becomes_padding(acdc_dir, models, tmp_path):
    """A series whose headers declare PixelPaddingValue 0, its tissue stored from 3 up: too near the tissue for the
    gap that finds padding by value. The padding pixels stay out of the intensity window and pass through, still
    padding in the derived series; no tissue pixel of it is stored as the padding value (a viewer hides those);
    and the tissue keeps its own range, not pulled down towards the padding at the border."""
    frame = acdc_dir / "training" / "patient001" / "patient001_frame01.nii.gz"
    crop = np.asarray(nib.load(str(frame)).dataobj)[80:120, 90:130, 3:5].astype(np.float32)[..., None]
    tissue = crop - crop.min() + 3.0  # stored from 3 up: no gap below it sets the padding apart by its value
    pad = np.zeros(tissue.shape, bool)
    pad[:7] = True  # a band outside the field of view, and a corner cut off
    pad[np.add.outer(np.arange(40), np.arange(40)) > 66] = True
    stored = np.where(pad, 0.0, tissue)
    cine = Cine(stored * 2.0 - 10.0, spacing=(1.5625, 1.5625), gap=10.0)
    folder = tmp_path / "padded"
    write_cine(folder, cine, edit=lambda z, t, ds: setattr(ds, "PixelPaddingValue", 0))
    source = read_series(folder)
    np.testing.assert_array_equal(source.padding, pad)
    assert read_scan(folder).padding_note().endswith("still padding in a derived series")

    out = upscale_file(folder, tmp_path / "sr", load_predictor(models / "inplane"), quiet=True)
    back = read_series(out)
    grid = OutputGrid((3, 3, 1))
    nearest = np.ix_(grid.nearest(0, 40), grid.nearest(1, 40), np.arange(2), np.arange(1))
    padding = pad[nearest]  # the output voxels whose nearest input voxel is padding
    np.testing.assert_array_equal(back.padding, padding)  # exactly those are padding, read back
    raw = np.stack([pydicom.dcmread(f).pixel_array.T for f in sorted(out.glob("*.dcm"))], axis=-1)
    assert (raw[..., 0][padding[..., 0, 0]] == 0).all() and (raw != 0).sum() == (~padding).sum()
    assert all(int(h[0].PixelPaddingValue) == 0 for h in back.headers)
    lowest = source.data[~pad].min()  # the tissue's own lowest value: the border stays at or above it
    assert back.data[~padding].min() >= lowest


def test_a_coarser_slope_restates_the_padding_value_and_keeps_tissue_off_it(tmp_path):
    """An image that no longer fits its input's stored range is stored with a new slope and intercept: its
    PixelPaddingValue is restated to the stored value that holds the padding's real value, and a tissue pixel that
    rounds onto it is stored one step away."""
    from pydicom.dataset import Dataset

    from heart_sr_tf.data.dicom_padding import padding_range, restated
    from heart_sr_tf.volumes.dicom_writer import _stored

    template = Dataset()
    template.BitsAllocated, template.BitsStored, template.PixelRepresentation = 16, 12, 0
    template.RescaleSlope, template.RescaleIntercept, template.PixelPaddingValue = "1", "0", 0
    values = np.array([[0.0, 0.0, -5.0], [5000.0, 0.3, 12.0]])  # padding at real 0, then tissue beyond 4095
    padding = np.array([[True, False, False], [False, False, False]])
    pixels, slope, intercept = _stored(Path("in"), template, values, padding)
    assert intercept == -5.0 and slope > 1.0
    new = restated(template, (1.0, 0.0), (slope, intercept))
    assert new == {"PixelPaddingValue": round(5.0 / slope)}
    stored = pixels.T
    assert stored[0, 0] == new["PixelPaddingValue"]  # the padding: at the restated value
    assert (stored[~padding] != new["PixelPaddingValue"]).all()  # real 0 and 0.3 in tissue: off it
    np.testing.assert_allclose(stored[~padding] * slope + intercept, values[~padding], atol=slope + 1e-6)
    signed = Dataset()
    signed.PixelRepresentation, signed.PixelPaddingValue, signed.PixelPaddingRangeLimit = 1, 63536, -1000
    assert padding_range(signed) == (-2000, -1000)  # a signed image's value read as unsigned, and a range
    signed.BitsStored, signed.RescaleSlope, signed.RescaleIntercept = 12, "1", "0"
    new = restated(signed, (1.0, 0.0), (2.0, 0.0))
    assert new == {"PixelPaddingValue": -1000, "PixelPaddingRangeLimit": -500}
    written = _written(signed, new, tmp_path / "one.dcm")  # as SS: the image is signed (its header had said US)
    assert (written.PixelPaddingValue, written.PixelPaddingRangeLimit) == (-1000, -500)


def _written(template, values: dict, path: Path):
    """``template`` with the restated padding ``values``, through a file and back."""
    from pydicom import dcmread
    from pydicom.dataset import FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian

    from heart_sr_tf.data.dicom_padding import set_padding

    ds = template.copy()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    set_padding(ds, values)
    ds.save_as(path, enforce_file_format=False)
    return dcmread(path, force=True)
