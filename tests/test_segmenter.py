"""The segmenter: trained by the one training loop, exported with the documented signature, and used by
``evaluate --clinical``."""

import csv
import json
import subprocess
import sys

import nibabel as nib
import numpy as np
import pydicom
import pytest
import tensorflow as tf
from gzip_header import recorded_name
from in_process import run_cli

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.inference.segmenter import Segmenter


def test_segmenter_training_lowers_its_loss_and_logs_dice(tiny_segmenter):
    run, _ = tiny_segmenter
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    losses = [float(r["seg_loss"]) for r in rows if r.get("seg_loss")]
    assert losses[-1] < 0.8 * losses[0], losses
    dice = [float(r["val_dice_LV"]) for r in rows if r.get("val_dice_LV")]
    assert dice and all(0.0 <= d <= 1.0 for d in dice)


def test_segmenter_training_resumes_at_its_step_and_extends(tiny_segmenter, tmp_path):
    """A segmenter run resumed with more steps in its config.toml continues at the saved step (one metrics row
    per step logged); a run of another kind, or a data folder that is gone, is one line."""
    import re
    import shutil

    run = tmp_path / "seg"
    shutil.copytree(tiny_segmenter[0], run)
    config = run / "config.toml"
    config.write_text(re.sub(r"(?m)^steps = 120$", "steps = 140", config.read_text()))
    wrong = run_cli("train", "srgan", "--resume", run, cwd=tmp_path)
    assert wrong.returncode == 2 and wrong.stderr.strip() == (
        f"error: {run}: a segmenter run; resume it with `train segmenter`"
    ), wrong.stderr[-2000:]
    resumed = run_cli("train", "segmenter", "--resume", run, "--quiet", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert (run / "checkpoints" / "ckpt-140.index").is_file() and not (run / ".heart-sr-train.lock").exists()
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    assert steps == sorted(set(steps)) and steps[-1] == 140 and 120 in steps and 140 in steps
    (run / "data_dir").write_text(str(tmp_path / "moved") + "\n")
    gone = run_cli("train", "segmenter", "--resume", run, cwd=tmp_path)
    assert gone.returncode == 2 and gone.stderr.strip() == (
        f"error: {run}: its data folder {tmp_path / 'moved'} is gone; give --acdc-dir"
    ), gone.stderr[-2000:]


def test_exported_segmenter_signature(tiny_segmenter):
    _, export = tiny_segmenter
    signature = tf.saved_model.load(str(export / "1")).signatures["serving_default"]
    images = np.random.default_rng(0).random((2, 37, 53, 1), dtype=np.float32)  # any size, not a multiple of 8
    out = signature(image=tf.constant(images))
    assert out["labels"].dtype == tf.int32 and tuple(out["labels"].shape) == (2, 37, 53)
    probabilities = out["probabilities"].numpy()
    assert probabilities.shape == (2, 37, 53, 4)
    np.testing.assert_allclose(probabilities.sum(-1), 1.0, atol=1e-5)
    assert (np.argmax(probabilities, -1) == out["labels"].numpy()).all()
    meta = json.loads((export / "1" / "assets.extra" / "heart_sr_metadata.json").read_text())
    assert meta["kind"] == "segmenter" and meta["labels"]["3"] == "LV"
    segmenter = Segmenter(export, batch_size=1)  # two batches, put back together
    assert segmenter.volume(images[..., 0]).shape == (2, 37, 53)
    labels, _, unsure = segmenter.volume_and_kept(images[..., 0])  # each structure's probability within (0.2, 0.8)
    assert (labels == segmenter.volume(images[..., 0])).all()
    for name, label in (("RV", 1), ("myocardium", 2), ("LV", 3)):
        p = probabilities[..., label]
        assert (unsure[name] == ((p > 0.2) & (p < 0.8))).all()
    assert 0 < sum(int(m.sum()) for m in unsure.values()) < 3 * images.size  # some voxels, not all


def test_evaluate_clinical_reports_every_input(tiny_export, tiny_segmenter, phantom_tfds, tmp_path):
    _, export = tiny_segmenter
    args = ["evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical",
            "--segmenter", str(export), "--out", str(tmp_path), "--figures", "0", "--roi", "full"]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "Clinical fidelity" in result.stdout and "full resolution" in result.stdout
    summary = json.loads((tmp_path / "clinical.json").read_text())["summary"]
    assert set(summary) == {"hr", "bicubic", "blocky", "model"}  # the tiny model is a decimation model
    for s in summary.values():
        assert s["patients"] == 1 and s["frames"] == 2  # the one test phantom, ED and ES
        assert all(0.0 <= v <= 1.0 for v in s["dice"].values())
    assert all(abs(v - 100.0) < 1e-6 or np.isnan(v) for v in summary["hr"]["gap_closed"].values())
    assert all(abs(v) < 1e-6 or np.isnan(v) for v in summary["bicubic"]["gap_closed"].values())
    assert summary["hr"]["agreement_with_hr"] == {"LV": 1.0, "myocardium": 1.0, "RV": 1.0}
    assert all(0.0 <= v <= 1.0 for s in summary.values() for v in s["agreement_with_hr"].values())
    assert all(abs(v) < 1e-6 or np.isnan(v) for v in summary["bicubic"]["disagreement_removed"].values())
    rows = list(csv.DictReader((tmp_path / "clinical_patients.csv").open()))
    assert {r["method"] for r in rows} == set(summary) and float(rows[0]["truth_LVEDV"]) > 0
    assert 1.0 < float(rows[0]["truth_ED_wall_mm"]) < 30.0  # the phantom's own wall, in mm
    assert (tmp_path / "clinical_bland_altman.png").stat().st_size > 10_000
    markdown = (tmp_path / "summary.md").read_text()
    assert "## Clinical fidelity" in markdown and "absolute error minus full resolution's" in markdown
    assert summary["hr"]["error_minus_hr"]["LVEDV"]["mean"] == 0.0  # full resolution against itself
    # Every frame says what the post-processing kept; the frames in pieces are listed per input (or none).
    frames = list(csv.DictReader((tmp_path / "clinical_frames.csv").open()))
    assert all(0 < float(r[f"kept_{k}"]) <= 1 for r in frames for k in ("LV", "myocardium", "RV"))
    assert "Segmentations in pieces" in markdown and "full resolution: " in markdown


def test_frames_in_pieces_are_listed_per_input():
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.clinical import ClinicalResult, DegradedFrame, pieces_lines

    labels = np.zeros((4, 20, 20), np.uint8)
    labels[:2, 2:10, 2:10] = 3
    frame = DegradedFrame("p1", "NOR", "ED", 0.01, (1.0, 1.0), np.zeros((4, 7, 7)), labels, {})
    result = ClinicalResult("test", "m", "seg", Degradation("kspace", 3))
    shares = {"hr": {"LV": 1.0, "myocardium": 1.0, "RV": 1.0}, "model": {"LV": 0.57, "myocardium": 1.0, "RV": 0.64}}
    result.add(frame, {"hr": labels, "model": labels}, kept=shares)
    assert pieces_lines(result)[1].endswith("full resolution: none; model: p1 ED LV 57%.")
    unknown = ClinicalResult("test", "m", "seg", Degradation("kspace", 3))
    unknown.add(frame, {"hr": labels})  # shares not known (training's validation): nothing said
    assert pieces_lines(unknown) == []


def test_evaluate_clinical_through_several_segmenters(tiny_export, tiny_segmenter, phantom_tfds, tmp_path):
    """Each segmenter measures the same images; the first's results in OUT, the other's in OUT/clinical_NAME, and
    a table across them. Two copies of one segmenter must measure exactly alike."""
    import shutil

    _, export = tiny_segmenter
    twin = tmp_path / "twin"
    shutil.copytree(export, twin)
    out = tmp_path / "out"
    args = ["evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--segmenter", str(export),
            "--segmenter", str(twin), "--out", str(out), "--figures", "0", "--roi", "full", "--quiet"]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    first = json.loads((out / "clinical.json").read_text())
    second = json.loads((out / "clinical_twin_v1" / "clinical.json").read_text())
    assert second["segmenter"].endswith("twin/1") and first["segmenter"] != second["segmenter"]
    assert first["summary"] == second["summary"]
    from heart_sr_tf.evaluation.clinical_panel import mass_bias_minus_hr

    markdown = (out / "summary.md").read_text()
    assert "## Clinical fidelity across 2 segmenters" in markdown and markdown.count("| ") > 10
    assert "| LV sure / unsure | myocardium sure / unsure | RV sure / unsure |" in markdown
    frames = list(csv.DictReader((out / "clinical_frames.csv").open()))
    assert all(int(r["disagree_RV_unsure_voxels"]) <= int(r["disagree_RV_voxels"]) for r in frames)
    assert all(int(r["disagree_LV_voxels"]) == 0 for r in frames if r["method"] == "hr")
    model, hr = (first["summary"][m]["measures"]["myo_mass"]["bias"] for m in ("model", "hr"))
    rows = list(csv.DictReader((out / "clinical_patients.csv").open()))
    assert mass_bias_minus_hr(rows)["mean"] == pytest.approx(model - hr)  # the same truth: bias minus bias
    assert f"{model - hr:+.1f} to {model - hr:+.1f} g" in markdown  # no spread between twins
    twice = run_cli("evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--segmenter", str(export),
                    "--segmenter", str(export), "--out", str(tmp_path / "x"), "--quiet")  # fmt: skip
    assert twice.returncode == 2 and "is given twice" in twice.stderr and len(twice.stderr.splitlines()) == 1
    assert not (tmp_path / "x").exists()  # refused before any work
    namesake = tmp_path / "elsewhere" / "twin"  # another folder whose results would land in OUT/clinical_twin_v1 too
    shutil.copytree(export, namesake)
    clash = run_cli("evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--segmenter", str(export),
                    "--segmenter", str(twin), "--segmenter", str(namesake), "--out", str(tmp_path / "y"),
                    "--quiet")  # fmt: skip
    assert clash.returncode == 2 and "clinical_twin_v1" in clash.stderr and len(clash.stderr.splitlines()) == 1
    assert not (tmp_path / "y").exists()


def test_agreement_with_full_resolution_is_dice_against_its_segmentation():
    """The label-free figure: each method's 3D Dice against full resolution's label map, and the share of the
    first baseline's disagreement it removes."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.clinical import ClinicalResult, DegradedFrame

    truth = np.zeros((2, 8, 8), np.int64)
    truth[:, 2:6, 2:6] = 3  # LV 32 voxels
    truth[:, 0:2, :] = 1  # RV 32 voxels
    hr = truth.copy()
    low = truth.copy()
    low[:, 2:6, 2:4] = 0  # loses half the LV: Dice with hr 2 * 16 / 48
    model = truth.copy()
    model[:, 2:6, 2:3] = 0  # loses a quarter: 2 * 24 / 56
    result = ClinicalResult("test", "x", "seg", Degradation("kspace", 3))
    for phase in ("ED", "ES"):
        frame = DegradedFrame("p1", "NOR", phase, 1.0, (1.0, 1.0), np.zeros((2, 3, 3), np.float32), truth, {})
        result.add(frame, {"hr": hr, "zero_fill": low, "bicubic": low, "model": model})
    summary = result.summary()
    assert summary["model"]["agreement_with_hr"]["LV"] == pytest.approx(48 / 56)
    assert summary["zero_fill"]["agreement_with_hr"]["LV"] == pytest.approx(32 / 48)
    removed = (48 / 56 - 32 / 48) / (1 - 32 / 48) * 100
    assert summary["model"]["disagreement_removed"]["LV"] == pytest.approx(removed)
    assert summary["model"]["interval_95"]["disagreement_removed"]["LV"] == pytest.approx((removed, removed))
    assert summary["model"]["agreement_with_hr"]["RV"] == 1.0 and np.isnan(
        summary["model"]["disagreement_removed"]["RV"]
    )  # no disagreement to remove


def test_disagreement_is_split_by_where_full_resolution_was_unsure():
    """Voxels disagreeing with full resolution's label map, counted where the segmenter was unsure of the
    structure at full resolution and where it was sure, summed over frames; the share of the first baseline's
    removed in each; and the table in summary.md."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.clinical import ClinicalResult, DegradedFrame, clinical_markdown

    truth = np.zeros((2, 8, 8), np.int64)
    truth[:, 2:6, 2:6] = 3  # LV 32 voxels
    low, model = truth.copy(), truth.copy()
    low[:, 2:6, 2:4] = 0  # 16 LV voxels lost: 8 in column 2 (unsure below), 8 in column 3 (sure)
    model[:, 2:6, 2:3] = 0  # 8 lost, all in column 2
    unsure = {name: np.zeros(truth.shape, bool) for name in ("LV", "myocardium", "RV")}
    unsure["LV"][:, :, 2] = True  # the segmenter's own border of the LV at full resolution
    result = ClinicalResult("test", "x", "seg", Degradation("kspace", 3))
    for phase in ("ED", "ES"):
        frame = DegradedFrame("p1", "NOR", phase, 1.0, (1.0, 1.0), np.zeros((2, 3, 3), np.float32), truth, {})
        result.add(frame, {"hr": truth, "zero_fill": low, "bicubic": low, "model": model}, unsure=unsure)
    summary = result.summary()
    assert summary["zero_fill"]["disagreement_voxels"]["LV"] == {"sure": 16, "unsure": 16}  # two frames
    assert summary["model"]["disagreement_voxels"]["LV"] == {"sure": 0, "unsure": 16}
    assert summary["hr"]["disagreement_voxels"]["LV"] == {"sure": 0, "unsure": 0}
    assert summary["model"]["disagreement_removed_where"]["LV"] == {"sure": 100.0, "unsure": 0.0}
    assert np.isnan(summary["model"]["disagreement_removed_where"]["RV"]["sure"])  # nothing to remove
    assert "| model | 0 / 16 (100% / 0% removed) | 0 / 0 (- / - removed) |" in clinical_markdown(result, summary)
    unknown = ClinicalResult("test", "x", "seg", Degradation("kspace", 3))
    unknown.add(frame, {"hr": truth, "zero_fill": low, "bicubic": low, "model": model})  # training's validation
    assert "disagreement_voxels" not in unknown.summary()["model"]
    assert "sure / unsure" not in clinical_markdown(unknown)


def test_compare_clinical_is_model_a_minus_model_b_patient_by_patient(
    tiny_export, tiny_segmenter, phantom_tfds, tmp_path
):
    import shutil

    _, export = tiny_segmenter
    first = tmp_path / "a"
    args = ["evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--segmenter", str(export),
            "--out", str(first), "--figures", "0", "--roi", "full", "--quiet"]  # fmt: skip
    assert run_cli(*args).returncode == 0
    second, third = tmp_path / "b", tmp_path / "c"
    for folder, method, change in ((second, "model", -0.1), (third, "hr", -0.1)):
        shutil.copytree(first, folder)
        rows = list(csv.DictReader((first / "clinical_frames.csv").open()))
        for row in rows:
            if row["method"] == method:
                row["dice_LV"] = str(float(row["dice_LV"]) + change)
        with (folder / "clinical_frames.csv").open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)
    from heart_sr_tf.evaluation.clinical_compare import compare, read_clinical

    same = compare(read_clinical(first), read_clinical(first))
    assert same["patients"] == 1 and same["dice"]["LV"] == {"mean": 0.0, "low": 0.0, "high": 0.0}
    # B's model lost 0.1 of LV Dice on every frame: A minus B is +0.1, with no spread; nothing else moved.
    result = compare(read_clinical(first), read_clinical(second))
    assert (result["dice"]["LV"]["mean"], result["dice"]["LV"]["low"]) == pytest.approx((0.1, 0.1))
    assert result["dice"]["RV"]["mean"] == 0.0 and result["error"]["LVEDV"]["mean"] == 0.0
    out = run_cli("compare-clinical", first, second)
    assert out.returncode == 0 and "| LV | +0.1000 [+0.1000, +0.1000]" in out.stdout
    # An evaluation without a measure (e.g. one made before the wall thickness was measured): said, not "nan".
    rows = list(csv.DictReader((second / "clinical_patients.csv").open()))
    with (second / "clinical_patients.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=[c for c in rows[0] if "LVEDV" not in c], extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    older = run_cli("compare-clinical", first, second)
    assert older.returncode == 0 and "| LVEDV, ml | no patient with a value in both |" in older.stdout
    assert "nan" not in older.stdout and "| LVESV, ml | +0.0 [+0.0, +0.0] |" in older.stdout
    # Full resolution segments differently in C: not the same frames or segmenter, refused in one line.
    refused = run_cli("compare-clinical", first, third)
    assert refused.returncode == 2 and "differ from" in refused.stderr and len(refused.stderr.splitlines()) == 1
    missing = run_cli("compare-clinical", first, tmp_path / "nowhere")
    assert missing.returncode == 2 and "not an evaluate --clinical output" in missing.stderr
    (third / "clinical_frames.csv").write_text("patient,phase\np1,ED\n")  # a table that is not ours: one line
    foreign = run_cli("compare-clinical", first, third)
    assert foreign.returncode == 2 and "lacks the column(s) method, dice_LV" in foreign.stderr
    assert len(foreign.stderr.splitlines()) == 1


def test_upscale_measure_writes_labels_and_volumes(tiny_export, short_cine, tmp_path):
    import nibabel as nib

    src = short_cine
    out = tmp_path / "up.nii.gz"
    args = ["upscale", src, out, "--model", tiny_export, "--measure", "--quiet"]  # the shipped segmenter
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "LVEF" in result.stdout and "automatic segmenter trained on ACDC" in result.stdout
    labels = nib.load(str(tmp_path / "up_labels.nii.gz"))
    assert recorded_name(tmp_path / "up_labels.nii.gz") == "up_labels.nii"  # not its temporary file's name
    assert labels.shape == nib.load(str(out)).shape and labels.get_data_dtype() == np.uint8
    assert bytes(labels.header["descrip"]).startswith(b"heart-sr labels: 0 background, 1 RV")
    np.testing.assert_allclose(labels.affine, nib.load(str(out)).affine)
    assert set(np.unique(np.asarray(labels.dataobj))) <= {0, 1, 2, 3}
    lines = (tmp_path / "up_volumes.csv").read_text().splitlines()
    assert lines[0].startswith("# volumes from an automatic segmenter trained on ACDC")
    rows = list(csv.DictReader([line for line in lines if not line.startswith("#")]))
    assert len(rows) == labels.shape[3]
    phases = {r["phase"] for r in rows} - {""}
    if any(float(r["LV_ml"]) > 0 for r in rows):  # one frame is ED and one ES (the same when the LV never moves)
        assert phases in ({"ED", "ES"}, {"ED/ES"})
    else:
        assert not phases and "no LV" in result.stdout
    assert all(float(r["LV_ml"]) >= 0 for r in rows)
    # The wall thickness is measured wherever the frame has both an LV and its myocardium, in mm.
    assert all(r["LV_wall_mm"] == "" or 0 < float(r["LV_wall_mm"]) < 40 for r in rows)
    # Each structure's share of its labelled voxels that the largest component kept, 1 where none was labelled.
    assert all(0 < float(r[f"{k}_kept"]) <= 1 for r in rows for k in ("LV", "myocardium", "RV"))
    # Beside each value, the same segmenter's on the scan as acquired (IN), on the same grid: measured apart.
    assert any(line.startswith("# acquired_* columns: the same segmenter on the scan as acquired") for line in lines)
    seg = Segmenter()
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.volumes.measure import _segmented

    class Bar:
        def update(self, n):
            pass

    _, alone, _ = _segmented(read_scan(src), seg, Bar())
    for row, expected in zip(rows, alone, strict=True):
        for k in ("LV", "RV", "myocardium"):
            assert float(row[f"acquired_{k}_ml"]) == pytest.approx(expected[f"{k}_ml"])
    assert any(float(r["acquired_LV_ml"]) != float(r["LV_ml"]) for r in rows)  # two scans, two measurements
    assert "(the scan as acquired: " in result.stdout
    again = run_cli(*args)  # nothing overwritten
    assert again.returncode == 2 and "exists; pass --overwrite" in again.stderr


def test_upscale_measure_of_a_dicom_series_writes_a_dicom_seg_series_beside_it(tiny_export, short_cine, tmp_path):
    """A derived DICOM series measured: the labels also as a DICOM SEG series (``OUT_seg/``), one instance per
    frame, in the study, each frame referencing the derived image it segments, and the same labels as the NIfTI
    label map; its folder, like the series', is replaced only with --overwrite and only when the tool wrote it."""
    import highdicom as hd
    from dicom_series import Cine, write_cine

    from heart_sr_tf.data.dicom import read_series
    from heart_sr_tf.errors import DataError

    values = np.asarray(nib.load(str(short_cine)).dataobj, np.float32)
    values = np.round(values / values.max() * 2000) * 2.0 - 10.0  # what a 12-bit series with slope 2 holds

    def body(z, t, ds):  # the patient's height (m) and weight (kg), as scanners record them
        ds.PatientSize, ds.PatientWeight = "1.72", "68"

    write_cine(tmp_path / "study", Cine(values, spacing=(1.5, 1.5), gap=8.0), edit=body)
    out = tmp_path / "sr"
    args = ["upscale", tmp_path / "study", str(out) + "/", "--model", tiny_export, "--measure", "--quiet"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    seg_dir = tmp_path / "sr_seg"
    assert f"wrote {seg_dir} (the labels as a DICOM SEG series" in result.stdout
    derived = read_series(out)
    labels = np.asarray(nib.load(str(tmp_path / "sr_labels.nii.gz")).dataobj)
    files = sorted(seg_dir.glob("SEG*.dcm"))
    assert len(files) == values.shape[3] == labels.shape[3]
    for t, file in enumerate(files):
        seg = hd.seg.segread(file)
        assert seg.StudyInstanceUID == derived.headers[0][0].StudyInstanceUID and seg.SeriesNumber == 2007
        assert [s.SegmentLabel for s in seg.SegmentSequence] == ["RV", "myocardium", "LV"]
        assert [s.SegmentedPropertyTypeCodeSequence[0].CodeValue for s in seg.SegmentSequence] == [
            "53085002", "49848007", "87878005"
        ]  # fmt: skip
        sources = [derived.headers[z][t].SOPInstanceUID for z in range(labels.shape[2])]
        pixels = seg.get_pixels_by_source_instance(sources, combine_segments=True)  # [slice, row, column]
        np.testing.assert_array_equal(pixels, np.transpose(labels[:, :, :, t], (2, 1, 0)))
    assert len({hd.seg.segread(f).SeriesInstanceUID for f in files}) == 1
    with pytest.raises(DataError, match="holds no DICOM image \\(only: a Segmentation Storage\\)"):
        read_series(seg_dir)  # labels, not an image series: never upscaled as one
    # the cine's measurements as a DICOM SR measurement report, each volume referencing its frame's SEG segment
    from heart_sr_tf.cardiac_metrics import cine_measurements
    from heart_sr_tf.volumes.measure import read_volumes

    report_dir = tmp_path / "sr_sr"
    assert f"wrote {report_dir} (the measurements as a DICOM SR measurement report" in result.stdout
    (report_file,) = report_dir.glob("*.dcm")
    report = pydicom.dcmread(report_file)
    assert report.StudyInstanceUID == derived.headers[0][0].StudyInstanceUID and report.SeriesNumber == 3007
    assert report.CompletionFlag == "PARTIAL" and report.VerificationFlag == "UNVERIFIED"
    found = _sr_measurements(report.ContentSequence)
    expected = cine_measurements(read_volumes(tmp_path / "sr_volumes.csv"))
    codes = {"8821-1": "LVEDV_ml", "8823-7": "LVESV_ml", "8822-9": "RVEDV_ml", "8824-5": "RVESV_ml",
             "18087-7": "myo_mass_g", "122445": "ED_wall_mm", "8811-2": "LVEF_pct", "8818-7": "RVEF_pct"}  # fmt: skip
    defined = {code: key for code, key in codes.items() if np.isfinite(expected[key])}
    assert {code for code, _, _ in found} == set(defined) and "8821-1" in defined
    for code, value, segment in found:
        assert value == pytest.approx(expected[defined[code]], abs=0.006), code
        if code not in ("8811-2", "8818-7"):  # a volume: its structure's segment in its phase's SEG instance
            frame = expected["ES_frame"] if code in ("8823-7", "8824-5") else expected["ED_frame"]
            number = {"8821-1": 3, "8823-7": 3, "8822-9": 1, "8824-5": 1}.get(code, 2)  # LV 3, RV 1, myocardium 2
            assert segment == (hd.seg.segread(files[int(frame) - 1]).SOPInstanceUID, number), code
        else:
            assert segment is None
    # indexed to the body surface area from the header, in the summary, the volume table and a cohort's table
    from heart_sr_tf.cohort.jobs import Job
    from heart_sr_tf.cohort.measurements import write_measurements
    from heart_sr_tf.volumes.measure import read_body_surface

    bsa = (172 * 68 / 3600) ** 0.5
    assert read_body_surface(tmp_path / "sr_volumes.csv") == pytest.approx(bsa, abs=1e-4)
    assert f"body surface area (Mosteller): {bsa:.2f} m2, from the DICOM header's height 1.72 m" in result.stdout
    edv = f"{expected['LVEDV_ml']:.1f} / {expected['LVESV_ml']:.1f} ml ({expected['LVEDV_ml'] / bsa:.1f} / "
    assert f"LV end-diastolic / end-systolic volume: {edv}" in result.stdout
    table, count, _ = write_measurements([Job(tmp_path / "study", out, dicom=True)], tmp_path)
    (row,) = csv.DictReader(table.read_text().splitlines()[1:])
    assert count == 1 and float(row["BSA_m2"]) == pytest.approx(bsa, abs=0.01) and row["patient"] == ""
    table, _, _ = write_measurements([Job(tmp_path / "study", out, dicom=True, patient_id="P-0042")], tmp_path)
    assert next(csv.DictReader(table.read_text().splitlines()[1:]))["patient"] == "P-0042"
    assert float(row["LVEDVi_ml_m2"]) == pytest.approx(expected["LVEDV_ml"] / bsa, abs=0.01)
    assert float(row["acquired_myo_mass_i_g_m2"]) == pytest.approx(float(row["acquired_myo_mass_g"]) / bsa, abs=0.01)
    again = run_cli(*args)
    assert again.returncode == 2 and "pass --overwrite" in again.stderr
    assert run_cli(*args, "--overwrite").returncode == 0 and len(list(seg_dir.glob("SEG*.dcm"))) == len(files)
    for file in seg_dir.iterdir():  # a folder of that name holding what the tool did not write: refused first
        file.unlink()
    (seg_dir / "notes.txt").write_text("a lab's file")
    before = sorted(p.stat().st_mtime_ns for p in out.iterdir())
    foreign = run_cli(*args, "--overwrite")
    assert foreign.returncode == 2 and f"{seg_dir}: a folder that holds files the tool did not write" in foreign.stderr
    assert (seg_dir / "notes.txt").exists() and sorted(p.stat().st_mtime_ns for p in out.iterdir()) == before


def _sr_measurements(items, segment=None) -> list[tuple[str, float, tuple | None]]:
    """Every numeric measurement in an SR's content tree: its concept's code, its value, and the SEG segment
    (instance UID, segment number) its group references."""
    found = []
    for item in items:
        if item.ValueType == "IMAGE" and "ReferencedSegmentNumber" in item.ReferencedSOPSequence[0]:
            reference = item.ReferencedSOPSequence[0]
            segment = (reference.ReferencedSOPInstanceUID, int(reference.ReferencedSegmentNumber))
    for item in items:
        if item.ValueType == "NUM":
            found.append((item.ConceptNameCodeSequence[0].CodeValue, float(item.MeasuredValueSequence[0].NumericValue),
                          segment))  # fmt: skip
        elif "ContentSequence" in item:
            found += _sr_measurements(item.ContentSequence, segment)
    return found


def test_upscale_measure_takes_the_height_and_weight_a_nifti_scan_lacks(tiny_export, short_cine, tmp_path):
    """--height-cm and --weight-kg index a NIfTI scan's volumes to body surface area; both or neither, a patient's,
    and only with --measure: otherwise one line before any work."""
    from heart_sr_tf.volumes.measure import read_body_surface

    out = tmp_path / "out.nii.gz"
    args = ("--model", tiny_export, "--backend", "tensorflow", "--precision", "float32", "--quiet")
    result = run_cli("upscale", short_cine, out, *args, "--measure", "--height-cm", "180", "--weight-kg", "81")
    assert result.returncode == 0, result.stderr
    bsa = (180 * 81 / 3600) ** 0.5
    assert read_body_surface(tmp_path / "out_volumes.csv") == pytest.approx(bsa, abs=1e-4)
    assert (
        f"body surface area (Mosteller): {bsa:.2f} m2, from --height-cm/--weight-kg: height 1.80 m and weight 81.0 kg"
        in result.stdout
    )
    bad = tmp_path / "bad.nii.gz"
    for extra, message in [
        (
            ("--measure", "--height-cm", "1.8", "--weight-kg", "81"),
            "upscale: --height-cm 1.8, --weight-kg 81: not a patient's",
        ),
        (("--measure", "--height-cm", "180"), "upscale: --weight-kg is empty; give --height-cm and"),
        (("--height-cm", "180", "--weight-kg", "81"), "--height-cm and --weight-kg go with --measure"),
    ]:
        refused = run_cli("upscale", short_cine, bad, *args, *extra)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not bad.exists()


def test_options_that_would_be_ignored_are_refused_before_any_work(tiny_export, short_cine, tmp_path):
    """--segmenter without --measure and --scale with a local model were silently ignored: a model of another
    scale ran, a segmenter named for nothing. Now --scale is checked against the local model as against a
    server's, and each misplaced option is one line, nothing written."""
    out = tmp_path / "out.nii.gz"
    args = ("--model", tiny_export, "--backend", "tensorflow", "--precision", "float32", "--quiet")
    for command, extra, message in [
        ("upscale", ("--segmenter", "segmenter"), "--segmenter goes with --measure (it segments the result)"),
        ("upscale", ("--scale", "5"), f"{tiny_export}: the model upscales x3, not x5 as --scale says"),
        ("upscale", ("--scale", "3", "--through-plane"), "--scale goes with the in-plane model"),
        ("cohort", ("--segmenter", "segmenter"), "--segmenter goes with --measure (it segments each result)"),
    ]:
        where = ("--out-dir", tmp_path / "cohort") if command == "cohort" else (out,)
        refused = run_cli(command, short_cine, *where, *args, *extra)
        assert refused.returncode == 2 and message in refused.stderr, refused.stderr
        assert len(refused.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir())
    assert run_cli("upscale", short_cine, out, *args, "--scale", "3").returncode == 0


def test_a_segmenter_run_given_as_a_super_resolution_model_or_unexported_as_a_segmenter_is_one_line(
    tiny_segmenter, tiny_run, short_cine, tmp_path
):
    """A segmenter's training run as --model, --through-plane-model, evaluate's MODEL or cohort's --model ended in
    an AttributeError traceback (its config has no degradation, no generator); as --segmenter, a run not yet
    exported was "neither a SavedModel nor a model base path". Each is one line, exit 2, nothing written."""
    import importlib.util

    run, _ = tiny_segmenter
    out = tmp_path / "up.nii.gz"
    model = f"{run}: a segmenter run, not a super-resolution model (export it and use it with --segmenter)"
    for args in [
        ("upscale", short_cine, out, "--model", run),
        ("upscale", short_cine, out, "--through-plane-model", run),
        ("evaluate", run, "--limit", "1", "--out", tmp_path / "evaluation"),
        ("cohort", short_cine, "--out-dir", tmp_path / "cohort", "--model", run),
        ("upscale", short_cine, out, "--measure", "--segmenter", run),
        ("upscale", short_cine, out, "--measure", "--segmenter", tiny_run),
        ("cohort", short_cine, "--out-dir", tmp_path / "cohort", "--measure", "--segmenter", run),
    ]:
        if args[0] == "cohort" and importlib.util.find_spec("distributed") is None:
            continue  # (cohort runs on Dask: the cohort extra)
        refused = run_cli(*args, "--quiet")
        given = args[-1]
        message = model if "--segmenter" not in args else f"{given}: a training run, not an exported segmenter"
        assert refused.returncode == 2 and message in refused.stderr, (args, refused.stderr)
        assert len(refused.stderr.strip().splitlines()) == 1 and not list(tmp_path.iterdir()), args


def test_a_segmenter_and_a_super_resolution_model_given_for_each_other_are_named(tiny_export, short_cine, tmp_path):
    out = tmp_path / "up.nii.gz"
    swapped = run_cli("upscale", short_cine, out, "--model", "segmenter", "--quiet")
    assert swapped.returncode == 2 and "a segmenter, not a super-resolution model" in swapped.stderr, swapped.stderr
    swapped = run_cli("upscale", short_cine, out, "--model", tiny_export, "--measure", "--segmenter", tiny_export)
    assert swapped.returncode == 2 and "a super-resolution model, not a segmenter" in swapped.stderr, swapped.stderr
    assert not list(tmp_path.iterdir())
    image = nib.load(str(short_cine))
    lax = tmp_path / "lax.nii.gz"  # a long-axis cine: one slice, no ventricular volume to measure
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[:, :, :1], image.affine, image.header), str(lax))
    refused = run_cli("upscale", lax, out, "--model", tiny_export, "--measure")
    assert refused.returncode == 2 and "--measure: " in refused.stderr and "1 slice(s)" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not out.exists()
    across = run_cli("upscale", short_cine, out, "--through-plane-model", "segmenter", "--measure")
    assert across.returncode == 2 and not out.exists()  # refused from its metadata, before any model loads
    assert across.stderr.strip().endswith("a segmenter, not a super-resolution model (use it with --segmenter)")
    assert len(across.stderr.strip().splitlines()) == 1, across.stderr
    served = run_cli("upscale", short_cine, out, "--through-plane-server", "http://127.0.0.1:9", "--measure")
    assert "warning: --measure after --through-plane: volumes over the slices made between" in served.stderr
    assert served.returncode == 2 and not out.exists()  # (no server there: refused next)


def test_clinical_validation_figures_span_the_baseline_and_full_resolution(tiny_segmenter, phantom_root):
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.clinical_validation import FIGURES, ClinicalValidation

    _, export = tiny_segmenter
    validation = ClinicalValidation(Segmenter(export), phantom_root, 0, Degradation("kspace", 3), quiet=True)
    assert validation.patients == 1 and len(validation.frames) == 2  # the validation phantom's ED and ES
    frame, fixed = validation.frames[0]
    assert set(fixed) == {"hr", "zero_fill", "bicubic"} and frame.images == {}  # only LR is kept
    assert frame.lr.shape[1:] == (85, 85) and fixed["hr"].shape == frame.labels.shape
    reference = validation.reference_figures()
    # The model's figures with the baseline's label maps are the baseline's, with full resolution's are full's.
    as_baseline = validation.figures(validation.result({}))
    as_full = validation.figures(validation.result({i: f["hr"] for i, (_, f) in enumerate(validation.frames)}))
    for name in FIGURES:
        for got, want in ((as_baseline, reference["zero_fill"]), (as_full, reference["hr"])):
            assert got[name] == want[name] or (np.isnan(got[name]) and np.isnan(want[name])), name
    assert reference["hr"]["clinical_lvedv_mae"] >= 0  # (the tiny segmenter may find no LV: an EF of NaN)
    # The fixed methods are measured once, at set-up; a result built from scratch with every method is the same.
    from heart_sr_tf.evaluation.clinical import ClinicalResult

    model = {i: f["hr"] for i, (_, f) in enumerate(validation.frames)}
    scratch = ClinicalResult("validation", "training", "seg", validation.degradation)
    for index, (frame, fixed) in enumerate(validation.frames):
        scratch.add(frame, {**fixed, "model": model[index]})
    cached = validation.result(model)
    assert sorted(map(str, cached.frames)) == sorted(map(str, scratch.frames))
    assert str(cached.summary()) == str(scratch.summary())


def test_training_validates_the_clinical_figures(tiny_segmenter, phantom_tfds, tmp_path):
    """A config naming a segmenter: every validation row of metrics.csv carries the clinical figures, and the
    run ends with a clinical line next to the image metrics."""
    from pathlib import Path

    from heart_sr_tf.evaluation.clinical_validation import FIGURES

    _, export = tiny_segmenter
    tiny = (Path(__file__).parent / "configs" / "tiny.toml").read_text()
    config = tmp_path / "clinical.toml"
    config.write_text(tiny.replace("[train]\n", f'[train]\nclinical_segmenter = "{export}"\n'))
    args = ["train", "srgan", "--config", config, "--data-dir", phantom_tfds, "--runs-dir", tmp_path / "runs",
            "--name", "clinical", "--quiet"]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "clinical validation: 1 validation patients, 2 ED/ES frames" in result.stdout
    assert "validation, clinical" in result.stdout and "LVEF MAE" in result.stdout
    rows = [r for r in csv.DictReader((tmp_path / "runs" / "clinical" / "metrics.csv").open()) if r["val_psnr"]]
    assert len(rows) == 2  # step 10 and the final validation
    for row in rows:
        assert float(row["val_clinical_lvedv_mae"]) >= 0  # (the tiny segmenter's EF or gaps may be NaN)
        assert all(row.get(f"val_{k}") for k in FIGURES), row
    # Only an in-plane 2D generator is measured this way: refused by name, before any work.
    bad = tmp_path / "bad.toml"
    bad.write_text(config.read_text() + '\n[degradation]\nkind = "through_plane"\nfactor = 6\n')
    result = run_cli("train", "srgan", "--config", bad, "--data-dir", phantom_tfds, "--runs-dir", tmp_path / "runs")
    assert result.returncode == 2 and "clinical_segmenter" in result.stderr, result.stderr


def test_validation_labels_trace_once_per_network():
    """Each validation used to trace a new function (TensorFlow's retracing warning among the training's lines)."""
    import gc
    import weakref

    from heart_sr_tf.models.unet import unet_segmenter
    from heart_sr_tf.training import segmenter_trainer
    from heart_sr_tf.training.segmenter_trainer import predict_labels

    network = unet_segmenter(features=4, depth=2)
    images = np.random.default_rng(0).random((3, 32, 32, 1)).astype(np.float32)
    first = predict_labels(network, images, 2, batch_size=4)
    again = predict_labels(network, images, 2, batch_size=4)
    assert first.shape == (3, 32, 32) and first.dtype == np.uint8 and set(np.unique(first)) <= {0, 1, 2, 3}
    np.testing.assert_array_equal(first, again)
    assert segmenter_trainer._LABEL_FUNCTIONS[network][2].experimental_get_tracing_count() == 1
    held = weakref.ref(network)
    del network
    gc.collect()
    assert held() is None  # the cache keeps no network alive


def test_a_labs_own_segmenter_is_taken_on_its_signature(tiny_export, tiny_segmenter, short_cine, tmp_path):
    """A lab's own segmenter: a SavedModel with our segmenter's signature and no heart-sr metadata (here the tiny
    segmenter copied without assets.extra). It was refused ("not an exported segmenter"), though the README said
    any such SavedModel measures; now it measures as the same network with our metadata does, and every output
    names it instead of calling it ours, trained on ACDC. A SavedModel of another signature is one line."""
    import shutil

    import nibabel as nib

    from heart_sr_tf.commands.cohort import _check_measure
    from heart_sr_tf.export.layout import resolve_model_dir

    ours = resolve_model_dir(tiny_segmenter[1])
    lab = tmp_path / "lab_segmenter" / "1"
    shutil.copytree(ours, lab, ignore=shutil.ignore_patterns("assets.extra"))
    common = ["upscale", short_cine, "--model", tiny_export, "--measure", "--quiet", "--segmenter"]
    through_ours = run_cli(*common[:2], tmp_path / "a.nii.gz", *common[2:], ours)
    through_lab = run_cli(*common[:2], tmp_path / "b.nii.gz", *common[2:], lab)
    assert through_ours.returncode == 0 and through_lab.returncode == 0, through_lab.stderr[-2000:]
    a, b = (np.asarray(nib.load(str(tmp_path / f"{n}_labels.nii.gz")).dataobj) for n in "ab")
    np.testing.assert_array_equal(a, b)
    note = f"volumes from an automatic segmenter of your own ({lab})"
    assert (tmp_path / "b_volumes.csv").read_text().startswith(f"# {note}, on the 256x256 protocol grid")
    assert note in through_lab.stdout and "trained on ACDC" not in through_lab.stdout
    assert (tmp_path / "a_volumes.csv").read_text().startswith("# volumes from an automatic segmenter trained on ACDC")
    assert _check_measure([], lab) == str(lab.resolve())  # a cohort takes it too, its signature checked first
    check = f"from heart_sr_tf.commands.cohort import _check_measure; print(_check_measure([], {str(lab)!r}))"
    quiet = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True, timeout=300)
    assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr  # loaded without TensorFlow's start-up lines

    # A SavedModel without metadata whose signature is no segmenter's (a super-resolution model copied bare).
    bare = tmp_path / "bare_sr" / "1"
    shutil.copytree(tiny_export, bare, ignore=shutil.ignore_patterns("assets.extra"))
    refused = run_cli(*common[:2], tmp_path / "c.nii.gz", *common[2:], bare)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert f"error: {bare}: no heart-sr metadata, and its serving_default is no segmenter's (lr_image" in refused.stderr
    assert not list(tmp_path.glob("c*"))
    with pytest.raises(HeartSRError, match="--segmenter: .*is no segmenter's"):
        _check_measure([], bare)


def test_a_segmenter_fixed_to_one_image_size_says_so(tmp_path):
    """A lab's segmenter exported for one image size, given another, is one line rather than TensorFlow's error."""

    class Fixed(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 64, 64, 1], tf.float32, name="image")])
        def serve(self, image):
            probabilities = tf.concat([1.0 - image, image / 3, image / 3, image / 3], axis=-1)
            return {"labels": tf.argmax(probabilities, -1, output_type=tf.int32), "probabilities": probabilities}

    module = Fixed()
    tf.saved_model.save(module, str(tmp_path / "fixed" / "1"), signatures={"serving_default": module.serve})
    segmenter = Segmenter(tmp_path / "fixed")
    assert segmenter.size == (64, 64) and segmenter.labels(np.zeros((2, 64, 64), np.float32)).shape == (2, 64, 64)
    with pytest.raises(HeartSRError, match=r"fixed/1: takes images of 64 x 64 pixels only, and these are 256 x 256"):
        segmenter.labels(np.zeros((1, 256, 256), np.float32))
