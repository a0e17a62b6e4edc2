import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from dicom_series import Cine, write_cine, write_localiser
from in_process import run_cli

from heart_sr_tf.data.degradation import lr_grid_np
from heart_sr_tf.data.interpolation import aligned_bicubic
from heart_sr_tf.evaluation.evaluate import evaluate, figures, iterate_slices, write_outputs
from heart_sr_tf.evaluation.out_folder import MARKER, listed_outputs
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.metrics import image_metrics

ROOT = Path(__file__).resolve().parents[1]


def test_model_and_both_baselines_on_the_same_slices(tiny_export, phantom_tfds, tmp_path):
    predictor = load_predictor(tiny_export)
    result = evaluate(predictor, phantom_tfds, "test", limit=5, quiet=True)
    summary = result.summary()
    assert set(summary) == {"full", "heart"}
    for roi in ("full", "heart"):
        assert set(summary[roi]) == {"model", "bicubic", "blocky"}
        assert summary[roi]["bicubic"]["slices"] == 5
        assert summary[roi]["bicubic"]["psnr"] > summary[roi]["blocky"]["psnr"]
    # the bicubic column is the aligned-bicubic baseline, recomputed independently here
    psnrs = []
    for _, hr in iterate_slices(phantom_tfds, "full", "test", 5):
        psnrs.append(image_metrics(aligned_bicubic(lr_grid_np(hr, 3), 3, hr.shape), hr)["psnr"])
    np.testing.assert_allclose(summary["full"]["bicubic"]["psnr"], np.mean(psnrs), rtol=1e-9)
    files = write_outputs(result, tmp_path)
    assert all(f.stat().st_size > 0 for f in files)
    payload = json.loads((tmp_path / "summary.json").read_text())
    assert payload["summary"]["heart"]["model"]["slices"] == 5
    per_patient = (tmp_path / "per_patient.csv").read_text().splitlines()
    assert per_patient[0].startswith("roi,patient,method,slices")
    named = []  # each figure is named (to evaluate's marker) before it is written: an interrupted run's count too
    before = lambda path: named.append((path, path.exists()))  # noqa: E731
    pictures = figures(predictor, phantom_tfds, "test", tmp_path / "figures", count=2, before_write=before)
    assert len(pictures) == 2 and all(p.stat().st_size > 10_000 for p in pictures)
    assert named == [(p, False) for p in pictures]


def test_evaluate_cli_on_a_run_prints_the_table(tiny_run, tmp_path):
    result = run_cli("evaluate", tiny_run, "--limit", "3", "--out", tmp_path, "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    for text in ("full (3 slices)", "heart (3 slices)", "aligned bicubic", "blocky LR", "PSNR (dB)", "generator loss"):
        assert text in result.stdout
    losses = next(line for line in result.stdout.splitlines() if line.startswith("generator loss")).split()[2:]
    assert float(losses[0]) > 0 and losses[1:] == ["-", "-"]  # the training loss is the model's, not the baselines'
    assert (tmp_path / "summary.csv").exists() and list((tmp_path / "figures").glob("*.png"))


def test_kspace_evaluation_uses_zero_filling_and_cropped_slices(tiny_export, phantom_tfds):
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.data.kspace import kspace_lr_np, zero_fill_np

    predictor = load_predictor(tiny_export)
    assert predictor.degradation.kind == "decimation"  # what the export's metadata says
    result = evaluate(
        predictor, phantom_tfds, "test", ("full",), limit=3, quiet=True, degradation=Degradation("kspace")
    )
    summary = result.summary()["full"]
    assert set(summary) == {"model", "zero_fill", "bicubic"}
    psnrs = []
    for _, hr in iterate_slices(phantom_tfds, "full", "test", 3):
        hr = hr[:255, :255]
        psnrs.append(image_metrics(zero_fill_np(kspace_lr_np(hr, 3), 3), hr)["psnr"])
    np.testing.assert_allclose(summary["zero_fill"]["psnr"], np.mean(psnrs), rtol=1e-6)


def _files(out: Path) -> list[str]:
    """Every file under an evaluation's folder but its marker, as the marker names them."""
    return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and p.name != MARKER)


def test_evaluate_under_another_degradation_warns(tiny_export, tmp_path):
    args = ["evaluate", tiny_export, "--limit", "2", "--roi", "full"]
    args += ["--degradation", "kspace", "--data-consistency", "--out", str(tmp_path), "--figures", "1", "--quiet"]
    result = run_cli(*args)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "warning:" in result.stderr and "trained on decimation" in result.stderr
    assert "zero-filled" in result.stdout and "model - zero-filled:" in result.stdout
    assert "degradation: kspace" in result.stdout and "data consistency" in result.stdout
    payload = json.loads((tmp_path / "summary.json").read_text())
    assert payload["degradation"]["kind"] == "kspace"
    assert sorted(listed_outputs(tmp_path)) == _files(tmp_path) and (tmp_path / "figures").is_dir()  # figures too


def test_evaluate_with_the_self_ensemble_scores_the_ensembled_model(tiny_export, tmp_path):
    scores = {}
    for name, extra in (("plain", []), ("ensemble", ["--self-ensemble"])):
        args = ["evaluate", tiny_export, "--limit", "2", "--roi", "full", "--figures", "0", "--quiet"]
        result = run_cli(*args, *extra, "--out", str(tmp_path / name))
        assert result.returncode == 0, result.stderr[-2000:]
        assert ("+ self-ensemble" in result.stdout) == bool(extra)
        wrote = result.stdout.strip().splitlines()[-1]  # --figures 0: no figure, nor a folder named for them
        assert wrote.startswith("wrote ") and wrote.endswith("summary.md")
        assert not (tmp_path / name / "figures").exists()
        scores[name] = json.loads((tmp_path / name / "summary.json").read_text())
    assert json.dumps(scores["plain"]) != json.dumps(scores["ensemble"])  # another model was scored
    through_plane = ROOT / "saved_models" / "throughplane_x6" / "1"  # exported without its flip ensemble
    refused = run_cli("evaluate", through_plane, "--self-ensemble", "--out", str(tmp_path / "refused"))
    assert refused.returncode == 2 and "is for 2D in-plane models" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1 and not (tmp_path / "refused").exists()


def test_a_labs_own_scans_are_put_on_the_protocol_grid_as_acdc_slices_are(phantom_root):
    """The same scan read as a lab's file gives the very slices the ACDC reader stores for it."""
    from heart_sr_tf.data.acdc import find_patients
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.slices import patient_slices, scan_slices

    patient = find_patients(phantom_root)[0]
    stored = {(s.slice, s.frame): s.image for s in patient_slices(patient)}
    cine = read_scan(patient.cine_path) if patient.cine_path else None
    assert cine is not None and cine.data.ndim == 4
    made = {(z, frame): image for z, frame, image in scan_slices(cine.data)}
    assert made.keys() == stored.keys()
    for key, image in made.items():
        np.testing.assert_array_equal(image, stored[key])


def test_evaluate_scans_scores_a_labs_own_scans_next_to_the_baselines(tiny_export, phantom_root, tmp_path):
    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.data.slices import scan_slices
    from heart_sr_tf.evaluation.evaluate import predict_slice

    folder = tmp_path / "scans"
    folder.mkdir()
    frame, other = sorted((phantom_root / "training" / "patient002").glob("*_frame??.nii.gz"))[:2]
    (folder / "a.nii.gz").write_bytes(frame.read_bytes())
    (folder / "b.nii.gz").write_bytes(other.read_bytes())  # (a copy of a.nii.gz would be scored once)
    (folder / "c.nii.gz").write_bytes(b"\x1f\x8b not a scan")
    study = folder / "study"  # a study exported flat: its cine is scored, its localiser left out
    values = np.random.default_rng(0).integers(0, 400, (20, 24, 2, 2)).astype(np.float32)
    write_cine(
        study, Cine(values), prefix="a", edit=lambda z, t, ds: setattr(ds, "PhotometricInterpretation", "MONOCHROME1")
    )
    write_localiser(study, "1.2.3")
    out = tmp_path / "out"
    result = run_cli("evaluate", tiny_export, "--scans", folder, "--out", out, "--limit", "5", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "on 3 scan(s)" in result.stdout and "(2 left out)" in result.stdout
    assert "model - aligned bicubic:" in result.stdout
    left = [line for line in result.stderr.splitlines() if line.startswith("left out: ")]
    assert [line.split(": ")[1] for line in left] == [str(folder / "c.nii.gz"), f"{study} (series series-1_localizer)"]
    coarse = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(coarse) == 1 and "in-plane 20x24 pixels, fewer than the 86x86" in coarse[0]  # the study's cine
    notes = [line for line in result.stderr.splitlines() if line.startswith("note: ")]  # what reading did
    assert len(notes) == 1 and notes[0].startswith(f"note: {study}: MONOCHROME1 (low values shown bright): read as")
    assert len(json.loads((out / "summary.json").read_text())["left_out"]) == 2
    assert json.loads((out / "summary.json").read_text())["warnings"] == [coarse[0].removeprefix("warning: ")]
    assert "- warning: " in (out / "summary.md").read_text()
    rows = [line.split(",") for line in (out / "per_slice.csv").read_text().splitlines()]
    header, rows = rows[0], rows[1:]
    methods = {row[header.index("method")] for row in rows}
    assert methods == {"model", "bicubic", "blocky"} and len(rows) == 5 * 3  # --limit: slices in all, each method
    summary = json.loads((out / "summary.json").read_text())["summary"]["scans"]
    # the first slice by hand: the same protocol slice, degradation and metrics
    predictor = load_predictor(tiny_export)
    _, _, hr = next(scan_slices(read_scan(frame).data))
    _, hr, outputs = predict_slice(predictor, hr, predictor.degradation, np.random.default_rng(0))
    first = {row[header.index("method")]: float(row[header.index("psnr")]) for row in rows[:3]}
    assert first["model"] == pytest.approx(image_metrics(outputs["model"], hr)["psnr"], abs=1e-4)
    assert first["bicubic"] == pytest.approx(image_metrics(outputs["bicubic"], hr)["psnr"], abs=1e-4)
    assert summary["model"]["slices"] == 5
    refused = run_cli("evaluate", tiny_export, "--scans", folder, "--cine-dir", tmp_path)
    assert refused.returncode == 2 and "--scans: scores the scans given; drop --cine-dir" in refused.stderr
    missing = run_cli("evaluate", tiny_export, "--scans", tmp_path / "nothing")
    assert missing.returncode == 2 and "Traceback" not in missing.stderr
    again = run_cli("evaluate", tiny_export, "--scans", folder, "--out", out, "--limit", "2", "--quiet")
    assert again.returncode == 0, again.stderr[-2000:]  # its own earlier output: written again
    assert json.loads((out / "summary.json").read_text())["summary"]["scans"]["model"]["slices"] == 2
    foreign = tmp_path / "notes"
    foreign.mkdir()
    (foreign / "summary.json").write_text('{"mine": 1}')
    refused = run_cli("evaluate", tiny_export, "--scans", folder, "--out", foreign, "--limit", "2", "--quiet")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        refused.stderr.strip()
        == f"error: {foreign}: holds files that evaluate did not write; give a new or empty --out"
    )
    assert [p.name for p in foreign.iterdir()] == ["summary.json"] and "mine" in (foreign / "summary.json").read_text()


def test_compare_images_takes_the_difference_patient_by_patient(tiny_export, phantom_root, tmp_path):
    """Two models on the same slices (the tiny export and its self-ensemble, on three scans): A minus B per
    patient, averaged, recounted here from the two per-slice tables; other slices are refused."""
    import csv
    import shutil

    from heart_sr_tf.evaluation.image_compare import compare, read_evaluation

    scans = tmp_path / "scans"
    scans.mkdir()
    for patient in ("patient001", "patient002", "patient003"):
        shutil.copy(phantom_root / "training" / patient / f"{patient}_frame01.nii.gz", scans)
    common = ("--scans", scans, "--quiet")
    for name, extra in (("a", ()), ("b", ("--self-ensemble",)), ("c", ("--limit", "7"))):
        done = run_cli("evaluate", tiny_export, *common, *extra, "--out", tmp_path / name)
        assert done.returncode == 0, done.stderr[-2000:]
    result = compare(read_evaluation(tmp_path / "a"), read_evaluation(tmp_path / "b"))
    per_patient = {}
    for side in ("a", "b"):
        with (tmp_path / side / "per_slice.csv").open() as handle:
            for row in csv.DictReader(handle):
                if row["method"] == "model":
                    per_patient.setdefault((side, row["patient"]), []).append(float(row["psnr"]))
    patients = sorted({p for _, p in per_patient})
    assert len(patients) == 3 and result["scans"]["patients"] == 3
    differences = [np.mean(per_patient[("a", p)]) - np.mean(per_patient[("b", p)]) for p in patients]
    psnr = result["scans"]["psnr"]
    assert psnr["mean"] == pytest.approx(np.mean(differences), rel=1e-9) and psnr["mean"] != 0
    assert psnr["low"] <= psnr["mean"] <= psnr["high"]
    shown = run_cli("compare-images", tmp_path / "a", tmp_path / "b")
    assert shown.returncode == 0 and f"{psnr['mean']:+.2f} [{psnr['low']:+.2f}, {psnr['high']:+.2f}]" in shown.stdout
    other = run_cli("compare-images", tmp_path / "a", tmp_path / "c")
    assert other.returncode == 2 and "not the same slices" in other.stderr
    # A folder an evaluation is writing (its tables removed and rewritten) is not read; a killed one's lock is no
    # reason to refuse, and is left as it is
    import os
    import socket
    import subprocess
    import sys

    lock, host = tmp_path / "b" / ".heart-sr-evaluate.lock", socket.gethostname()
    lock.write_text(f"{host}\n{os.getpid()}\n2026-12-07 10:00:00\n")
    busy = run_cli("compare-images", tmp_path / "a", tmp_path / "b")
    assert busy.returncode == 2 and "Traceback" not in busy.stderr and busy.stdout == "", busy.stderr[-2000:]
    assert busy.stderr.strip() == (
        f"error: {tmp_path / 'b'}: an evaluation is writing it (process {os.getpid()} on {host}, since "
        "2026-12-07 10:00:00); read it once that evaluation is over"
    )
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{host}\n{gone.stdout.strip()}\n2026-12-07 10:00:00\n")
    assert run_cli("compare-images", tmp_path / "a", tmp_path / "b").stdout == shown.stdout and lock.exists()
    assert run_cli("compare-images", tmp_path / "a", tmp_path / "nothing").returncode == 2


def test_scans_coarser_than_the_models_input_are_said_to_flatter():
    """A scan whose slices are smaller across than the degradation's input on the protocol grid is enlarged
    before it is degraded: it is scored, with a warning naming it; through-plane degradations do not count the
    in-plane size. The cropped ACDC cines (100x95) are not coarse at x3."""
    from heart_sr_tf.data.degradation import Degradation
    from heart_sr_tf.evaluation.scans import CheckedScans, coarse_scans

    checked = CheckedScans(["a", "b", "c"], [(3, 3, 8), (100, 95, 10, 30), (85, 200, 1)])
    lines = coarse_scans(checked, Degradation("kspace", 3))
    assert [line.split(":")[0] for line in lines] == ["a", "c"]
    assert "in-plane 3x3 pixels, fewer than the 86x86 the x3 degradation" in lines[0]
    assert [line.split(":")[0] for line in coarse_scans(checked, Degradation("decimation", 2))] == ["a", "b", "c"]
    assert [line.split(":")[0] for line in coarse_scans(checked, Degradation("decimation", 4))] == ["a"]
    assert "fewer than the 64x64 the x4 degradation" in coarse_scans(checked, Degradation("decimation", 4))[0]
    assert coarse_scans(checked, Degradation("through_plane", 6, thickness=6)) == []


def test_evaluate_writes_only_where_it_wrote_before(tmp_path):
    """An --out folder of someone else's files is refused before any work; a new, empty, or earlier evaluate's
    folder (its marker; an older one's summary.json) is written."""
    from heart_sr_tf.errors import DataError
    from heart_sr_tf.evaluation.evaluate import Evaluation, write_outputs
    from heart_sr_tf.evaluation.out_folder import MARKER, check_out

    check_out(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_out(tmp_path / "empty")
    write_outputs(Evaluation(split="test", source="m"), tmp_path / "mine")
    assert (tmp_path / "mine" / MARKER).is_file()
    (tmp_path / "mine" / "notes.txt").write_text("added by hand")
    check_out(tmp_path / "mine")
    older = tmp_path / "older"  # written before the marker: its summary.json says what it is
    write_outputs(Evaluation(split="test", source="m"), older)
    (older / MARKER).unlink()
    check_out(older)
    for name, text in (("summary.json", '{"mine": 1}'), ("data.csv", "a,b\n")):
        other = tmp_path / f"other-{name}"
        other.mkdir()
        (other / name).write_text(text)
        with pytest.raises(DataError, match="holds files that evaluate did not write"):
            check_out(other)
    (tmp_path / "afile").write_text("x")
    with pytest.raises(DataError, match="is a file; --out is a folder"):
        check_out(tmp_path / "afile")


def test_an_earlier_evaluations_outputs_never_stay_beside_a_new_ones(tmp_path):
    """evaluate --clinical --figures 4 into OUT, then evaluate without them into OUT: the first run's clinical
    tables and figures stayed beside the second's summary, read as its own (compare-clinical took them). Now an
    earlier evaluation's outputs are removed when the new results are written; files put there by hand stay."""
    from heart_sr_tf.evaluation.evaluate import Evaluation, write_outputs
    from heart_sr_tf.evaluation.out_folder import HEADER, MARKER

    out = tmp_path / "out"
    write_outputs(Evaluation(split="test", source="first"), out)
    (out / MARKER).write_text(f"{HEADER}\n")  # as markers were before they listed their files: by name
    earlier = ["clinical.json", "clinical_frames.csv", "clinical_patients.csv", "clinical_bland_altman.png"]
    earlier += ["figures/full_patient101_f01_s03.png", "figures/heart_patient150_f12_s00.png"]
    earlier += [f"clinical_segmenter_check/{name}" for name in ("clinical.json", "clinical_frames.csv", "summary.md")]
    kept = ["notes.md", "figures/my_sketch.png", "clinical_by_hand/clinical.txt"]
    for name in earlier + kept:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("earlier")
    write_outputs(Evaluation(split="validation", source="second"), out)
    left = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert left == sorted(
        [MARKER, *kept, "per_patient.csv", "per_slice.csv", "summary.csv", "summary.json"] + ["summary.md"]
    )
    assert '"source": "second"' in (out / "summary.json").read_text()
    assert not (out / "clinical_segmenter_check").exists()  # emptied, so removed; a folder with other files stays
    foreign = tmp_path / "foreign"  # no marker, no summary of ours: nothing is removed (check_out refuses it)
    foreign.mkdir()
    (foreign / "clinical.json").write_text("theirs")
    write_outputs(Evaluation(split="test", source="m"), foreign)
    assert (foreign / "clinical.json").read_text() == "theirs"


def test_an_earlier_evaluation_removes_only_the_files_its_marker_lists(tmp_path):
    """Before, an earlier evaluation's files were found by their names, in OUT and in every clinical_* folder: a
    lab's own clinical_notes/summary.md went with them, and a new run appended its tables to it. Now the marker
    lists what each run wrote; the next run removes exactly that. A file of one of evaluate's names that it did not
    write is refused before any work, and a marker's line cannot reach outside OUT."""
    from heart_sr_tf.errors import DataError
    from heart_sr_tf.evaluation.evaluate import Evaluation, write_outputs
    from heart_sr_tf.evaluation.out_folder import MARKER, check_out, record_outputs

    out = tmp_path / "out"
    write_outputs(Evaluation(split="test", source="first"), out)
    written = ["clinical.json", "clinical_segmenter_check/summary.md", "figures/full_patient101_f01_s03.png"]
    for name in written:  # as the command's clinical tables and figures are written, then recorded
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("earlier")
    record_outputs(out, [out / name for name in written])
    listed = (out / MARKER).read_text().splitlines()[1:]
    assert listed == ["summary.json", "summary.csv", "per_patient.csv", "per_slice.csv", "summary.md", *written]
    check_out(out)
    mine = ["notes.md", "clinical_notes/draft.txt", "figures/heart_sketch_f01_s02.png.txt"]
    for name in mine:
        (out / name).parent.mkdir(parents=True, exist_ok=True)
        (out / name).write_text("mine")
    check_out(out)  # none of them has an output's name
    theirs = out / "clinical_notes" / "summary.md"
    theirs.write_text("# my notes")
    with pytest.raises(DataError, match="was not written by evaluate but has one of its outputs' names") as raised:
        check_out(out)
    assert str(theirs) in str(raised.value)
    theirs.unlink()

    outside = tmp_path / "outside.csv"
    outside.write_text("keep")
    with (out / MARKER).open("a") as marker:  # a marker edited by hand: lines that leave OUT are not followed
        marker.write(f"../outside.csv\n{outside}\n")
    write_outputs(Evaluation(split="validation", source="second"), out)
    left = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())
    expected = [MARKER, *mine, "per_patient.csv", "per_slice.csv", "summary.csv", "summary.json", "summary.md"]
    assert left == sorted(expected)
    assert not (out / "clinical_segmenter_check").exists()  # emptied, so removed
    assert outside.read_text() == "keep"
    assert (out / MARKER).read_text().splitlines()[1:] == listed[:5]  # the new run's own files


def test_options_evaluate_would_ignore_are_refused(tiny_export, phantom_tfds, tmp_path):
    """--segmenter without --clinical and --patients without --cine-dir used to be ignored: the figures came out
    without the segmentation or on other patients than asked, and nothing said so. Each is one line, nothing
    written."""
    for extra, message in [
        (("--segmenter", "segmenter"), "--segmenter: goes with --clinical (it segments the frames --clinical"),
        (("--patients", "patient101"), "--patients: goes with --cine-dir (it picks the whole cines to score)"),
    ]:
        result = run_cli("evaluate", tiny_export, "--data-dir", phantom_tfds, "--out", tmp_path / "out", *extra)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_one_evaluation_at_a_time_writes_an_output_folder(tiny_export, phantom_tfds, tmp_path):
    """Two evaluations into one --out at once removed each other's files: one run's image tables were left beside
    the other's clinical tables, and figures the first said it wrote were gone. An evaluation now holds OUT's lock
    from its check to its last file: a second one is refused in one line, before any work, with nothing written;
    a killed evaluation's lock is taken over; a failed evaluation leaves no folder it made."""
    import socket

    from heart_sr_tf.folder_lock import lock_name

    out = tmp_path / "out"
    out.mkdir()
    lock, host = out / lock_name("evaluate"), socket.gethostname()
    lock.write_text(f"{host}\n{os.getpid()}\n2026-12-07 10:00:00\n")  # a live holder: this very process
    args = ["evaluate", tiny_export, "--data-dir", phantom_tfds, "--limit", "2", "--figures", "1", "--quiet"]
    held = run_cli(*args, "--out", out)
    assert held.returncode == 2 and held.stderr.splitlines() == [
        f"error: {out}: another evaluation is writing here (process {os.getpid()} on {host}, since 2026-12-07 "
        f"10:00:00); wait for it to finish or stop it (if no evaluation is running there, remove {lock})"
    ]
    assert [p.name for p in out.iterdir()] == [lock.name]
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{host}\n{gone.stdout.strip()}\n2026-12-07 09:00:00\n")  # a killed evaluation's
    done = run_cli(*args, "--out", out)
    assert done.returncode == 0, done.stderr[-2000:]
    assert not lock.exists() and (out / "summary.json").is_file() and len(list((out / "figures").iterdir())) == 1
    failed = run_cli(*args[:2], "--data-dir", tmp_path / "no-dataset", "--out", tmp_path / "new" / "out")
    assert failed.returncode == 2 and not (tmp_path / "new").exists()
