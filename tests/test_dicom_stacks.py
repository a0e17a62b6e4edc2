"""A short-axis cine stack exported one series per slice (one breath-hold each, as many scanners write it): joined
into one stack when the series are one, left apart when they are not, picked with ``--series 5-16``, and written
back as one derived series."""

from pathlib import Path

import numpy as np
import pydicom
import pytest
from dicom_series import Cine, write_cine, write_localiser
from pydicom.uid import generate_uid

from heart_sr_tf.cohort.jobs import listed_jobs
from heart_sr_tf.cohort.series_filter import SeriesFilter
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.dicom import folder_series, latest_stack, read_series
from heart_sr_tf.data.dicom_stacks import _seconds, acquired
from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.errors import DataError
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.volumes.upscale import upscale_file


def _values(shape=(20, 16, 5, 3), seed=0) -> np.ndarray:
    return (np.random.default_rng(seed).integers(0, 4096, shape) * 2.0 - 10.0).astype(np.float32)


def _per_slice(folder: Path, cine: Cine, first_number: int = 5, slices=None, prefix: str = "") -> list[str]:
    """``cine`` written as one series per slice (numbered from ``first_number``, as a scanner numbers breath-holds;
    each slice's phases timed a little differently), keeping only ``slices`` if given; their UIDs by slice."""
    uids = [generate_uid() for _ in range(cine.values.shape[2])]

    def per_slice(z, t, ds):
        ds.SeriesInstanceUID = uids[z]
        ds.SeriesNumber = first_number + z
        ds.SeriesDescription = f"{cine.description}_{z + 1}"  # as some scanners name each breath-hold
        ds.TriggerTime = f"{t * (cine.trigger_ms + 0.7 * z):.2f}"  # each breath-hold's own heart rate

    files = write_cine(folder, cine, prefix=prefix, edit=per_slice)
    if slices is not None:
        phases = cine.values.shape[3]
        for index, file in enumerate(files):
            if index // phases not in slices:
                file.unlink()
    return uids


def test_a_stack_of_per_slice_series_reads_as_the_one_series_cine(tmp_path):
    cine = Cine(_values())
    write_cine(tmp_path / "one", cine)
    uids = _per_slice(tmp_path / "split", cine)
    whole, split = read_series(tmp_path / "one"), read_series(tmp_path / "split")
    np.testing.assert_array_equal(split.data, cine.values)  # slices in order, phases in order within each
    np.testing.assert_allclose(split.affine, whole.affine, atol=1e-6)
    assert split.zooms[:3] == pytest.approx(whole.zooms[:3])
    assert split.description == "series 5-9 'cine_retro_sax' (a stack of 5 series, one per slice)"
    entries = folder_series(tmp_path / "split")
    assert [(e.numbers_text, e.files, e.uids) for e in entries] == [("5-9", 15, tuple(uids))]
    np.testing.assert_array_equal(read_series(tmp_path / "split", entries[0].uid).data, cine.values)  # its pick


def test_beside_other_series_the_stack_is_one_scan_and_picked_by_its_numbers(tmp_path):
    study = tmp_path / "study"
    cine = Cine(_values())
    _per_slice(study, cine)
    write_localiser(study, cine.study_uid)
    other = Cine(_values((20, 16, 2, 3), 1), orientation=((1, 0, 0), (0, 0, -1)), study_uid=cine.study_uid)
    write_cine(study, other, prefix="lax", edit=lambda z, t, ds: setattr(ds, "SeriesNumber", 30))
    with pytest.raises(DataError) as error:
        read_series(study)
    message = str(error.value)
    assert "3 image series here" in message
    assert "series 5-9 'cine_retro_sax' (a stack of 5 series, one per slice, --series 5-9; 15 images)" in message
    np.testing.assert_array_equal(read_series(study, "5-9").data, cine.values)
    np.testing.assert_array_equal(read_series(study, "5,6,7,8,9").data, cine.values)
    np.testing.assert_array_equal(read_series(study, 7).data, cine.values[:, :, 2:3])  # one slice's series alone
    with pytest.raises(DataError, match=r"--series 5-9,99: no series 99 here"):
        read_series(study, "5-9,99")
    assert [(e.numbers_text, e.description) for e in folder_series(study)] == [
        ("1", "localizer"),
        ("5-9", "cine_retro_sax"),
        ("30", "cine_retro_sax"),
    ]
    jobs = listed_jobs(str(study), tmp_path / "out", quiet=True)
    assert sorted(job.output.name for job in jobs) == [
        "series-1_localizer.nii.gz",
        "series-30_cine_retro_sax.nii.gz",
        "series-5-9_cine_retro_sax.nii.gz",
    ]


def test_series_that_are_not_one_clean_stack_stay_apart(tmp_path):
    """A slice acquired twice (two series at one position), a missing slice (uneven spacing) or phase counts that
    differ from slice to slice: the series stay scans of their own, with a note saying why (which to keep is the
    lab's call); two parallel one-slice series join only when asked."""
    cine = Cine(_values((20, 16, 5, 3)))
    twice = tmp_path / "twice"
    _per_slice(twice, cine)
    _per_slice(twice, Cine(_values((20, 16, 5, 3), 2), study_uid=cine.study_uid, frame_uid=cine.frame_uid),
               first_number=20, slices=[2], prefix="again")  # fmt: skip
    notes: list[str] = []
    assert len(folder_series(twice, notes)) == 6
    assert notes == [
        f"{twice}: series 5-9,22 lie parallel, one slice each, but are no one stack: series 7 and 22 lie at "
        "one position (a slice acquired twice?); each stays a scan of its own (--series 5,6,8,9,22 joins them, "
        "each slice from its latest series, as --repeated-slices latest does wherever a slice was acquired again)"
    ]
    with pytest.raises(DataError, match=r"6 image series here.*series 7 and 22 lie at one position"):
        read_series(twice)
    gap = tmp_path / "gap"
    _per_slice(gap, cine, slices=[0, 1, 3, 4])
    notes = []
    assert len(folder_series(gap, notes)) == 4
    assert len(notes) == 1 and "16.00 mm between series 6 and 8, where the others are 8.00 mm apart" in notes[0]
    with pytest.raises(DataError, match="uneven slice spacing"):
        read_series(gap, "5-9")  # asked for: joined, and refused as a stack with a missing slice
    phases = tmp_path / "phases"
    _per_slice(phases, cine, slices=[0, 1])
    _per_slice(phases, Cine(_values((20, 16, 5, 2)), study_uid=cine.study_uid, frame_uid=cine.frame_uid),
               slices=[2, 3, 4], prefix="other")  # fmt: skip
    # slices 0-1 with 3 phases, 2-4 with 2 (phase counts set per breath-hold): no stack, and a note says why
    notes = []
    assert [(e.numbers_text, e.files) for e in folder_series(phases, notes)] == [(str(n), 3 if n < 7 else 2)
                                                                                for n in range(5, 10)]  # fmt: skip
    assert notes == [
        f"{phases}: series 5-9 lie parallel, one slice each, but hold different numbers of phases (2, 3): each "
        "stays a scan of its own (joining them would resample time)"
    ]
    # a one-slice series of another phase count at one of the stack's own positions (a real-time cine of that
    # slice) is another acquisition: the stack still joins
    real_time = tmp_path / "real_time"
    _per_slice(real_time, cine)
    _per_slice(real_time, Cine(_values((20, 16, 5, 6)), study_uid=cine.study_uid, frame_uid=cine.frame_uid),
               first_number=30, slices=[2], prefix="rt")  # fmt: skip
    assert [e.numbers_text for e in folder_series(real_time)] == ["5-9", "32"]
    two = tmp_path / "two"  # two parallel one-slice series are as likely two views as a stack: apart unless asked
    _per_slice(two, cine, slices=[0, 1])
    assert len(folder_series(two)) == 2
    np.testing.assert_array_equal(read_series(two, "5,6").data, cine.values[:, :, :2])


def _reacquired(folder: Path, cine: Cine, slice_: int, number: int) -> np.ndarray:
    """``cine`` written one series per slice into ``folder`` with slice ``slice_`` acquired again as series
    ``number`` (other values); the cine as the later acquisition gives it."""
    _per_slice(folder, cine)
    again = Cine(_values(cine.values.shape, 2), study_uid=cine.study_uid, frame_uid=cine.frame_uid)
    _per_slice(folder, again, first_number=number - slice_, slices=[slice_], prefix="again")
    later = cine.values.copy()
    later[:, :, slice_] = again.values[:, :, slice_]
    return later


def _set_times(folder: Path, times: dict[int, str]) -> None:
    """AcquisitionDate/Time of every image of the series numbered as ``times``' keys."""
    for file in folder.iterdir():
        ds = pydicom.dcmread(file)
        if int(ds.SeriesNumber) in times:
            ds.AcquisitionDate, ds.AcquisitionTime = "20260105", times[int(ds.SeriesNumber)]
            ds.save_as(file)


def test_repeated_slices_latest_takes_a_slice_acquired_again_from_its_later_series(tmp_path):
    """A slice acquired again (a breath-hold repeated): by default the series stay apart and the note gives the
    ``--series`` that joins the later acquisition; ``--repeated-slices latest`` joins them so, leaving the earlier
    series out of every scan, named. Acquisition times decide before series numbers; a stack in folders of its own
    is joined the same way, and the earlier series' folder gives no scan."""
    cine = Cine(_values((20, 16, 5, 3)))
    twice = tmp_path / "twice"
    later = _reacquired(twice, cine, 2, 22)
    notes: list[str] = []
    (entry,) = folder_series(twice, notes, latest=True)
    assert entry.numbers == (5, 6, 22, 8, 9) and entry.files == 15
    assert notes == [
        f"{twice}: series 7 left out: its slice was acquired again later, in series 22, which the stack of series "
        "5,6,8,9,22 takes (--repeated-slices latest)"
    ]
    np.testing.assert_array_equal(read_series(twice, entry.uid).data, later)
    np.testing.assert_array_equal(read_series(twice, "5,6,8,9,22").data, later)  # the note's pick, by hand
    assert latest_stack(twice) == (entry.uid, [notes[0].removeprefix(f"{twice}: ")])  # upscale's pick
    notes = []
    jobs = listed_jobs(str(twice), tmp_path / "out", notes=notes, series=SeriesFilter(latest=True))
    assert [job.output.name for job in jobs] == ["twice.nii.gz"] and len(notes) == 1
    np.testing.assert_array_equal(read_scan(jobs[0].source).data, later)
    assert len(listed_jobs(str(twice), tmp_path / "out")) == 6  # by default: apart

    timed = tmp_path / "timed"  # series 22 acquired before series 7 (renumbered later, say): 7 is the latest
    _reacquired(timed, cine, 2, 22)
    _set_times(timed, {5: "101000", 6: "101100", 7: "101500.5", 8: "101600", 9: "101700", 22: "100000"})
    notes = []
    (entry,) = folder_series(timed, notes, latest=True)
    assert entry.numbers == (5, 6, 7, 8, 9)
    assert notes[0].startswith(f"{timed}: series 22 left out: its slice was acquired again later, in series 7")
    np.testing.assert_array_equal(read_series(timed, entry.uid).data, cine.values)

    mixed = tmp_path / "mixed"  # 22 dated (AcquisitionDateTime), the rest time of day only: times compare alone
    _reacquired(mixed, cine, 2, 22)
    _set_times(mixed, {5: "1010", 6: "1011", 7: "101500.5", 8: "1016", 9: "10"})
    for file in mixed.iterdir():
        ds = pydicom.dcmread(file)
        if int(ds.SeriesNumber) in (5, 6, 7, 8, 9):
            del ds.AcquisitionDate
        else:
            ds.AcquisitionDateTime = "20260105100000.000000+0100"
        ds.save_as(file)
    (entry,) = folder_series(mixed, [], latest=True)
    assert entry.numbers == (5, 6, 7, 8, 9)

    export = tmp_path / "export"  # each series in a folder of its own
    for file in sorted(twice.iterdir()):
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        folder = export / "study" / f"sax_{ds.SeriesNumber}"
        folder.mkdir(parents=True, exist_ok=True)
        file.rename(folder / file.name)
    notes = []
    jobs = listed_jobs(str(export), tmp_path / "out", notes=notes, series=SeriesFilter(latest=True))
    assert [job.output.relative_to(tmp_path / "out").as_posix() for job in jobs] == [
        "study/series-5_6_8_9_22_cine_retro_sax.nii.gz"
    ]
    assert notes == [
        f"{export / 'study'}: series 7 left out: its slice was acquired again later, in series 22, which the stack "
        "of series 5,6,8,9,22 takes (--repeated-slices latest) (each in a folder of its own)"
    ]
    np.testing.assert_array_equal(read_scan(jobs[0].source).data, later)
    assert len(listed_jobs(str(export), tmp_path / "out")) == 6
    picked, lines = latest_stack(export / "study")  # upscale of the study folder reads every folder under it
    assert picked == jobs[0].series and len(lines) == 1
    np.testing.assert_array_equal(read_series(export / "study", picked).data, later)
    missing = tmp_path / "missing"  # a slice acquired twice and another missing: no stack either way
    _reacquired(missing, cine, 2, 22)
    for file in list(missing.iterdir()):
        if int(pydicom.dcmread(file, stop_before_pixels=True).SeriesNumber) == 8:
            file.unlink()
    notes = []
    assert len(folder_series(missing, notes, latest=True)) == 5
    assert "series 7 and 22 lie at one position" in notes[0] and "--series 5" not in notes[0]
    assert latest_stack(missing) == (None, [])


def test_acquisition_times_read_in_every_form_dicom_allows():
    """To the hour, minute, second or fraction, in the colon-separated form of old exports, as a date and time
    with a UTC offset; what is none of these gives no time (the series number decides then)."""
    stamp = pydicom.Dataset()
    stamp.AcquisitionDateTime = "20260105101500.25-0500"
    assert acquired(stamp) == ("20260105", 36900.25)
    assert [_seconds(t) for t in ("10", "1015", "101530", "101530.123456", "10:15:30.5")] == [
        36000,
        36900,
        36930,
        36930.123456,
        36930.5,
    ]
    assert _seconds("") is None and _seconds("10h15") is None and _seconds("1015301") is None
    series = pydicom.Dataset()
    series.SeriesDate, series.SeriesTime = "20260105", "0930"
    assert acquired(series) == ("20260105", 34200) and acquired(pydicom.Dataset()) == ("", None)


def test_a_stack_upscales_into_one_derived_series(tmp_path):
    out = tmp_path / "models"
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), out, "inplane", degradation=Degradation())
    predictor = load_predictor(out / "inplane")
    cine = Cine(_values((24, 18, 4, 2)))
    write_cine(tmp_path / "one", cine)
    _per_slice(tmp_path / "split", cine)
    twin = read_series(upscale_file(tmp_path / "one", tmp_path / "sr_one", predictor, quiet=True))
    derived_dir = upscale_file(tmp_path / "split", tmp_path / "sr_split", predictor, quiet=True)
    derived = read_series(derived_dir)
    np.testing.assert_array_equal(derived.data, twin.data)
    np.testing.assert_allclose(derived.affine, twin.affine, atol=1e-6)
    headers = [pydicom.dcmread(f, stop_before_pixels=True) for f in Path(derived_dir).glob("*.dcm")]
    assert len(headers) == 8 and len({ds.SeriesInstanceUID for ds in headers}) == 1
    assert {int(ds.SeriesNumber) for ds in headers} == {1005}
    assert {ds.DerivationDescription.split(", ")[-1] for ds in headers} == {"from series 5-8"}


def test_per_slice_series_in_folders_of_their_own_are_one_scan_of_their_study(tmp_path):
    """Exports often keep each series in a folder (``study/sax_5/``, ``study/sax_6/``, ...): sibling folders of one
    slice's series each, that together are one stack, are one scan of their study folder, read value for value
    as the cine; a long-axis series and a localiser beside them stay scans of their own, as does a stack with a
    slice missing."""
    export = tmp_path / "export"
    cine = Cine(_values((20, 16, 4, 3)))
    flat = tmp_path / "flat"
    _per_slice(flat, cine)
    for file in sorted(flat.iterdir()):  # each series into a folder of its own
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        folder = export / "P01" / "study" / f"sax_{ds.SeriesNumber}"
        folder.mkdir(parents=True, exist_ok=True)
        file.rename(folder / file.name)
    (export / "P01" / "study" / "loc").mkdir()
    write_localiser(export / "P01" / "study" / "loc", cine.study_uid)
    lax = Cine(_values((20, 16, 1, 3), 1), orientation=((1, 0, 0), (0, 0, -1)), study_uid=cine.study_uid,
               series_number=30, description="cine_4ch")  # fmt: skip
    write_cine(export / "P01" / "study" / "4ch_30", lax)
    gap = Cine(_values((20, 16, 4, 3), 2))
    _per_slice(tmp_path / "flat2", gap, slices=[0, 1, 3])
    for file in sorted((tmp_path / "flat2").iterdir()):
        ds = pydicom.dcmread(file, stop_before_pixels=True)
        folder = export / "P02" / "study" / f"sax_{ds.SeriesNumber}"
        folder.mkdir(parents=True, exist_ok=True)
        file.rename(folder / file.name)
    notes: list[str] = []
    jobs = listed_jobs(str(export), tmp_path / "out", quiet=True, notes=notes)
    names = [job.output.relative_to(tmp_path / "out").as_posix() for job in jobs]
    assert len(notes) == 1 and notes[0].startswith(f"{export / 'P02' / 'study'}: series 5,6,8 lie parallel")
    assert notes[0].endswith("(each in a folder of its own)")
    assert names == [
        "P01/study/4ch_30.nii.gz",
        "P01/study/loc.nii.gz",
        "P01/study/series-5-8_cine_retro_sax.nii.gz",
        "P02/study/sax_5.nii.gz",
        "P02/study/sax_6.nii.gz",
        "P02/study/sax_8.nii.gz",
    ]
    stack = jobs[2]
    assert stack.input == export / "P01" / "study" and stack.description == "cine_retro_sax"
    read = read_scan(stack.source)
    np.testing.assert_array_equal(read.data, cine.values)
    assert read.dicom.description == "series 5-8 'cine_retro_sax' (a stack of 4 series, one per slice)"


def test_a_stack_beside_series_of_another_kind_at_the_same_positions_is_still_joined(tmp_path):
    """Some exports hold, beside each slice's cine, an analysis series at the same position (a scanner's inline
    results). Derived images never join original ones, and where both kinds are original, each description family
    (``cine_sax_1``... against ``cine_sax_InlineVF_1``...) is tried as a stack of its own."""
    cine = Cine(_values((20, 16, 4, 3)))
    for kind, prefix in ((["DERIVED", "SECONDARY"], "d"), (["ORIGINAL", "PRIMARY"], "o")):
        study = tmp_path / prefix
        _per_slice(study, cine)
        twin = Cine(_values((20, 16, 4, 3), 5), study_uid=cine.study_uid, frame_uid=cine.frame_uid)
        uids = [generate_uid() for _ in range(4)]

        def inline(z, t, ds, kind=kind, uids=uids):
            ds.SeriesInstanceUID, ds.SeriesNumber = uids[z], 40 + z
            ds.SeriesDescription, ds.ImageType = f"cine_retro_sax_InlineVF_{z + 1}", kind

        write_cine(study, twin, prefix="inline", edit=inline)
        entries = folder_series(study)
        assert [(e.numbers_text, e.description) for e in entries] == [
            ("5-8", "cine_retro_sax"),
            ("40-43", "cine_retro_sax_InlineVF"),
        ], prefix
        np.testing.assert_array_equal(read_series(study, entries[0].uid).data, cine.values)


def test_a_manifest_row_names_a_stack_by_a_range_or_a_list(tmp_path):
    cine = Cine(_values((20, 16, 4, 2)))
    _per_slice(tmp_path / "study", cine)
    write_localiser(tmp_path / "study", cine.study_uid)
    (tmp_path / "m.csv").write_text('input,series\nstudy,5-8\nstudy,"5,6,7,8"\n')
    jobs = listed_jobs(str(tmp_path / "m.csv"), tmp_path / "out")
    assert [job.output.name for job in jobs] == ["study_series-5-8.nii.gz", "study_series-5_6_7_8.nii.gz"]
    for job in jobs:
        np.testing.assert_array_equal(read_scan(job.source).data, cine.values)


def test_zip_archives_of_dicom_files_are_scans(tmp_path):
    """UK Biobank ships each participant's cines as a zip of DICOM files (one series per slice): the archive is a
    scan, read as the folder it unpacks into (its stack joined), named without .zip in a cohort; an archive with
    a member that would land outside its folder, or none of DICOM, is refused naming the archive."""
    import zipfile

    cine = Cine(_values((20, 16, 4, 2)))
    _per_slice(tmp_path / "flat", cine)
    write_localiser(tmp_path / "flat", cine.study_uid)
    lab = tmp_path / "lab"
    lab.mkdir()
    with zipfile.ZipFile(lab / "1000001_20209_2_0.zip", "w") as archive:
        for file in sorted((tmp_path / "flat").iterdir()):
            archive.write(file, f"dicom/{file.name}")
        archive.writestr("manifest.csv", "filename,series\n")
    with zipfile.ZipFile(lab / "1000002_20209_2_0.zip", "w") as archive:
        for file in sorted((tmp_path / "flat").iterdir()):
            if pydicom.dcmread(file, stop_before_pixels=True).SeriesNumber != 1:
                archive.write(file, file.name)  # the stack alone, flat in the archive
    jobs = listed_jobs(str(lab), tmp_path / "out", quiet=True)
    assert [job.output.relative_to(tmp_path / "out").as_posix() for job in jobs] == [
        "1000001_20209_2_0/series-1_localizer.nii.gz",
        "1000001_20209_2_0/series-5-8_cine_retro_sax.nii.gz",
        "1000002_20209_2_0.nii.gz",
    ]
    np.testing.assert_array_equal(read_scan(jobs[1].source).data, cine.values)
    alone = read_scan(jobs[2].source)
    np.testing.assert_array_equal(alone.data, cine.values)
    assert alone.dicom.path == lab / "1000002_20209_2_0.zip"
    with pytest.raises(DataError, match=r"1000001_20209_2_0.zip: 2 image series here"):
        read_scan(lab / "1000001_20209_2_0.zip")
    with zipfile.ZipFile(tmp_path / "evil.zip", "w") as archive:
        archive.writestr("../outside.dcm", b"x")
    with pytest.raises(DataError, match=r"evil.zip: member '../outside.dcm' would land outside"):
        read_scan(tmp_path / "evil.zip")
    assert not (tmp_path / "outside.dcm").exists()
    with zipfile.ZipFile(tmp_path / "notes.zip", "w") as archive:
        archive.writestr("notes.txt", "no images")
    with pytest.raises(DataError, match=r"notes.zip: holds no DICOM image"):
        read_scan(tmp_path / "notes.zip")


def test_a_zip_archive_larger_than_the_temporary_folder_is_one_line(tmp_path, monkeypatch):
    """An archive unpacks into the temporary folder: one that would not fit (here a 64 MB member, compressed to a
    few kB, with TMPDIR on a 4 MB tmpfs) is one line naming the archive and the folder, before any file is
    written; a truncated archive is called unreadable."""
    import subprocess
    import tempfile
    import zipfile

    small = tmp_path / "small"
    small.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(small)], capture_output=True).returncode:
        pytest.skip("mounting a small tmpfs needs root: no small file system to fill here")
    try:
        archive = tmp_path / "export.zip"
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as out:
            out.writestr("dicom/IM0001.dcm", b"\0" * (64 * 2**20))
        monkeypatch.setattr(tempfile, "tempdir", str(small))
        with pytest.raises(DataError) as error:
            read_series(archive)
        assert str(error.value).startswith(f"{archive}: unpacks to 67.1 MB and ")
        assert f"MB are free in {small} (the temporary folder); point TMPDIR at a folder with room" in str(error.value)
        assert not list(small.iterdir())
    finally:
        subprocess.run(["umount", str(small)], capture_output=True)
    (tmp_path / "cut.zip").write_bytes(archive.read_bytes()[:200])
    with pytest.raises(DataError, match="unreadable zip archive"):
        read_series(tmp_path / "cut.zip")
