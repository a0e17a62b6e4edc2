"""``evaluate --scans --clinical``: a lab's own scans, without labels, measured through every input against the
full-resolution scan's own segmentation and measurements."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.evaluation.scans_clinical import segmenter_grid

ROOT = Path(__file__).resolve().parents[1]


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_small_field_of_view_is_segmented_at_acdc_pixel_size():
    """A crop around the heart would be magnified on the protocol grid beyond anything the segmenter saw: it is
    resized to ACDC's typical pixel in the middle of the grid, its area in mm2 kept; a usual one is left alone."""
    rows, cols = np.mgrid[:255, :255]
    disk = (((rows - 127) ** 2 + (cols - 127) ** 2) < 60**2).astype(np.float32)
    images = np.stack([disk, disk])
    grid, mm = segmenter_grid(images, (0.4, 0.4))  # a field of view of 102 mm
    assert grid.shape == (2, 256, 256) and grid.min() >= 0 and grid.max() <= 1
    assert mm == pytest.approx((255 * 0.4 / 76, 255 * 0.4 / 76))  # 76 pixels of about 1.35 mm
    area = np.pi * (60 * 0.4) ** 2
    assert (grid[0] > 0.5).sum() * mm[0] * mm[1] == pytest.approx(area, rel=0.03)
    centre = np.argwhere(grid[0] > 0.5).mean(0)
    assert np.all(np.abs(centre - 127.5) < 1.5)
    same, same_mm = segmenter_grid(images, (1.2, 1.3))  # ACDC-like: as it is
    assert same is images and same_mm == (1.2, 1.3)


def test_evaluate_scans_clinical_measures_every_input_against_full_resolution(
    tiny_export, short_cine, phantom_root, tmp_path
):
    """Through the shipped segmenter (the default), which finds the phantoms' ventricles: the tiny one trained for
    the tests finds none in this cine, and a cine without an LV has no ejection fraction to check."""
    from heart_sr_tf.cardiac_metrics import cine_measurements
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.slices import scan_frames
    from heart_sr_tf.export.layout import read_metadata, resolve_model_dir
    from heart_sr_tf.inference.segmenter import Segmenter

    segmenter = ROOT / "saved_models" / "segmenter"
    folder = tmp_path / "scans"
    folder.mkdir()
    (folder / "cine.nii.gz").write_bytes(short_cine.read_bytes())  # three frames
    frame = sorted((phantom_root / "training" / "patient002").glob("*_frame??.nii.gz"))[0]
    (folder / "frame.nii.gz").write_bytes(frame.read_bytes())  # one frame: volumes, no cine measures
    out = tmp_path / "out"
    result = run_cli("evaluate", tiny_export, "--scans", folder, "--clinical", "--out", out, "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "## Clinical fidelity on the scans (2 scans, 4 frames, 1 cines)" in result.stdout
    assert "not a clinical measurement" in result.stdout and "model - aligned bicubic:" in result.stdout

    frames = _rows(out / "clinical_frames.csv")
    assert {r["method"] for r in frames} == {"hr", "bicubic", "blocky", "model"} and len(frames) == 4 * 4
    full = [r for r in frames if r["method"] == "hr"]
    assert all(float(r[f"agreement_{k}"]) == 1.0 for r in full for k in ("LV", "myocardium", "RV"))

    # the first frame's full-resolution volumes by hand: protocol slices, the segmenter, the scan's voxel size
    scan = read_scan(folder / "cine.nii.gz")
    degradation = Degradation.from_metadata(read_metadata(resolve_model_dir(tiny_export)))
    _, images = next(scan_frames(scan.data))
    hr = np.stack([degradation.pair_np(x)[1] for x in images])
    labels = Segmenter(segmenter).volume(hr)
    (nx, ny), zooms = scan.data.shape[:2], scan.zooms
    voxel_ml = zooms[0] * nx / 256 * zooms[1] * ny / 256 * zooms[2] / 1000
    first = next(r for r in full if r["scan"] == "cine.nii.gz" and r["frame"] == "1")
    assert float(first["LV_ml"]) == pytest.approx((labels == 3).sum() * voxel_ml, rel=1e-6)
    assert float(first["RV_ml"]) == pytest.approx((labels == 1).sum() * voxel_ml, rel=1e-6)
    assert (labels == 3).sum() > 0 and (labels == 1).sum() > 0

    # the cine's measurements from each input's own curve, full resolution's beside them; the frame has none
    from heart_sr_tf.evaluation.out_folder import MARKER, listed_outputs

    files = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MARKER)
    assert sorted(listed_outputs(out)) == files and "clinical_cines.csv" in files  # the marker names each one
    cines = _rows(out / "clinical_cines.csv")
    assert {r["scan"] for r in cines} == {"cine.nii.gz"} and len(cines) == 4
    by_method = {r["method"]: r for r in cines}
    curve = [r for r in full if r["scan"] == "cine.nii.gz"]
    lv = [float(r["LV_ml"]) for r in curve]
    assert float(by_method["hr"]["LVEF_pct"]) == pytest.approx(100 * (max(lv) - min(lv)) / max(lv), rel=1e-6)
    model = [r for r in frames if r["method"] == "model" and r["scan"] == "cine.nii.gz"]
    expected = cine_measurements([{**r, "frame": int(r["frame"])} for r in model])
    assert float(by_method["model"]["LVEDV_ml"]) == pytest.approx(expected["LVEDV_ml"], rel=1e-6)
    assert by_method["model"]["hr_LVEDV_ml"] == by_method["hr"]["LVEDV_ml"]

    # the cine's heart box: full resolution's segmentation of every frame, +10 px; the image metrics inside it
    from heart_sr_tf.metrics import image_metrics

    union = np.zeros(hr.shape[1:], bool)
    for _, each in scan_frames(scan.data):
        union |= Segmenter(segmenter).volume(np.stack([degradation.pair_np(x)[1] for x in each])).any(axis=0)
    rows_, cols_ = np.flatnonzero(union.any(1)), np.flatnonzero(union.any(0))
    height, width = hr.shape[1:]
    box = [max(rows_[0] - 10, 0), min(rows_[-1] + 11, height), max(cols_[0] - 10, 0), min(cols_[-1] + 11, width)]
    assert json.loads((out / "clinical.json").read_text())["heart_boxes"]["cine.nii.gz"] == box
    r0, r1, c0, c1 = box
    bicubic = degradation.baseline_images(degradation.pair_np(images[2])[0], hr.shape[1:])["bicubic"]
    by_hand = image_metrics(bicubic[r0:r1, c0:c1], hr[2, r0:r1, c0:c1])
    heart = [r for r in _rows(out / "per_slice.csv") if r["roi"] == "heart"]
    slices = 3 * len(images) + read_scan(folder / "frame.nii.gz").data.shape[2]  # the cine's 3 frames, the frame
    assert len(heart) == 3 * slices  # each slice inside its scan's box, through the model and the two baselines
    row = next(
        r for r in heart
        if (r["patient"], r["frame"], r["slice"], r["method"]) == ("cine.nii.gz", "1", "2", "bicubic")
    )  # fmt: skip
    assert float(row["psnr"]) == pytest.approx(by_hand["psnr"], rel=1e-6)
    assert float(row["ssim"]) == pytest.approx(by_hand["ssim"], rel=1e-6)
    assert "heart" in {r["roi"] for r in _rows(out / "summary.csv")}
    # the one pass scores the whole slices as evaluate --scans alone does
    alone = run_cli("evaluate", tiny_export, "--scans", folder, "--out", tmp_path / "alone", "--quiet")
    assert alone.returncode == 0, alone.stderr[-2000:]
    key = ("method", "patient", "frame", "slice")
    whole = {tuple(r[k] for k in key): r for r in _rows(out / "per_slice.csv") if r["roi"] == "scans"}
    single = {tuple(r[k] for k in key): r for r in _rows(tmp_path / "alone" / "per_slice.csv")}
    assert sorted(whole) == sorted(single) and len(whole) == 3 * slices
    for k, row in single.items():
        assert float(whole[k]["psnr"]) == pytest.approx(float(row["psnr"]), rel=1e-6)
        assert float(whole[k]["ssim"]) == pytest.approx(float(row["ssim"]), rel=1e-6)

    summary = json.loads((out / "clinical.json").read_text())["summary"]
    assert summary["hr"]["cine"]["LVEF_pct"]["mae"] == 0 and summary["model"]["cines"] == 1
    differences = [float(m["LV_ml"]) - float(h["LV_ml"]) for m, h in zip(model, curve, strict=True)]
    others = [float(m["LV_ml"]) - float(h["LV_ml"]) for m, h in zip(
        [r for r in frames if r["method"] == "model" and r["scan"] == "frame.nii.gz"],
        [r for r in full if r["scan"] == "frame.nii.gz"], strict=True)]  # fmt: skip
    mae = np.mean(np.abs(differences + others))
    assert summary["model"]["frame_volumes"]["LV_ml"]["mae"] == pytest.approx(mae, rel=1e-6, abs=1e-9)
    assert summary["bicubic"]["disagreement_removed"]["LV"] == 0  # the reference baseline of decimation
    assert "## Clinical fidelity on the scans" in (out / "summary.md").read_text()


def test_evaluate_scans_clinical_refusals(tiny_export, tiny_segmenter, short_cine, tmp_path):
    _, segmenter = tiny_segmenter
    two = run_cli(
        "evaluate", tiny_export, "--scans", short_cine, "--clinical", "--segmenter", segmenter, "--segmenter",
        "segmenter", "--out", tmp_path / "two",
    )  # fmt: skip
    assert two.returncode == 2 and "--scans --clinical measures through one segmenter" in two.stderr
    ladder = run_cli(
        "evaluate", tiny_export, "--scans", short_cine, "--clinical", "--acquisition-ladder", "--out", tmp_path / "l"
    )
    assert ladder.returncode == 2 and "drop --acquisition-ladder" in ladder.stderr
    import nibabel as nib

    nib.save(nib.Nifti1Image(np.ones((40, 40), np.float32), np.eye(4)), str(tmp_path / "slice.nii.gz"))
    flat = run_cli("evaluate", tiny_export, "--scans", tmp_path / "slice.nii.gz", "--clinical", "--out", tmp_path / "f")
    assert flat.returncode == 2 and "expected a 3D or 4D volume" in flat.stderr  # before any scoring
    through = ROOT / "saved_models" / "throughplane_x6"
    across = run_cli("evaluate", through, "--scans", short_cine, "--clinical", "--out", tmp_path / "t")
    assert across.returncode == 2 and "measures in-plane models" in across.stderr
    for refused in (two, ladder, flat, across):
        assert len(refused.stderr.strip().splitlines()) == 1, refused.stderr
    assert not [p for p in ("two", "l", "f", "t") if (tmp_path / p).exists()]


def test_clinical_measures_short_axis_stacks_only(tmp_path):
    """A long-axis cine (one slice) among a lab's scans gives no ventricular volumes: the clinical evaluation and
    validation leave it out with a line; the image metrics alone still score it."""
    import nibabel as nib

    from heart_sr_tf.errors import DataError
    from heart_sr_tf.evaluation.scans import check_scans

    values = np.random.default_rng(0).uniform(0, 100, (24, 20, 4, 2)).astype(np.float32)
    affine = np.diag([1.5, 1.5, 8.0, 1.0])
    nib.save(nib.Nifti1Image(values, affine), str(tmp_path / "sax.nii.gz"))
    nib.save(nib.Nifti1Image(values[:, :, :1], affine), str(tmp_path / "lax.nii.gz"))
    scans = [tmp_path / "lax.nii.gz", tmp_path / "sax.nii.gz"]
    assert check_scans(scans, (3, 4)).paths == scans
    stacks = check_scans(scans, (3, 4), stacks_only=True)
    assert stacks.paths == [tmp_path / "sax.nii.gz"] and stacks.shapes == [(24, 20, 4, 2)]
    assert stacks.left_out == [
        f"{tmp_path / 'lax.nii.gz'}: not measured: 1 slice(s): volumes need a short-axis stack of at least 3 slices "
        "(the segmenter knows short-axis images; a long-axis cine gives no volumes)"
    ]
    with pytest.raises(DataError, match="no scan can be scored: .*not measured"):
        check_scans(scans[:1], (3, 4), stacks_only=True)
    copy = tmp_path / "sax_again.nii"  # the same cine exported twice (another format and stored type): scored once,
    nib.save(nib.Nifti1Image(values.astype(np.float64), np.diag([1.4, 1.4, 10.0, 1.0])), str(copy))  # not twice
    once = check_scans([*scans, copy], (3, 4))
    assert once.paths == scans and once.left_out == [f"{copy}: holds the voxels of {scans[1]}, a copy: scored once"]
