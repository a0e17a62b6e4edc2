"""A study exported flat (every series' files in one folder, as PACS exports and anonymisers often leave them):
each image series is a scan of its own for ``cohort``, ``evaluate --scans`` and ``prepare --scans``; a DICOMDIR
beside series folders is no scan; a folder of several patients' studies names each series after its patient."""

import json
from pathlib import Path

import numpy as np
import pytest
from dicom_series import Cine, write_cine, write_localiser
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import BasicTextSRStorage, ExplicitVRLittleEndian, generate_uid

from heart_sr_tf.cohort.jobs import find_jobs, find_scans
from heart_sr_tf.cohort.patients import find_scan_patients
from heart_sr_tf.data.dicom import folder_series
from heart_sr_tf.data.scan import ScanSource, read_scan
from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.evaluation.scans import scan_names


def _values(seed: int, shape=(10, 12, 3, 2)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 400, shape).astype(np.float32) * 2.0 - 10.0


def _report(path: Path) -> None:
    """A DICOM object without pixels (as a DICOMDIR or a structured report is)."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.MediaStorageSOPClassUID = ds.SOPClassUID = BasicTextSRStorage
    ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID = generate_uid()
    ds.save_as(path, enforce_file_format=True)


@pytest.fixture
def study(tmp_path) -> tuple[Path, dict]:
    """``lab/``: a report at its root; ``study1/`` flat: a short-axis cine (series 7), a one-slice long-axis cine
    (series 9) and a localiser (series 1); ``P2/sax/``: a series in a folder of its own."""
    lab = tmp_path / "lab"
    sax, lax = Cine(_values(1)), Cine(_values(2, (10, 12, 1, 2)), series_number=9, description="cine 2ch")
    write_cine(lab / "study1", sax, prefix="a")
    write_cine(lab / "study1", lax, prefix="b", study_uid=sax.study_uid)
    write_localiser(lab / "study1", sax.study_uid)
    own = Cine(_values(3))
    write_cine(lab / "P2" / "sax", own)
    _report(lab / "DICOMDIR")
    return lab, {"sax": sax.values, "lax": lax.values[:, :, :, :], "own": own.values}


def test_each_series_of_a_flat_study_is_a_scan_with_its_own_output(study, tmp_path):
    lab, values = study
    assert [(e.number, e.description, e.files) for e in folder_series(lab / "study1")] == [
        (1, "localizer", 3),
        (7, "cine_retro_sax", 6),
        (9, "cine 2ch", 2),
    ]
    assert folder_series(lab) == []  # the DICOMDIR beside the series folders is no series, and no scan
    jobs = find_jobs(str(lab), tmp_path / "out")
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "P2/sax.nii.gz",  # a series in a folder of its own: as before
        "study1/series-1_localizer.nii.gz",
        "study1/series-7_cine_retro_sax.nii.gz",
        "study1/series-9_cine_2ch.nii.gz",
    ]
    assert len({j.key for j in jobs}) == 4 and jobs[0].key == str(lab / "P2" / "sax")
    # each job reads its own series, value for value; the one-slice cine keeps its slice axis
    read = [read_scan(j.source).data for j in jobs[2:]]
    np.testing.assert_array_equal(read[0], values["sax"])
    np.testing.assert_array_equal(read[1], values["lax"][:, :, 0, :][:, :, None, :])
    with pytest.raises(DataError, match=r"study1 \(series series-1_localizer\): .*not one stack of parallel slices"):
        read_scan(jobs[1].source)
    # evaluate --scans names them by folder and series
    assert scan_names(find_scans(str(lab / "study1"))) == [
        "study1/series-1_localizer",
        "study1/series-7_cine_retro_sax",
        "study1/series-9_cine_2ch",
    ]


def test_a_series_folder_with_a_series_folder_inside_is_two_scans_each_read_alone(tmp_path):
    """``sax/`` holds a series and ``sax/sr/`` another (an earlier ``upscale sax sax/sr/``, or a lab's own layout):
    both are scans, and ``sax`` used to be read with everything below it, two series, so its scan failed ("2 image
    series here"). Its one series is now named, and each scan reads as written."""
    outer, inner = Cine(_values(4)), Cine(_values(5, (10, 12, 2, 2)), series_number=1007, description="inner")
    write_cine(tmp_path / "sax", outer)
    write_cine(tmp_path / "sax" / "sr", inner, study_uid=outer.study_uid)
    jobs = find_jobs(str(tmp_path / "sax"), tmp_path / "out")
    assert [(job.input.name, job.output.relative_to(tmp_path / "out").as_posix()) for job in jobs] == [
        ("sax", "sax.nii.gz"),
        ("sr", "sr.nii.gz"),
    ]
    assert jobs[0].series is not None and jobs[1].series is None
    for job, values in zip(jobs, (outer.values, inner.values), strict=True):
        assert np.array_equal(read_scan(job.source).data, values)


def test_a_folder_of_several_patients_studies_and_a_manifests_series_column(tmp_path):
    flat = tmp_path / "flat"

    def patient(pid):
        return lambda z, t, ds: setattr(ds, "PatientID", pid)

    for n, pid in enumerate(("A", "B", "C")):  # every patient's cine is series 7: the numbers repeat
        write_cine(flat, Cine(_values(10 + n)), prefix=pid, edit=patient(pid))
    jobs = find_jobs(str(flat), tmp_path / "out")
    assert [j.output.name for j in jobs] == [f"{p}_series-7_cine_retro_sax.nii.gz" for p in "ABC"]
    assert [pid for pid, _ in find_scan_patients(str(flat))] == ["A", "B", "C"]  # prepare --scans' patients
    np.testing.assert_array_equal(read_scan(jobs[1].source).data, _values(11))
    with pytest.raises(DataError, match="3 series numbered 7 here .* pick by SeriesInstanceUID"):
        read_scan(flat, series=7)  # the number names three series: refused, never one of them at random
    np.testing.assert_array_equal(read_scan(flat, series=jobs[2].series).data, _values(12))  # the UID is unique

    write_cine(tmp_path / "study", Cine(_values(20)), prefix="s")
    write_cine(tmp_path / "study", Cine(_values(21), series_number=8, description="cine_sax_2"), prefix="t")
    (tmp_path / "m.csv").write_text("input,series,patient\nstudy,8,X\nstudy,7,X\n")
    listed = find_jobs(str(tmp_path / "m.csv"), tmp_path / "out")
    assert [(j.output.name, j.patient) for j in listed] == [
        ("study_series-8.nii.gz", "X"),
        ("study_series-7.nii.gz", "X"),
    ]
    np.testing.assert_array_equal(read_scan(listed[0].source).data, _values(21))
    (tmp_path / "bad.csv").write_text("input,series\nstudy,3\n")
    with pytest.raises(HeartSRError, match=r"study \(series 3\): --series 3: no series 3 here"):
        read_scan(find_jobs(str(tmp_path / "bad.csv"), tmp_path / "out")[0].source)
    assert str(ScanSource(tmp_path / "x.nii.gz")) == str(tmp_path / "x.nii.gz")


def test_prepare_scans_takes_a_flat_folders_patients_from_their_headers(tmp_path):
    """Several patients' series in one folder: each patient's series go to one split, value for value."""
    from heart_sr_tf.data.acdc_sr import quantise
    from heart_sr_tf.data.pipeline import slice_dataset
    from heart_sr_tf.data.prepare import prepare_scans, split_assignment
    from heart_sr_tf.data.slices import scan_frames

    flat = tmp_path / "flat"
    for n, pid in enumerate(("A", "B", "C")):
        write_cine(flat, Cine(_values(30 + n, (24, 20, 3, 2))), prefix=pid, edit=lambda z, t, ds, p=pid: setattr(
            ds, "PatientID", p))  # fmt: skip
    write_cine(flat, Cine(_values(40, (24, 20, 2, 1)), series_number=8), prefix="A2", edit=lambda z, t, ds: setattr(
        ds, "PatientID", "A"))  # fmt: skip
    data = tmp_path / "data"
    report = prepare_scans(find_scan_patients(str(flat)), str(flat), data, quiet=True)
    assert not report.bad
    assignment = split_assignment(data)
    assert sorted(assignment) == ["A", "B", "C"]
    stored = {}
    for split in ("train", "validation", "test"):
        for example in slice_dataset(data, "full", split).as_numpy_iterator():
            stored[(example["patient"].decode(), int(example["frame"]), int(example["slice"]))] = example["hr"][..., 0]
    assert len(stored) == 3 * 6 + 2  # A's second series follows its first
    frames = list(scan_frames(_values(31, (24, 20, 3, 2))))
    for frame, images in frames:
        for z, image in enumerate(images):
            np.testing.assert_array_equal(stored[("B", frame, z)], quantise(image))


def test_dicom_out_names_folders_for_dicom_scans_only(study, tmp_path):
    lab, _ = study

    (lab / "scan.nii.gz").write_bytes(b"")
    jobs = find_jobs(str(lab), tmp_path / "out", dicom_out=True)
    assert [(j.output.relative_to(tmp_path / "out").as_posix(), j.dicom) for j in jobs] == [
        ("scan.nii.gz", False),
        ("P2/sax", True),
        ("study1/series-1_localizer", True),
        ("study1/series-7_cine_retro_sax", True),
        ("study1/series-9_cine_2ch", True),
    ]
    assert jobs[1].target == str(tmp_path / "out" / "P2" / "sax") + "/"
    (tmp_path / "m.csv").write_text(
        f"input,output,series\n{lab}/study1,a.v1/,7\n{lab}/study1,b.nii.gz,9\n{lab}/P2/sax,,\n"
    )
    listed = find_jobs(str(tmp_path / "m.csv"), tmp_path / "out", dicom_out=True)
    assert [(j.output.name, j.dicom) for j in listed] == [("a.v1", True), ("b.nii.gz", False), ("sax", True)]


def test_series_description_picks_the_series_to_take(study, tmp_path):
    """``--series-description '*sax*'``: a study export's short-axis cine, not its localiser or long-axis view; a
    series in a folder of its own is judged the same way; NIfTI files are kept; nothing left is an error."""
    from heart_sr_tf.cohort.series_filter import SeriesFilter

    lab, _ = study
    (lab / "scan.nii.gz").write_bytes(b"")
    chosen = SeriesFilter("*SAX*")
    jobs = find_jobs(str(lab), tmp_path / "out", series=chosen)
    assert [j.output.relative_to(tmp_path / "out").as_posix() for j in jobs] == [
        "scan.nii.gz",
        "P2/sax.nii.gz",  # its one series is a short-axis cine too
        "study1/series-7_cine_retro_sax.nii.gz",
    ]
    assert chosen.aside == ["localizer", "cine 2ch"]
    assert "2 series not matching --series-description '*SAX*' left aside ('localizer', 'cine 2ch')" in chosen.line()
    assert [s.name for s in find_scans(str(lab / "study1"), series=SeriesFilter("cine*"))] == [
        "study1/series-7_cine_retro_sax",
        "study1/series-9_cine_2ch",
    ]
    with pytest.raises(HeartSRError, match="no scan left: 3 series not matching --series-description 'lge\\*'"):
        find_scans(str(lab / "study1"), series=SeriesFilter("lge*"))


def test_series_description_reads_a_nifti_files_sidecar(tmp_path):
    """A folder of dcm2niix output: each NIfTI file's BIDS sidecar names the series it came from. Before, every NIfTI
    file was kept whatever --series-description asked (the localiser's too), and nothing said so; now a sidecar's
    SeriesDescription is matched, and the files kept for want of one are named in a line."""
    from heart_sr_tf.cohort.series_filter import SeriesFilter

    lab = tmp_path / "lab"
    lab.mkdir()
    sidecars = {"sax": {"SeriesDescription": "cine_retro_SAX"}, "loc": {"SeriesDescription": "localizer"}}
    sidecars |= {"broken": "{not json", "nodesc": {"SliceThickness": 8}}
    for name in ("sax", "loc", "broken", "nodesc", "bare"):
        (lab / f"{name}.nii.gz").write_bytes(b"")
        if name in sidecars:
            side = sidecars[name]
            (lab / f"{name}.json").write_text(side if isinstance(side, str) else json.dumps(side))
    chosen = SeriesFilter("*sax*")
    jobs = find_jobs(str(lab), tmp_path / "out", series=chosen)
    assert sorted(j.input.name for j in jobs) == ["bare.nii.gz", "broken.nii.gz", "nodesc.nii.gz", "sax.nii.gz"]
    assert chosen.aside == ["localizer"]
    assert chosen.lines() == [
        "1 series not matching --series-description '*sax*' left aside ('localizer')",
        "3 scans kept without a SeriesDescription to match --series-description '*sax*' against (a NIfTI file "
        "without a BIDS sidecar stating one, or a manifest's row): bare.nii.gz, broken.nii.gz, nodesc.nii.gz",
    ]
    everything = SeriesFilter()  # no pattern: nothing left aside, nothing to say
    assert len(find_jobs(str(lab), tmp_path / "out", series=everything)) == 5 and everything.lines() == []


def test_series_folders_of_one_patient_are_one_patient(tmp_path):
    """Series folders not grouped by patient (``lab/S1/``, ``lab/S2/``...): those whose headers share a PatientID
    are one patient, so that no one's scans straddle two splits; one PatientID for all (an anonymiser's) is no
    information and is not used."""
    lab = tmp_path / "lab"
    for n, pid in enumerate(("A", "B", "A", "C")):
        write_cine(lab / f"S{n + 1}", Cine(_values(50 + n)), edit=lambda z, t, ds, p=pid: setattr(ds, "PatientID", p))
    notes = []
    listed = find_scan_patients(str(lab), notes=notes)
    assert [(pid, source.path.name) for pid, source in listed] == [
        ("S1+S3", "S1"),
        ("S2", "S2"),
        ("S1+S3", "S3"),
        ("S4", "S4"),
    ]
    assert notes == [
        "S1, S3: their DICOM series share PatientID A; taken as one patient, S1+S3 (name patients in a manifest's "
        "patient column to decide otherwise)"
    ]
    anonymised = tmp_path / "anon"
    for n in range(3):
        write_cine(anonymised / f"S{n + 1}", Cine(_values(60 + n)), edit=lambda z, t, ds: setattr(ds, "PatientID", "X"))
    assert [pid for pid, _ in find_scan_patients(str(anonymised))] == ["S1", "S2", "S3"]


def test_a_manifest_saved_by_a_spreadsheet_reads_as_written_by_hand(tmp_path):
    """Excel's "CSV UTF-8" starts with a byte-order mark, a European locale separates columns with semicolons, a
    column may be named Input, and trailing rows are empty: each reads as the plain CSV; a file without an input
    column names the columns it found."""
    for name in ("x.nii.gz", "y.nii.gz"):
        (tmp_path / name).write_text("")
    out = tmp_path / "out"
    plain = find_jobs(str(_manifest(tmp_path / "plain.csv", "input,patient\nx.nii.gz,P1\ny.nii.gz,P2\n")), out)
    written = {
        "bom.csv": "\ufeffinput,patient\r\nx.nii.gz,P1\r\ny.nii.gz,P2\r\n,\r\n,\r\n",
        "semicolons.csv": "Input;Patient\nx.nii.gz;P1\ny.nii.gz; P2\n\n",
        "tabs.csv": "INPUT\tpatient\nx.nii.gz\tP1\ny.nii.gz\tP2\n",
    }
    for name, text in written.items():
        jobs = find_jobs(str(_manifest(tmp_path / name, text)), out)
        assert [(j.input, j.output, j.patient) for j in jobs] == [(j.input, j.output, j.patient) for j in plain], name
    with pytest.raises(HeartSRError, match=r"a manifest needs an 'input' column .*; found 'path', 'patient'"):
        find_jobs(str(_manifest(tmp_path / "other.csv", "path,patient\nx.nii.gz,P1\n")), out)
    with pytest.raises(HeartSRError, match=r"holes.csv:3: empty input"):
        find_jobs(str(_manifest(tmp_path / "holes.csv", "input,patient\nx.nii.gz,P1\n,P2\n")), out)


def _manifest(path: Path, text: str) -> Path:
    path.write_bytes(text.encode("utf-8"))
    return path
