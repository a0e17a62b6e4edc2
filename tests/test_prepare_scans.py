"""A training dataset from a lab's own scans (``prepare --scans``): no ACDC layout, no labels. Every slice of every
frame is stored on the protocol's grid, a patient's scans all go to one split, and a fine-tune on it says whether
it improved on the model it started from."""

from __future__ import annotations

import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_series import Cine, write_cine
from in_process import run_cli

from heart_sr_tf.cohort.patients import find_scan_patients
from heart_sr_tf.errors import DataError


def _nifti(path: Path, data: np.ndarray, zooms=(1.5, 1.5, 8.0, 1.0)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image(data.astype(np.float32), np.diag([*zooms[:3], 1.0]))
    image.header.set_zooms(zooms[: data.ndim])
    nib.save(image, str(path))
    return path


def _image(shape, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 400, shape)


def test_patients_of_a_folder_glob_and_manifest(tmp_path):
    lab = tmp_path / "lab"
    _nifti(lab / "P01" / "cine.nii.gz", _image((12, 12, 3, 2), 0))
    _nifti(lab / "P01" / "followup" / "cine.NII.GZ", _image((12, 12, 3, 2), 1))
    _nifti(lab / "P02.nii.gz", _image((12, 12, 3), 2))
    _nifti(lab / "P03" / "sax" / "cine.nii", _image((12, 12, 3), 3))
    found = {(pid, path.path.relative_to(lab).as_posix()) for pid, path in find_scan_patients(str(lab))}
    assert found == {
        ("P01", "P01/cine.nii.gz"),
        ("P01", "P01/followup/cine.NII.GZ"),
        ("P02", "P02.nii.gz"),
        ("P03", "P03/sax/cine.nii"),
    }
    # a glob of same-named files: the first folder below their common one tells the patients apart
    globbed = find_scan_patients(str(lab / "P0*" / "**" / "cine.nii*"))
    assert sorted(pid for pid, _ in globbed) == ["P01", "P03"]
    # a manifest's patient column regroups them; rows without one fall back to the rule
    manifest = tmp_path / "scans.csv"
    manifest.write_text("input,patient\nlab/P02.nii.gz,X\nlab/P03/sax/cine.nii,X\nlab/P01/cine.nii.gz,\n")
    assert [pid for pid, _ in find_scan_patients(str(manifest))] == ["X", "X", "P01"]


def test_a_flat_bids_named_export_groups_scans_by_subject(tmp_path):
    """dcm2niix's BIDS naming puts one person's scans side by side in one folder (sub-01_cine, sub-01_ses-2_cine):
    the subject in the name is the patient, so one person never straddles two splits, and no flat-folder note is
    needed; plain names there are each a patient of their own, with the note."""
    flat = tmp_path / "flat"
    for n, name in enumerate(["sub-01_cine", "sub-01_ses-2_cine", "sub-02_cine", "sub-03", "sub-3b_run-1_cine"]):
        _nifti(flat / f"{name}.nii.gz", _image((12, 12, 3), n))
    notes: list[str] = []
    found = sorted((pid, scan.path.name) for pid, scan in find_scan_patients(str(flat), notes=notes))
    assert found == [
        ("sub-01", "sub-01_cine.nii.gz"),
        ("sub-01", "sub-01_ses-2_cine.nii.gz"),
        ("sub-02", "sub-02_cine.nii.gz"),
        ("sub-03", "sub-03.nii.gz"),
        ("sub-3b", "sub-3b_run-1_cine.nii.gz"),
    ]
    assert notes == []
    plain = tmp_path / "plain"
    for n, name in enumerate(["P01_cine", "P01_lge", "sub_02"]):  # no BIDS subject: each file is a patient
        _nifti(plain / f"{name}.nii.gz", _image((12, 12, 3), n))
    notes = []
    assert sorted(pid for pid, _ in find_scan_patients(str(plain), notes=notes)) == ["P01_cine", "P01_lge", "sub_02"]
    assert len(notes) == 1 and notes[0].startswith(f"note: every scan lies in {plain} itself")


@pytest.fixture(scope="module")
def lab_scans(phantom_root, tmp_path_factory) -> Path:
    """Phantom cines laid out as a lab's export: A has a cine, a second 3D scan and that scan's label map beside it,
    B and C a cine each, D a cine as a DICOM series (with pydicom), and E only a label map."""
    lab = tmp_path_factory.mktemp("lab")
    training = phantom_root / "training"
    (lab / "A").mkdir()
    shutil.copy(training / "patient001" / "patient001_4d.nii.gz", lab / "A" / "cine.nii.gz")
    shutil.copy(training / "patient001" / "patient001_frame01.nii.gz", lab / "A" / "stack.nii.gz")
    shutil.copy(training / "patient001" / "patient001_frame01_gt.nii.gz", lab / "A" / "stack_labels.nii.gz")
    shutil.copy(training / "patient002" / "patient002_4d.nii.gz", lab / "B.nii.gz")
    shutil.copy(training / "patient003" / "patient003_4d.nii.gz", lab / "C.nii.gz")
    values = np.asarray(nib.load(str(training / "patient004" / "patient004_4d.nii.gz")).dataobj, np.float32)
    write_cine(lab / "D" / "series", Cine(values=np.round(values[:, :, :, :3]) * 2.0 - 10.0))
    shutil.copy(training / "patient005" / "patient005_frame01_gt.nii.gz", lab / "E.nii.gz")
    return lab


@pytest.fixture(scope="module")
def lab_data(lab_scans, tmp_path_factory):
    from heart_sr_tf.data.prepare import prepare_scans

    data_dir = tmp_path_factory.mktemp("labdata")
    report = prepare_scans(find_scan_patients(str(lab_scans)), str(lab_scans), data_dir, quiet=True)
    return data_dir, report


def test_every_slice_of_every_frame_stored_and_patients_kept_whole(lab_scans, lab_data):
    from heart_sr_tf.data.acdc_sr import quantise
    from heart_sr_tf.data.pipeline import num_slices, slice_dataset
    from heart_sr_tf.data.prepare import split_assignment
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.slices import scan_frames

    data_dir, report = lab_data
    # the label maps are left out, each named; A keeps its two images, E (nothing else) is left out
    assert sorted(line.split(":")[0] for line in report.bad) == [
        str(lab_scans / "A" / "stack_labels.nii.gz"),
        str(lab_scans / "E.nii.gz"),
    ]
    assert all("label map" in line for line in report.bad)
    assignment = split_assignment(data_dir)
    assert sorted(assignment) == ["A", "B", "C", "D"]
    assert sorted(set(assignment.values())) == ["test", "train", "validation"]
    stored: dict[str, list[dict]] = {}
    for split in ("train", "validation", "test"):
        for example in slice_dataset(data_dir, "full", split).as_numpy_iterator():
            patient = example["patient"].decode()
            assert assignment[patient] == split  # a patient's scans never straddle two splits
            stored.setdefault(patient, []).append(example)
        assert num_slices(data_dir, "heart", split) == 0  # no labels, no heart boxes
    scans = {"A": ["A/cine.nii.gz", "A/stack.nii.gz"], "B": ["B.nii.gz"], "C": ["C.nii.gz"], "D": ["D/series"]}
    for patient, names in scans.items():
        expected = {}
        offset = 0
        for name in names:
            data = read_scan(lab_scans / name).data
            frames = list(scan_frames(data))
            for frame, images in frames:
                for z, image in enumerate(images):
                    expected[(offset + frame, z)] = quantise(image)
            offset += frames[-1][0]
        got = {(int(e["frame"]), int(e["slice"])): e["hr"][..., 0] for e in stored[patient]}
        assert sorted(got) == sorted(expected)
        for key, image in expected.items():
            np.testing.assert_array_equal(got[key], image)  # value for value, as evaluate --scans sees the scan
    assert max(int(e["frame"]) for e in stored["A"]) == 11  # the cine's 10 frames, then the stack's


def test_a_scans_dataset_is_reused_regrouped_and_refused_where_labels_are_needed(lab_scans, lab_data, tmp_path):
    from heart_sr_tf.data.prepare import dataset_source, prepare_scans, split_assignment

    data_dir, _ = lab_data
    listed = find_scan_patients(str(lab_scans))
    stamp = (data_dir / "acdc_sr" / "full").stat().st_mtime_ns
    prepare_scans(listed, str(lab_scans), data_dir, quiet=True)  # the same scans: reused, not rebuilt
    assert (data_dir / "acdc_sr" / "full").stat().st_mtime_ns == stamp
    with pytest.raises(DataError, match="a lab's scans"):
        dataset_source(data_dir)
    with pytest.raises(DataError, match="built from"):  # another source into the same folder
        prepare_scans(listed[:4], str(tmp_path), data_dir, quiet=True)
    copy = tmp_path / "copy"
    shutil.copytree(data_dir, copy)
    regrouped = [("B" if pid == "C" else pid, path) for pid, path in listed]  # C's scan is B's second
    prepare_scans(regrouped, str(lab_scans), copy, quiet=True)
    assert sorted(split_assignment(copy)) == ["A", "B", "D"]


@pytest.mark.parametrize("config", ["wgan3d_cpu", "wgan3d_kspace"])
def test_a_3d_model_on_scans_is_refused_before_any_work(lab_data, tmp_path, config):
    """A 3D WGAN reads its patients' volumes from the ACDC folder a dataset was prepared from; on a dataset of a
    lab's scans the read failed inside TensorFlow's data pipeline, a traceback at the first step. It is one line
    before the networks are built, and the run folder is not left behind."""
    result = run_cli(
        "train", "wgan", "--config", config, "--data-dir", lab_data[0], "--steps", "2", "--runs-dir", tmp_path,
        "--quiet",
    )  # fmt: skip
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert result.stderr.strip() == (
        f"error: {lab_data[0]}: prepared from a lab's scans, but 3D training reads its patients' files in the ACDC "
        "layout (prepare --acdc-dir); train a 2D model on these scans (train srgan, or train wgan --config "
        "wgan2d_cpu)"
    )
    assert not list(tmp_path.iterdir())


def test_finetune_on_scans_reports_its_start_and_refuses_heart_stages(lab_data, tiny_export, tmp_path):
    from heart_sr_tf.config import load_config
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.srgan_trainer import train_srgan

    data_dir, _ = lab_data
    config = load_config(Path(__file__).resolve().parent / "configs" / "tiny.toml")
    why = "no training slices of roi 'heart' .*: prepare the scans with `prepare --scans ... --heart-boxes`"
    with pytest.raises(DataError, match=why):
        train_srgan(Run.create(tmp_path, "heart", config, data_dir=data_dir, init_from=tiny_export), quiet=True)
    assert not list((tmp_path / "heart" / "checkpoints").glob("ckpt-*"))  # refused before the first step
    config.train.stages = config.train.stages[:1]
    config.train.stages[0].steps = 8
    run = Run.create(tmp_path, "finetune", config, data_dir=data_dir, init_from=tiny_export)
    result = train_srgan(run, quiet=True)
    rows = run.metrics_rows()
    assert rows[0]["step"] == "0" and rows[0]["stage"] == "start"
    assert set(result.start) >= {"psnr", "ssim"} and 5 < result.start["psnr"] < 60
    assert result.start["psnr"] == pytest.approx(float(rows[0]["val_psnr"]))
    assert result.validation["psnr"] != result.start["psnr"]  # eight steps moved the network


def test_cli_prepare_scans_refusals_and_clinical_refused_before_scoring(lab_scans, lab_data, tiny_export, tmp_path):
    both = run_cli("prepare", "--scans", str(lab_scans), "--acdc-dir", str(lab_scans))
    assert both.returncode == 2 and "--scans and --acdc-dir" in both.stderr and "Traceback" not in both.stderr
    acdc_boxes = run_cli("prepare", "--acdc-dir", str(lab_scans), "--heart-boxes")
    repeats = run_cli("prepare", "--acdc-dir", str(lab_scans), "--repeated-slices", "latest")
    assert repeats.returncode == 2 and "error: --repeated-slices latest: picks series among --scans" in repeats.stderr
    assert acdc_boxes.returncode == 2 and "--heart-boxes: draws the heart boxes of --scans" in acdc_boxes.stderr
    no_segmenter = run_cli(
        "prepare", "--scans", str(lab_scans), "--heart-boxes", str(tmp_path / "none"), "--data-dir", str(tmp_path / "n")
    )
    assert no_segmenter.returncode == 2 and str(tmp_path / "none") in no_segmenter.stderr
    assert "Traceback" not in no_segmenter.stderr and not (tmp_path / "n").exists()
    few = tmp_path / "few"
    _nifti(few / "a.nii.gz", _image((12, 12, 3), 0))
    _nifti(few / "b.nii.gz", _image((12, 12, 3), 1))
    two = run_cli("prepare", "--scans", str(few), "--data-dir", str(tmp_path / "d"))
    assert two.returncode == 2 and "2 patient(s)" in two.stderr
    assert f"note: every scan lies in {few} itself, so each is a patient of its own" in two.stdout
    assert not (tmp_path / "d").exists()
    data_dir, _ = lab_data
    again = run_cli("prepare", "--scans", str(lab_scans), "--data-dir", str(data_dir))  # reused, as prepared
    assert again.returncode == 0, again.stderr[-2000:]
    assert "note: every scan lies in" not in again.stdout  # patients in folders of their own
    from heart_sr_tf.data.prepare import split_assignment

    for split in ("validation", "test"):
        chosen = sorted(p for p, s in split_assignment(data_dir).items() if s == split)
        assert f"{split} patients: {', '.join(chosen)}\n" in again.stdout  # the lab knows which to report on
    out = tmp_path / "eval"
    clinical = run_cli("evaluate", str(tiny_export), "--data-dir", str(data_dir), "--clinical", "--out", str(out))
    assert clinical.returncode == 2 and "a lab's scans" in clinical.stderr
    assert not out.exists()


def test_the_tools_own_output_is_never_training_truth(tiny_export, tmp_path):
    from heart_sr_tf.data.scan_patients import read_training_scan

    scan = _nifti(tmp_path / "scan.nii.gz", _image((24, 24, 2), 0))
    read_training_scan(scan)  # an acquisition is fit to train on
    out = tmp_path / "x3.nii.gz"
    done = run_cli("upscale", str(scan), str(out), "--model", str(tiny_export))
    assert done.returncode == 0, done.stderr
    with pytest.raises(DataError, match="written by heart-sr"):
        read_training_scan(out)  # a super-resolved scan taken for full resolution would teach the model its guesses
    scored = run_cli("evaluate", str(tiny_export), "--scans", str(tmp_path), "--out", str(tmp_path / "eval"))
    assert scored.returncode == 0 and f"left out: {out}: was written by heart-sr" in scored.stderr  # no reference
    assert "on 1 scan(s)" in scored.stdout and "(1 left out)" in scored.stdout
    alone = run_cli("evaluate", str(tiny_export), "--scans", str(out), "--out", str(tmp_path / "eval2"))
    assert alone.returncode == 2 and "no scan can be scored" in alone.stderr and not (tmp_path / "eval2").exists()


def test_heart_boxes_drawn_by_a_segmenter(lab_scans, tmp_path):
    """``--heart-boxes``: each scan's box is full resolution's segmentation of every frame, +10 px, on the protocol
    grid (recounted here from the segmenter); the heart config holds the box's crop of every full slice."""
    from heart_sr_tf.data.pipeline import slice_dataset
    from heart_sr_tf.data.prepare import prepare_scans
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.scan_patients import read_training_scan
    from heart_sr_tf.data.slices import scan_frames
    from heart_sr_tf.evaluation.scans_clinical import segmented_heart_box
    from heart_sr_tf.inference.segmenter import Segmenter

    segmenter = Segmenter(Path(__file__).resolve().parents[1] / "saved_models" / "segmenter")
    listed = [(pid, path) for pid, path in find_scan_patients(str(lab_scans)) if pid in ("B", "C", "D")]
    drawn = []

    def heart_box(path):
        drawn.append(segmented_heart_box(segmenter, read_training_scan(path)))
        return drawn[-1]

    data_dir = tmp_path / "boxed"
    report = prepare_scans(listed, str(lab_scans), data_dir, quiet=True, heart_box=heart_box, boxes_by="shipped")
    assert len(drawn) == 3 and all(box is not None for box in drawn) and report.no_heart == []
    union = np.zeros((256, 256), bool)
    for _, images in scan_frames(read_scan(lab_scans / "B.nii.gz").data):
        union |= segmenter.volume(images).any(axis=0)
    rows, cols = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
    box_b = (max(rows[0] - 10, 0), min(rows[-1] + 11, 256), max(cols[0] - 10, 0), min(cols[-1] + 11, 256))
    assert drawn[0] == box_b
    full, heart = {}, {}
    for split in ("train", "validation", "test"):
        for store, roi in ((full, "full"), (heart, "heart")):
            for e in slice_dataset(data_dir, roi, split).as_numpy_iterator():
                store[(e["patient"].decode(), int(e["frame"]), int(e["slice"]))] = e
    assert sorted(heart) == sorted(full)  # every slice of a boxed scan, cut to its scan's box
    key = next(k for k in full if k[0] == "B")
    r0, r1, c0, c1 = heart[key]["box"]
    assert tuple(heart[key]["box"]) == box_b
    np.testing.assert_array_equal(heart[key]["hr"], full[key]["hr"][r0:r1, c0:c1])


def test_a_manifests_missing_scan_is_a_bad_patient_not_a_crash(lab_scans, tmp_path):
    from heart_sr_tf.data.prepare import prepare_scans

    manifest = tmp_path / "scans.csv"
    rows = [f"{lab_scans / name},{pid}" for name, pid in (("B.nii.gz", "b"), ("C.nii.gz", "c"), ("D/series", "d"))]
    manifest.write_text("input,patient\n" + "\n".join([*rows, f"{tmp_path / 'gone.nii.gz'},e"]) + "\n")
    report = prepare_scans(find_scan_patients(str(manifest)), str(manifest), tmp_path / "data", quiet=True)
    assert report.bad == [f"{tmp_path / 'gone.nii.gz'}: file not found"]
    assert report.patients == {"train": 1, "validation": 1, "test": 1}


def test_a_scan_copied_under_another_name_is_left_out_not_split_apart(tmp_path):
    """The same cine exported twice (a NIfTI and its copy under another patient's name, or twice for one patient):
    both were kept, and the copy could land in validation or test while the original trained the model. Now the
    copy is left out with one line naming the scan it repeats; the voxels decide, not the names or the header."""
    from heart_sr_tf.data.scan_patients import group_scans, valid_scan_patients

    a = _nifti(tmp_path / "A.nii.gz", np.round(_image((24, 24, 3, 2), 0)))
    b = _nifti(tmp_path / "B.nii.gz", _image((24, 24, 3, 2), 1))
    copy = tmp_path / "C_export2.nii.gz"  # the same values stored as int16, with another header
    nib.save(nib.Nifti1Image(nib.load(str(a)).get_fdata().astype(np.int16), np.diag([1.4, 1.4, 10, 1])), str(copy))
    again = _nifti(tmp_path / "B_again.nii.gz", _image((24, 24, 3, 2), 1))
    near = _nifti(tmp_path / "D.nii.gz", _image((24, 24, 3, 2), 0) + 1e-3)  # one value off everywhere: its own scan
    listed = [("a", a), ("b", b), ("c", copy), ("b", again), ("d", near)]
    good, errors = valid_scan_patients(group_scans(listed))
    assert [(p.id, [s.path for s in p.scans]) for p in good] == [("a", [a]), ("b", [b]), ("d", [near])]
    assert [str(e) for e in errors] == [
        f"{again}: holds the voxels of the same patient's {b}, a copy; left out (a scan in two splits scores the "
        "model on what it trained on)",
        f"{copy}: holds the voxels of patient a's {a}, a copy; left out (a scan in two splits scores the model on "
        "what it trained on)",
    ]
    with pytest.raises(DataError, match="B_again.nii.gz: holds the voxels of the same patient's"):
        valid_scan_patients(group_scans(listed), strict=True)


def test_prepare_scans_says_what_reading_each_scan_did(tmp_path):
    """A MONOCHROME1 series is read as it is shown, into the slices a model trains on: prepare --scans now says so,
    as upscale does, once per scan kept (a copy left out says nothing more)."""
    from dicom_series import Cine, write_cine

    from heart_sr_tf.data.scan_patients import group_scans, valid_scan_patients

    values = np.round(_image((24, 24, 3, 2), 2))
    shown = lambda z, t, ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1")  # noqa: E731
    write_cine(tmp_path / "m1", Cine(values, slope=1.0, intercept=0.0), edit=shown)
    write_cine(tmp_path / "m1_again", Cine(values, slope=1.0, intercept=0.0), edit=shown)
    b = _nifti(tmp_path / "B.nii.gz", _image((24, 24, 3, 2), 1))
    notes: list[str] = []
    good, errors = valid_scan_patients(
        group_scans([("a", tmp_path / "m1"), ("b", b), ("c", tmp_path / "m1_again")]), notes=notes
    )
    assert [p.id for p in good] == ["a", "b"] and len(errors) == 1  # the copy left out
    assert len(notes) == 1 and notes[0].startswith(f"{tmp_path / 'm1'}: MONOCHROME1 (low values shown bright)")


def test_clinical_validation_on_a_labs_scans_against_full_resolution(lab_data, tiny_export, tmp_path):
    """train.clinical_segmenter on a dataset of a lab's scans: the validation patients' scans, their ED and ES
    frames (full resolution's largest and smallest LV), measured against full resolution's segmentation; doing
    nothing (the first baseline) removes nothing by definition."""
    from heart_sr_tf.commands.train import clinical_validation
    from heart_sr_tf.config import load_config
    from heart_sr_tf.data.prepare import split_scans
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.srgan_trainer import train_srgan

    data_dir, _ = lab_data
    config = load_config(Path(__file__).resolve().parent / "configs" / "tiny.toml")
    config.train.stages = config.train.stages[:1]
    config.train.stages[0].steps = 10
    config.train.clinical_segmenter = str(Path(__file__).resolve().parents[1] / "saved_models" / "segmenter")
    run = Run.create(tmp_path, "clinical", config, data_dir=data_dir, init_from=tiny_export)
    lines = []
    validation = clinical_validation(run, True, lines.append)
    scans = [scan for _, scan in split_scans(data_dir, "validation")]
    frames = sum(2 if read_scan(scan).data.ndim == 4 else 1 for scan in scans)
    assert len(validation.passes) == frames and f"{len(scans)} validation scans, {frames} ED/ES frames" in lines[0]
    for one, _ in validation.passes:
        assert set(one.segmented) == {"hr", *config.degradation.baselines}
    baseline = config.degradation.baselines[0]
    nothing = validation.reference_figures()[baseline]
    assert [nothing[f"clinical_removed_{k}"] for k in ("lv", "myo", "rv")] == [0.0, 0.0, 0.0]
    result = train_srgan(run, quiet=True, extra_validation=validation)
    rows = run.metrics_rows()
    assert rows[0]["stage"] == "start" and "val_clinical_removed_myo" in rows[0]
    assert float(rows[-1]["val_clinical_hr_lvef_mae"]) == pytest.approx(result.validation["clinical_hr_lvef_mae"])
    line = validation.line(result.validation)
    assert "model removes" in line
