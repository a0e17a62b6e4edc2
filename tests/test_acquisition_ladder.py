"""The acquisition ladder: milder k-space acquisitions of the same frames, and the model's equivalent one."""

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.evaluation.acquisition_ladder import (
    equivalent_factor,
    factor_text,
    ladder_equivalents,
    ladder_factors,
    rung_name,
)

ROOT = Path(__file__).resolve().parents[1]


def test_the_rungs_run_from_1_5_up_to_below_the_model_factor():
    assert ladder_factors(Degradation("kspace", 3)) == (1.5, 2.0, 2.5)
    assert ladder_factors(Degradation("kspace", 4)) == (1.5, 2.0, 2.5, 3.0, 3.5)
    assert ladder_factors(Degradation("kspace", 2)) == (1.5,)
    with pytest.raises(HeartSRError, match="k-space"):
        ladder_factors(Degradation("decimation", 3))
    assert rung_name(2.5) == "acquired_x2.5" and rung_name(2.0) == "acquired_x2"


def test_equivalent_factor_interpolates_linearly_from_the_harshest_rung_down():
    factors, values = [1.0, 1.5, 2.0, 3.0], [0.0, 0.02, 0.06, 0.10]
    assert equivalent_factor(factors, values, 0.08) == pytest.approx(2.5)
    assert equivalent_factor(factors, values, 0.02) == pytest.approx(1.5)
    assert equivalent_factor(factors, values, 0.01) == pytest.approx(1.25)
    assert equivalent_factor(factors, values, 0.12) == math.inf  # worse than the harshest acquisition
    assert equivalent_factor(factors[1:], values[1:], 0.01) == -math.inf  # better than the mildest rung
    assert equivalent_factor([1, 2, 3], [0.0, 0.08, 0.06], 0.07) == pytest.approx(2.5)  # not monotone: from the top
    assert factor_text(math.inf, factors) == "> x3" and factor_text(-math.inf, [1.5, 3]) == "< x1.5"
    assert factor_text(2.345, factors) == "x2.3"


def _frames(model_agreement: float, model_psnr: float, patients: int = 6, seed: int = 0) -> list[dict]:
    """Frame rows of an evaluation with a ladder at 1.5, 2, 2.5 and zero-filling at 3, each patient a little off
    the curve: the agreement falls by 0.05 and the PSNR by 5 dB per half factor."""
    rng = np.random.default_rng(seed)
    rows = []
    ladder = {"hr": (1.0, np.nan), "acquired_x1.5": (0.95, 40.0), "acquired_x2": (0.90, 35.0)}
    ladder.update({"acquired_x2.5": (0.85, 30.0), "zero_fill": (0.80, 25.0), "model": (model_agreement, model_psnr)})
    for p in range(patients):
        for phase in ("ED", "ES"):
            jitter = rng.normal(0, 0.005)
            for method, (agree, psnr) in ladder.items():
                a = 1.0 if method == "hr" else agree + jitter
                rows.append(
                    {
                        "patient": f"p{p}",
                        "phase": phase,
                        "method": method,
                        **{f"agreement_{k}": a for k in ("LV", "myocardium", "RV")},
                        "psnr": psnr + 20 * jitter,
                        "slices": 8 + p,
                    }
                )
    return rows


def test_the_equivalent_acquisition_of_known_frames():
    frames = _frames(model_agreement=0.875, model_psnr=37.5)
    out = ladder_equivalents(frames, (1.5, 2.0, 2.5), 3, "zero_fill", "model")
    for name in ("LV", "myocardium", "RV"):
        assert out[name]["factor"] == pytest.approx(2.25)
        assert out[name]["low"] <= 2.25 <= out[name]["high"] and out[name]["high"] - out[name]["low"] < 0.5
        assert out[name]["factors"] == [1.0, 1.5, 2.0, 2.5, 3.0]
    assert out["psnr"]["factor"] == pytest.approx(1.75)
    assert out["psnr"]["factors"] == [1.5, 2.0, 2.5, 3.0]  # full resolution's PSNR is not finite: not a rung
    beyond = ladder_equivalents(_frames(0.7, 20.0), (1.5, 2.0, 2.5), 3, "zero_fill", "model")
    assert beyond["RV"]["factor"] == math.inf and beyond["psnr"]["factor"] == math.inf
    assert beyond["RV"]["low"] == beyond["RV"]["high"] == 3.0  # the interval stays on the ladder


def test_evaluate_clinical_places_a_kspace_model_on_the_ladder(tiny_export, tiny_segmenter, phantom_tfds, tmp_path):
    _, export = tiny_segmenter
    shipped = ROOT / "saved_models" / "segmenter" / "2"  # it finds the phantom's heart; the tiny one, second, less
    args = ["evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--segmenter", str(shipped),
            "--segmenter", str(export), "--degradation", "kspace", "--acquisition-ladder", "--out", str(tmp_path),
            "--figures", "0", "--roi", "full", "--quiet"]  # fmt: skip
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    summary = json.loads((tmp_path / "clinical.json").read_text())["summary"]
    rungs = ["acquired_x1.5", "acquired_x2", "acquired_x2.5"]
    assert set(summary) == {"hr", "zero_fill", "bicubic", "model", *rungs}
    psnrs = [summary[m]["psnr"] for m in [*rungs, "zero_fill"]]
    assert all(a > b for a, b in zip(psnrs, psnrs[1:], strict=False)), psnrs  # milder acquisitions come closer
    assert psnrs[0] > 30 and summary["model"]["psnr"] > 10
    equivalent = summary["model"]["equivalent_acquisition"]
    for key in ("LV", "myocardium", "RV", "psnr"):
        e = equivalent[key]
        assert e["factor"] in (math.inf, -math.inf) or 1.0 <= e["factor"] <= 3.0
        assert 1.0 <= e["low"] <= e["high"] <= 3.0
    frames = list(csv.DictReader((tmp_path / "clinical_frames.csv").open()))
    assert {r["method"] for r in frames} == set(summary) and len(frames) == 2 * len(summary)
    assert all(r["psnr"] == "nan" for r in frames if r["method"] == "hr")
    markdown = (tmp_path / "summary.md").read_text()
    assert "Acquisition ladder" in markdown and "| acquired at x2, zero-filled |" in markdown
    assert "The model's equivalent acquisition" in markdown
    # Through the second segmenter too, and side by side in the table across the segmenters.
    (folder,) = tmp_path.glob("clinical_*/clinical.json")  # OUT/clinical_NAME: the second segmenter's
    second = json.loads(folder.read_text())["summary"]
    assert set(second["model"]["equivalent_acquisition"]) == {"LV", "myocardium", "RV", "psnr"}
    assert second["model"]["psnr"] == pytest.approx(summary["model"]["psnr"])  # the same images
    panel = markdown[markdown.index("## Clinical fidelity across 2 segmenters") :]
    assert "equivalent acquisition by agreement LV / myo / RV [95%]" in panel
    assert "; equivalent acquisition LV / myo / RV " in panel
    assert all(row.count("|") == 8 for row in panel.splitlines() if row.startswith("| ") and "segmenter" not in row)
    # the marker names every file the run wrote, the second segmenter's summary.md among them
    from heart_sr_tf.evaluation.out_folder import MARKER, listed_outputs

    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file() and p.name != MARKER)
    assert sorted(listed_outputs(tmp_path)) == files and f"{folder.parent.name}/summary.md" in files
    # compare-clinical sets it against an evaluation of the same frames without the ladder (its rows dropped).
    import shutil

    plain = tmp_path / "plain"
    plain.mkdir()
    shutil.copy(tmp_path / "clinical.json", plain / "clinical.json")
    for name in ("clinical_frames.csv", "clinical_patients.csv"):
        rows = list(csv.DictReader((tmp_path / name).open()))
        with (plain / name).open("w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(r for r in rows if not r["method"].startswith("acquired_"))
    compared = run_cli("compare-clinical", tmp_path, plain)
    assert compared.returncode == 0, compared.stderr
    assert "+0.0000 [+0.0000, +0.0000]" in compared.stdout  # the same model: no difference


def test_the_ladder_is_refused_without_clinical_or_for_other_degradations(tiny_export, phantom_tfds):
    alone = run_cli("evaluate", tiny_export, "--data-dir", phantom_tfds, "--acquisition-ladder")
    assert alone.returncode == 2 and "--clinical" in alone.stderr and len(alone.stderr.splitlines()) == 1
    decimation = run_cli("evaluate", tiny_export, "--data-dir", phantom_tfds, "--clinical", "--acquisition-ladder")
    assert decimation.returncode == 2 and "k-space" in decimation.stderr
    assert len(decimation.stderr.splitlines()) == 1


def test_the_ladder_leaves_the_other_inputs_noise_alone(tiny_export, tiny_segmenter, phantom_root):
    """With a noisy degradation the rungs draw their own noise: the model's and the baselines' figures are the
    same with and without the ladder."""
    from heart_sr_tf.evaluation.clinical import clinical_evaluation
    from heart_sr_tf.inference.predictor import load_local_model
    from heart_sr_tf.inference.segmenter import Segmenter

    predictor = load_local_model(tiny_export, "tensorflow", "float32")
    segmenter = Segmenter(tiny_segmenter[1])
    noisy = Degradation("kspace", 3, noise_sigma=(0.01, 0.03))
    runs = [
        clinical_evaluation(
            predictor, [segmenter], phantom_root, "train", 0, noisy, limit=1, quiet=True, ladder=ladder
        )[0]
        for ladder in ((), (1.5, 2.0, 2.5))
    ]
    plain, laddered = ([r for r in run.frames if not r["method"].startswith("acquired")] for run in runs)
    np.testing.assert_equal(plain, laddered)  # (NaN equal to NaN: full resolution's own PSNR)
    assert {r["method"] for r in plain} == {"hr", "zero_fill", "bicubic", "model"}
    assert all(np.isfinite(r["psnr"]) for r in plain if r["method"] != "hr")  # the noise shows in every PSNR
    assert len(runs[1].frames) == len(plain) + 3 * 2  # three rungs of the patient's ED and ES
