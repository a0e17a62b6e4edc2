"""The `train srgan` command end to end: run folder, resume after SIGKILL, NaN stop, two workers."""

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import tensorflow as tf
from in_process import run_cli

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.toml"


def _cli(*args):
    return [sys.executable, str(ROOT / "cli.py"), *map(str, args)]


def _env(**extra):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    env.update(extra)
    return env


def _latest_step(run: Path) -> int:
    latest = tf.train.latest_checkpoint(str(run / "checkpoints"))
    return int(latest.rsplit("-", 1)[1]) if latest else 0


def _generator_weights(run: Path):
    reader = tf.train.load_checkpoint(str(run / "checkpoints"))
    names = sorted(n for n in reader.get_variable_to_shape_map() if n.startswith("generator/") and "OPTIMIZER" not in n)
    return {n: reader.get_tensor(n) for n in names}


def test_train_writes_a_run_and_compares_with_bicubic(phantom_tfds, tmp_path):
    result = run_cli(
        "train", "srgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "r1"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    run = tmp_path / "r1"
    assert (run / "config.toml").is_file() and list((run / "logs").iterdir())
    assert _latest_step(run) == 12
    rows = list(csv.DictReader((run / "metrics.csv").open()))
    assert [int(r["step"]) for r in rows][:3] == [2, 4, 6] and rows[-1]["val_psnr"]
    line = result.stdout.strip().splitlines()[-1]
    assert "aligned bicubic PSNR" in line and "model PSNR" in line and "blocky LR PSNR" in line
    assert "model - aligned bicubic:" in line  # decimation: the baseline to beat is aligned bicubic
    bar = re.search(r"train: +100%.*12/12 \[\d\d:\d\d<00:00, +[\d.]+(s/step|step/s)", result.stderr)
    assert bar, result.stderr[-1000:]  # tqdm: count, elapsed<remaining (the ETA) and rate


def test_resume_after_sigkill_continues_at_the_saved_step(phantom_tfds, tmp_path):
    args = ["train", "srgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "k"]
    args += ["--steps", "20"]
    proc = subprocess.Popen(_cli(*args), env=_env(), cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    run = tmp_path / "k"
    deadline = time.time() + 300
    while _latest_step(run) < 5 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed_at = _latest_step(run)
    assert 5 <= killed_at < 40, "the run must be killed mid-way"
    assert (run / ".heart-sr-train.lock").read_text().split()[1] == str(proc.pid)  # left by the killed run
    before = _generator_weights(run)
    result = run_cli("train", "srgan", "--resume", run, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]  # its process gone: the lock is taken over
    assert "trained 40 steps" in result.stdout and not (run / ".heart-sr-train.lock").exists()
    assert _latest_step(run) == 40
    after = _generator_weights(run)
    assert any(not np.array_equal(before[k], after[k]) for k in before)
    steps = [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())]
    assert steps == sorted(steps) and len(steps) == len(set(steps)) and steps[-1] == 40  # one row per step
    # Resumed once more, with nothing left to train: validated for its summary, no second row for step 40
    again = run_cli("train", "srgan", "--resume", run, cwd=tmp_path)
    assert again.returncode == 0 and "model PSNR" in again.stdout, again.stderr[-2000:]
    assert [int(r["step"]) for r in csv.DictReader((run / "metrics.csv").open())] == steps


def test_a_run_trains_in_one_process_at_a_time(tiny_run, phantom_tfds, tmp_path):
    """A second process training a run (a resume in another terminal, a requeued job) while the first still does
    is refused in one line naming the holder, before it writes anything: two processes interleaved their rows in
    metrics.csv and overwrote each other's checkpoints."""
    import shutil

    run = tmp_path / "tiny"
    shutil.copytree(tiny_run, run)
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    lock, host = run / ".heart-sr-train.lock", socket.gethostname()
    lock.write_text(f"{host}\n{os.getpid()}\n2026-12-07 10:00:00\n")  # a live holder: this very process
    for data in ([], ["--data-dir", phantom_tfds]):
        result = run_cli("train", "srgan", "--resume", run, *data, cwd=tmp_path)
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
        assert errors == [
            f"error: {run}: another training run is writing here (process {os.getpid()} on {host}, since "
            f"2026-12-07 10:00:00); wait for it to finish or stop it (if no training run is running there, "
            f"remove {lock})"
        ]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file() and p != lock} == files
    # A run whose data folder is gone says which options replace it, once it holds the run, and leaves it as it was
    lock.unlink()
    (run / "data_dir").write_text(str(tmp_path / "moved") + "\n")
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    gone = run_cli("train", "srgan", "--resume", run, cwd=tmp_path)
    assert gone.returncode == 2 and gone.stderr.strip() == (
        f"error: {run}: its data folder {tmp_path / 'moved'} is gone; give --data-dir or --acdc-dir"
    ), gone.stderr[-2000:]
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # and no lock left behind


def test_nan_loss_stops_and_keeps_the_last_good_checkpoint(phantom_tfds, tmp_path):
    args = ["train", "srgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "n"]
    assert run_cli(*args, "--steps", "5", cwd=tmp_path).returncode == 0
    run = tmp_path / "n"
    good = _latest_step(run)
    config = (run / "config.toml").read_text()
    # a weight that is finite in the config but overflows float32: the adversarial stage's loss is infinite
    config = config.replace("adversarial_weight = 0.001", "adversarial_weight = 1e39").replace("steps = 5", "steps = 9")
    (run / "config.toml").write_text(config)
    result = run_cli("train", "srgan", "--resume", run, cwd=tmp_path)
    assert result.returncode == 2
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "non-finite" in errors[0] and f"ckpt-{good}" in errors[0]
    assert "Traceback" not in result.stderr
    assert _latest_step(run) == good
    assert all(np.all(np.isfinite(v)) for v in _generator_weights(run).values())


def _free_ports(n):
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_two_workers_on_loopback_write_one_run_from_the_chief(phantom_tfds, tmp_path):
    """Both workers are given the same --name: the chief writes the run, the other worker trains on a private copy
    that it removes; both end with the same network (the same validation figures)."""
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    procs = []
    for index in range(2):
        tf_config = json.dumps({"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}})
        args = ["train", "srgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path]
        args += ["--name", "w", "--steps", "3", "--strategy", "multiworker", "--quiet"]
        procs.append(
            subprocess.Popen(
                _cli(*args),
                env=_env(TF_CONFIG=tf_config),
                cwd=tmp_path,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
        )
    outputs = [p.communicate(timeout=500) for p in procs]
    for proc, (_, err) in zip(procs, outputs):
        assert proc.returncode == 0, err[-3000:]
    chief, other = (out.splitlines() for out, _ in outputs)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["w"] and _latest_step(tmp_path / "w") == 6
    assert chief[0] == f"run: {tmp_path / 'w'}  data: {phantom_tfds}"
    assert other[0].startswith("not the chief worker")
    private = Path(other[1].split()[1])
    assert private != tmp_path / "w" and not private.exists()  # removed at the end
    assert chief[-1].startswith("validation") and chief[-1] == other[-1]


def test_sweep_prints_the_learning_rate_table(phantom_tfds, tmp_path):
    one_stage = ROOT / "tests" / "configs" / "tiny_one_stage.toml"  # two runs: half the tracing of tiny.toml's
    args = ["sweep", "srgan", "--config", one_stage, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--steps", "2"]
    args += ["--lr", "1e-3", "--lr", "1e-5", "--quiet"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    table = result.stdout[result.stdout.index("metric") :].splitlines()
    assert table[0].split()[1:] == ["lr", "0.001", "lr", "1e-05", "aligned", "bicubic", "blocky", "LR"]
    rows = {line.split("  ")[0].strip(): line for line in table[2:]}
    assert set(rows) == {"discriminator loss", "generator loss", "SSIM (7x7)", "PSNR (dB)", "NRMSE"}
    psnr = [float(v) for v in rows["PSNR (dB)"].split()[2:]]
    assert len(psnr) == 4 and all(10 < v < 60 for v in psnr)
    assert psnr[2] > psnr[3]  # aligned bicubic beats the blocky image on the same slices
    assert (tmp_path / "sweep-lr0.001" / "metrics.csv").exists() and (tmp_path / "sweep-lr1e-05").is_dir()


def test_the_best_step_is_named_only_with_figures_that_tell_it_from_the_last():
    """A run's best-step line said "27.26 dB against 27.26 at the end": as many decimals as set them apart, and
    no line for a difference below 0.0001 dB."""
    from heart_sr_tf.training.loop import apart_figures

    assert apart_figures(27.31, 27.26) == "27.31 dB against 27.26 at the end"
    assert apart_figures(27.2612, 27.2598) == "27.261 dB against 27.260 at the end"
    assert apart_figures(27.26004, 27.25996) is None  # 0.00008 dB: the same at 4 decimals
    assert apart_figures(27.2598, 27.2612) is None  # the last is the best


def test_a_fine_tune_improved_on_its_start_only_by_a_gain_it_shows():
    from heart_sr_tf.training.loop import TrainResult, start_line

    def line(now: float) -> str:
        return start_line(TrainResult(1, 1.0, {"psnr": now, "ssim": 0.9}, start={"psnr": 30.0, "ssim": 0.9}), "m")

    assert line(30.004).endswith("(+0.00 dB, +0.0000; NOT better than its start)")
    assert line(30.02).endswith("(+0.02 dB, +0.0000; improved on its start)")


def test_validation_chooses_a_checkpoint_and_export_takes_it(phantom_tfds, tiny_export, tmp_path):
    """Choose on validation: the run's last lines name the step whose validation PSNR was best (or the network a
    fine-tune started from), and `export --step` writes that checkpoint's generator."""
    from heart_sr_tf.training.loop import best_line
    from heart_sr_tf.training.runs import Run

    config = tmp_path / "every2.toml"
    text = TINY.read_text().split("[[train.stages]]")[0]
    text = text.replace("checkpoint_every = 5", "checkpoint_every = 2\nkeep_checkpoints = 8")
    text = text.replace("validate_every = 10", "validate_every = 2")
    config.write_text(text + '[[train.stages]]\nname = "full"\nadversarial = false\nroi = "full"\nsteps = 8\n')
    result = run_cli(
        "train", "srgan", "--config", config, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "ft",
        "--init-from", tiny_export, "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    run = Run.open(tmp_path / "ft")
    assert run.kept_steps() == [2, 4, 6, 8]
    rows = [r for r in run.metrics_rows() if r.get("val_psnr")]
    assert [int(r["step"]) for r in rows] == [0, 2, 4, 6, 8]  # the start, every second step (the last, the final)
    best = max(rows, key=lambda r: float(r["val_psnr"]))
    line = best_line(run)
    if float(best["val_psnr"]) <= float(rows[-1]["val_psnr"]):
        assert line is None
    elif best["stage"] == "start":
        assert line.startswith("the network it started from was better on validation")
    else:
        assert f"export {run.folder} --step {best['step']}" in line
    assert (line or "") in result.stdout and "started from" in result.stdout
    assert "model - aligned bicubic" in result.stdout.strip().splitlines()[-1]  # still the last line

    out = tmp_path / "models"
    exported = run_cli("export", run.folder, "--step", "4", "--out", out, "--name", "at4")
    assert exported.returncode == 0 and "ckpt-4" in exported.stdout, exported.stderr[-2000:]
    carried = json.loads((out / "at4" / "1" / "assets.extra" / "heart_sr_metadata.json").read_text())["metrics"]
    at4_rows = [r for r in run.metrics_rows() if r["step"] == "4"]
    assert carried["step"] == "4" and carried["val_psnr"] == at4_rows[-1]["val_psnr"]  # step 4's, not the last's
    from heart_sr_tf.export.reader import load_exported_weights
    from heart_sr_tf.models.registry import make_generator

    networks = [make_generator(run.config) for _ in range(3)]
    load_exported_weights(out / "at4" / "1", networks[0])
    run.restore_generator(networks[1], 4)
    run.restore_generator(networks[2])  # the latest, step 8
    at4, checkpoint4, latest = ([w.numpy() for w in n.weights] for n in networks)
    assert all(np.array_equal(a, b) for a, b in zip(at4, checkpoint4, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(at4, latest, strict=True))
    scored = run_cli("evaluate", run.folder, "--step", "4", "--limit", "3", "--figures", "0", "--quiet")
    assert scored.returncode == 0 and "ckpt-4 (--step 4)" in scored.stdout, scored.stderr[-2000:]
    latest_scored = run_cli("evaluate", run.folder, "--limit", "3", "--figures", "0", "--quiet")
    assert latest_scored.returncode == 0, latest_scored.stderr[-2000:]
    at_step, at_end = (json.loads((run.folder / "evaluation" / f / "summary.json").read_text()) for f in
                       ("test-step-4", "test"))  # fmt: skip
    assert at_step["summary"]["full"]["model"]["psnr"] != at_end["summary"]["full"]["model"]["psnr"]  # two outputs
    logged = {int(r["step"]): float(r["g_loss"]) for r in run.metrics_rows() if r.get("g_loss")}
    assert at_step["losses"]["g_loss"] == logged[4] and at_end["losses"]["g_loss"] == logged[8] != logged[4]
    assert at_step["summary"]["full"]["bicubic"] == at_end["summary"]["full"]["bicubic"]  # the same slices
    missing = run_cli("export", run.folder, "--step", "3", "--out", out)
    assert missing.returncode == 2 and "no checkpoint of step 3 (kept: 2, 4, 6, 8)" in missing.stderr
    assert run_cli("export", tiny_export, "--step", "3", "--out", out).returncode == 2
    assert run_cli("evaluate", tiny_export, "--step", "3").returncode == 2


def test_a_new_run_never_goes_among_someone_elses_files(tmp_path):
    """`train --name` into a folder of files that are not a run's is one error line before any data is prepared
    or any file written; an empty or new folder is fine, an earlier run is resumed, not overwritten."""
    import pytest

    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.training.runs import check_new_run

    check_new_run(tmp_path / "new")
    (tmp_path / "empty").mkdir()
    check_new_run(tmp_path / "empty")
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "metrics.csv").write_text("my own table\n")
    with pytest.raises(HeartSRError, match="exists and is not a run"):
        check_new_run(mine)
    (tmp_path / "earlier").mkdir()
    (tmp_path / "earlier" / "config.toml").write_text("")
    with pytest.raises(HeartSRError, match="run already exists; resume it with --resume"):
        check_new_run(tmp_path / "earlier")
    cache = tmp_path / "cache"
    env = {"HEART_SR_CACHE": str(cache)}
    done = run_cli("train", "srgan", "--runs-dir", tmp_path, "--name", "mine", "--steps", "1", "--quiet", env=env)
    assert done.returncode == 2 and "Traceback" not in done.stderr
    assert (
        done.stderr.strip()
        == f"error: {mine}: exists and is not a run (no config.toml); pick another --name or --runs-dir"
    )
    assert [p.name for p in mine.iterdir()] == ["metrics.csv"] and not cache.exists()  # no phantoms prepared


def test_a_mistyped_tf_config_is_one_line_before_any_run_folder(tmp_path, monkeypatch):
    """TF_CONFIG, set by a cluster's scheduler or by hand, was parsed where training began: mistyped, a traceback
    from json; now checked, and set but empty counts as unset."""
    import pytest

    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.training.distribute import cluster_config, is_chief

    cases = {
        "{bad": "TF_CONFIG: not JSON",
        "[1]": "TF_CONFIG: must be a JSON object",
        '{"cluster": [], "task": {}}': "'cluster' and 'task' must be JSON objects",
        '{"task": {"type": "worker", "index": -1}}': "an 'index' of 0 or more",
    }
    for text, message in cases.items():
        monkeypatch.setenv("TF_CONFIG", text)
        with pytest.raises(HeartSRError, match=re.escape(message)):
            cluster_config()
    monkeypatch.setenv("TF_CONFIG", "")
    assert cluster_config() == {} and is_chief()
    monkeypatch.setenv("TF_CONFIG", '{"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}')
    assert not is_chief()
    runs = tmp_path / "runs"
    result = run_cli(
        "train", "srgan", "--config", TINY, "--steps", "1", "--runs-dir", runs, "--quiet", env={"TF_CONFIG": "{bad"}
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().startswith("error: TF_CONFIG: not JSON") and not runs.exists()
