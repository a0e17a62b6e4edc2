"""``cohort`` on a Dask LocalCluster over loopback: real ACDC crops, a DICOM series and a corrupt file; the same
outputs as ``upscale``, a re-run that skips everything, and a worker killed mid-run."""

import csv
import gzip
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from click.testing import CliRunner

pytest.importorskip("distributed", reason="Dask distributed is not installed (the [cohort] extra)")

from dicom_series import Cine, write_cine  # noqa: E402
from meanwhile import Meanwhile  # noqa: E402

from heart_sr_tf.cohort.jobs import find_jobs  # noqa: E402
from heart_sr_tf.data.degradation import Degradation  # noqa: E402
from heart_sr_tf.errors import HeartSRError  # noqa: E402
from heart_sr_tf.export.writer import export_generator  # noqa: E402
from heart_sr_tf.models.rrdb import rrdb_generator  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cohort_inputs(acdc_dir, tmp_path_factory) -> tuple[Path, Path]:
    """``(inputs, model)``: 7 crops of real frames, one DICOM series (in a subfolder) and one corrupt file; an
    untrained x3 export (aligned bicubic), quick to load on every worker."""
    root = tmp_path_factory.mktemp("cohort")
    inputs = root / "in"
    inputs.mkdir()
    for number in range(1, 8):
        image = nib.load(str(acdc_dir / "training" / f"patient{number:03d}" / f"patient{number:03d}_frame01.nii.gz"))
        data = np.asarray(image.dataobj)[80:140, 90:150, 2:5]
        nib.save(nib.Nifti1Image(data, image.affine, image.header), str(inputs / f"p{number:03d}.nii.gz"))
    (inputs / "corrupt.nii.gz").write_bytes(b"\x1f\x8b not a scan")
    values = np.asarray(nib.load(str(inputs / "p001.nii.gz")).dataobj)[..., None].astype(np.float32)
    write_cine(inputs / "series" / "sax", Cine(2.0 * values - 10.0))
    models = root / "models"
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), models, "tiny", degradation=Degradation())
    return inputs, models / "tiny"


def test_a_stopped_cohort_ends_on_its_own_line_not_the_resource_trackers():
    """A cohort stopped while its workers work (SIGTERM, SIGHUP) ended, after our "terminated" line, with
    multiprocessing's resource tracker warning of a "leaked semaphore" it then removed (seen by hand, not every
    time). Here a semaphore is left the same way, deterministically: a process that started the local cluster
    exits without releasing one. The tracker removes it without a word."""
    script = (
        "import multiprocessing, os\n"
        "from heart_sr_tf.cohort.runner import local_cluster\n"
        "cluster = local_cluster(1)\n"
        "lock = multiprocessing.get_context('spawn').Lock()  # registered with the tracker\n"
        "cluster.close()\n"
        "os._exit(0)  # as if stopped before it was released\n"
    )
    ran = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT)
    assert ran.returncode == 0, ran.stderr[-2000:]
    assert "leaked semaphore" not in ran.stderr and "resource_tracker" not in ran.stderr, ran.stderr[-2000:]


def test_jobs_from_a_folder_a_glob_and_a_manifest(tmp_path):
    (tmp_path / "a" / "b").mkdir(parents=True)
    for name in ("a/x.nii.gz", "a/b/y.nii", "a/b/Z.NII.GZ", "a/notes.txt"):
        (tmp_path / name).write_text("")
    jobs = find_jobs(str(tmp_path / "a"), tmp_path / "out")
    assert [(j.input.relative_to(tmp_path), j.output.relative_to(tmp_path)) for j in jobs] == [
        (Path("a/x.nii.gz"), Path("out/x.nii.gz")),
        (Path("a/b/Z.NII.GZ"), Path("out/b/Z.NII.GZ")),  # capitals are NIfTI too: never skipped without a word
        (Path("a/b/y.nii"), Path("out/b/y.nii")),
    ]
    assert [j.input.name for j in find_jobs(str(tmp_path / "a" / "*.nii*"), tmp_path / "out")] == ["x.nii.gz"]
    (tmp_path / "m.csv").write_text("input,output\na/x.nii.gz,first.nii.gz\na/b/y.nii,\n")
    jobs = find_jobs(str(tmp_path / "m.csv"), tmp_path / "out")
    assert [j.output.name for j in jobs] == ["first.nii.gz", "y.nii"] and jobs[0].input == tmp_path / "a/x.nii.gz"
    (tmp_path / "clash.csv").write_text("input,output\na/x.nii.gz,same.nii.gz\na/b/y.nii,same.nii.gz\n")
    with pytest.raises(HeartSRError, match="both would be written to"):
        find_jobs(str(tmp_path / "clash.csv"), tmp_path / "out")
    with pytest.raises(HeartSRError, match="no such folder or CSV manifest"):
        find_jobs(str(tmp_path / "nothing-*.nii.gz"), tmp_path / "out")
    # a manifest's output outside --out-dir (``..``, an absolute path elsewhere, the folder itself) would be
    # written where the cohort's status and lock do not reach: a user's file there was replaced without a word
    out = tmp_path / "out"
    for given in ("../precious.nii.gz", str(tmp_path / "precious.nii.gz"), "sub/../../x.nii.gz", "."):
        (tmp_path / "far.csv").write_text(f"input,output\na/x.nii.gz,{given}\n")
        with pytest.raises(HeartSRError, match=f"far.csv:2: output '{re.escape(given)}' lies outside --out-dir"):
            find_jobs(str(tmp_path / "far.csv"), out)
    (tmp_path / "near.csv").write_text(f"input,output\na/x.nii.gz,{out / 'deep' / 'x.nii.gz'}\na/b/y.nii,d/../y.nii\n")
    assert [j.output for j in find_jobs(str(tmp_path / "near.csv"), out)] == [out / "deep/x.nii.gz", out / "y.nii"]
    (tmp_path / "precious.nii.gz").write_text("precious")  # what evaluate --scans reads (no out-dir): not checked
    from heart_sr_tf.cohort.jobs import find_scans

    assert [scan.path for scan in find_scans(str(tmp_path / "far.csv"))] == [tmp_path / "a/x.nii.gz"]


def test_no_two_scans_write_one_file_however_its_path_is_spelt(tmp_path):
    """Outputs are compared as the file system resolves them: a manifest's ``d/../x.nii.gz``, or an absolute path
    into --out-dir, named the same file as ``x.nii.gz``, and the second scan's result replaced the first's without
    a word (both rows "done"); so could one scan's --measure files and another's result. All refused before any
    work, in one line naming both scans."""
    from heart_sr_tf.cli import main

    for name in ("a.nii.gz", "b.nii.gz"):
        (tmp_path / name).write_text("")
    out = tmp_path / "out"
    (out / "d").mkdir(parents=True)
    (tmp_path / "link").symlink_to(out / "d")
    spellings = ("d/../x.nii.gz", str(out / "x.nii.gz"), "./x.nii.gz", f"d/{os.path.relpath(out, out / 'd')}/x.nii.gz")
    for spelt in spellings:
        (tmp_path / "m.csv").write_text(f"input,output\na.nii.gz,x.nii.gz\nb.nii.gz,{spelt}\n")
        with pytest.raises(HeartSRError, match=re.escape(f"b.nii.gz and {tmp_path / 'a.nii.gz'}: both would be")):
            find_jobs(str(tmp_path / "m.csv"), out)
    linked = tmp_path / "link" / "x.nii.gz"
    (tmp_path / "m.csv").write_text(f"input,output\na.nii.gz,out/d/x.nii.gz\nb.nii.gz,{linked}\n")
    with pytest.raises(HeartSRError, match=re.escape(f"both would be written to {out / 'd' / 'x.nii.gz'}")):
        find_jobs(str(tmp_path / "m.csv"), tmp_path)  # (the symlink into --out-dir, resolved)
    (tmp_path / "m.csv").write_text("input,output\na.nii.gz,x.nii.gz\nb.nii.gz,x_labels.nii.gz\n")
    assert len(find_jobs(str(tmp_path / "m.csv"), out)) == 2  # apart, until --measure writes x_labels.nii.gz
    fresh = tmp_path / "fresh"
    args = ["cohort", str(tmp_path / "m.csv"), "--out-dir", str(fresh), "--measure", "--workers", "1"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 2, result.output
    assert f"{tmp_path / 'b.nii.gz'} and {tmp_path / 'a.nii.gz'}: both would be written to " in result.output
    assert result.output.rstrip().endswith(str(fresh / "x_labels.nii.gz")) and "Traceback" not in result.output
    assert not fresh.exists()  # nothing written


def test_a_cohorts_results_and_hidden_files_are_never_taken_for_scans(tmp_path):
    """--out-dir inside the inputs' folder: the results of a first run were scans of the next (upscaled again into
    OUT/OUT/ on resume); ``._x.nii.gz`` (macOS AppleDouble) and ``.git`` are not scans either."""
    from heart_sr_tf.cohort.jobs import find_scans

    (tmp_path / "in" / "sr").mkdir(parents=True)
    (tmp_path / "in" / ".git").mkdir()
    (tmp_path / "in" / "b").mkdir()
    for name in ("a.nii.gz", "sr/a.nii.gz", "._a.nii.gz", ".git/c.nii", "b/d.nii.gz"):
        (tmp_path / "in" / name).write_text("")
    root = tmp_path / "in"
    assert [j.input for j in find_jobs(str(root), root / "sr")] == [root / "a.nii.gz", root / "b" / "d.nii.gz"]
    globbed = find_jobs(str(root / "**" / "*.nii.gz"), root / "sr")
    assert [j.input for j in globbed] == [root / "a.nii.gz", root / "b" / "d.nii.gz"]
    around = find_jobs(str(root), tmp_path)  # an --out-dir around the inputs leaves nothing out
    assert [j.output for j in around] == [tmp_path / "a.nii.gz", tmp_path / "b/d.nii.gz", tmp_path / "sr/a.nii.gz"]
    # evaluate --scans writes no outputs: two scans of one name are no clash, and nothing is left out
    assert [s.path for s in find_scans(str(root / "*" / "*.nii.gz"))] == [
        root / "b" / "d.nii.gz",
        root / "sr" / "a.nii.gz",
    ]
    assert [s.path for s in find_scans(str(root / "**" / "a.nii.gz"))] == [root / "a.nii.gz", root / "sr" / "a.nii.gz"]
    with pytest.raises(HeartSRError, match="both would be written to"):
        find_jobs(str(root / "**" / "a.nii.gz"), tmp_path / "out")


def test_a_dicom_series_folder_given_itself_is_one_scan(tmp_path):
    """A series folder as the input (its files named without an extension, as scanners export them), not only
    series folders below it."""
    write_cine(tmp_path / "sax", Cine(np.full((8, 9, 2, 2), 100.0, np.float32)))
    assert not [p for p in (tmp_path / "sax").iterdir() if p.suffix]
    jobs = find_jobs(str(tmp_path / "sax"), tmp_path / "out")
    assert [(j.input, j.output) for j in jobs] == [(tmp_path / "sax", tmp_path / "out" / "sax.nii.gz")]


def test_a_cohort_equals_upscale_lists_the_bad_scan_and_resumes(cohort_inputs, tmp_path):
    from heart_sr_tf.cli import main
    from heart_sr_tf.inference.predictor import load_local_model
    from heart_sr_tf.volumes.upscale import model_label, upscale_file

    inputs, model = cohort_inputs
    out = tmp_path / "out"
    args = ["cohort", str(inputs), "--out-dir", str(out), "--model", str(model), "--workers", "2", "--quiet"]
    args += ["--backend", "tensorflow", "--precision", "float32"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output  # one scan failed
    assert "7 done" not in result.output and "8 done, 0 skipped (already done), 1 failed" in result.output
    assert "failed: " + str(inputs / "corrupt.nii.gz") in result.output
    predictor = load_local_model(model, "tensorflow", "float32")
    for name in ("p001.nii.gz", "p005.nii.gz"):
        single = upscale_file(inputs / name, tmp_path / f"single-{name}", predictor, quiet=True)
        np.testing.assert_array_equal(nib.load(str(out / name)).get_fdata(), nib.load(str(single)).get_fdata())
    assert nib.load(str(out / "series" / "sax.nii.gz")).shape == (180, 180, 3)
    rows = (out / "cohort.csv").read_text().splitlines()
    assert rows[0] == "input,output,status,seconds,model,options,error,input_state" and len(rows) == 10
    done = [row for row in csv.DictReader(rows) if row["status"] == "done"]
    assert len(done) == 8 and {row["model"] for row in done} == {model_label(predictor.source)}, done
    again = CliRunner().invoke(main, args)
    assert "0 done, 8 skipped (already done), 1 failed" in again.output
    assert not [p for p in out.rglob(".heart-sr-*")]
    assert "not among these inputs" not in again.output
    # Three of the scans given again into the same folder, spelt another way (so done again, into the same
    # results): the others' results stay, and a line names them, not the three this run writes.
    subset = CliRunner().invoke(main, [args[0], str(inputs / ".." / inputs.name / "p00[1-3].nii.gz"), *args[2:]])
    assert subset.exit_code == 0 and "3 done, 0 skipped (already done), 0 failed" in subset.output, subset.output
    assert (
        f"cohort: note: 5 results in {out} of scans not among these inputs (removed, renamed or not given) left as "
        "they are (p004.nii.gz, p005.nii.gz, p006.nii.gz, p007.nii.gz, sax.nii.gz); cohort.csv lists them"
    ) in subset.output
    assert all((out / f"p00{n}.nii.gz").is_file() for n in range(1, 8))


def test_an_existing_cluster_is_checked_before_any_scan_is_given_out(cohort_inputs, tmp_path, monkeypatch):
    """``--scheduler``: an unreachable address, a cluster without a worker (which would wait for ever) and a
    worker that does not see a path the tasks use are each one line and exit 2, before any scan; on a cluster
    with a worker the cohort runs as on a local one."""
    from distributed import Client, LocalCluster

    from heart_sr_tf.cli import main
    from heart_sr_tf.cohort import runner

    inputs, model = cohort_inputs
    monkeypatch.setattr(runner, "CONNECT_TIMEOUT", 2.0)
    monkeypatch.setattr(runner, "WORKER_WAIT", 2.0)
    out = tmp_path / "out"
    args = ["cohort", str(inputs / "p001.nii.gz"), "--out-dir", str(out), "--model", str(model), "--quiet"]
    args += ["--backend", "tensorflow", "--precision", "float32"]
    unreachable = CliRunner().invoke(main, [*args, "--scheduler", "tcp://127.0.0.1:9"])
    assert unreachable.exit_code == 2 and "--scheduler tcp://127.0.0.1:9: cannot connect (" in unreachable.output
    assert not out.exists()  # the folder it made for nothing is gone again
    with LocalCluster(n_workers=0, processes=False, dashboard_address=None) as cluster:
        empty = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
        assert empty.exit_code == 2 and "no worker joined the cluster within 2 s" in empty.output, empty.output
        assert "Traceback" not in empty.output and not (out / "p001.nii.gz").exists()
        cluster.scale(1)
        with Client(cluster) as client:
            client.wait_for_workers(1, timeout=30)
            (worker,) = client.scheduler_info()["workers"]
            with pytest.raises(HeartSRError) as error:
                runner.check_workers(client, "S", [str(inputs), "/nowhere/scans", "/nowhere/model"], str(out))
            assert str(error.value) == (
                f"--scheduler S: worker {worker} cannot see /nowhere/scans and 1 more; every worker needs the scans, "
                "the models and --out-dir at the same paths as this machine (a shared file system)"
            )
            with monkeypatch.context() as patch:  # a worker's environment with another version, or without ours
                patch.setattr(runner, "tool_version", lambda: "0.1-other")
                with pytest.raises(HeartSRError, match=f"worker {worker} runs heart-sr-tf 0.1-other, this machine"):
                    runner.check_workers(client, "S", [str(inputs)], str(out))

                def absent():
                    raise ModuleNotFoundError("No module named 'heart_sr_tf'")

                patch.setattr(runner, "tool_version", absent)
                with pytest.raises(
                    HeartSRError, match="a worker cannot run this tool's code \\(ModuleNotFoundError: No"
                ):
                    runner.check_workers(client, "S", [str(inputs)], str(out))
        result = CliRunner().invoke(main, [*args, "--scheduler", cluster.scheduler_address])
        assert result.exit_code == 0 and "1 done, 0 skipped" in result.output, result.output
    assert nib.load(str(out / "p001.nii.gz")).shape == (180, 180, 3)


def test_one_cohort_at_a_time_writes_an_output_folder(cohort_inputs, tmp_path):
    """A second run on the same --out-dir is refused while the first holds its lock (named by host and process);
    a lock whose process is gone (a run killed with SIGKILL) is taken over; one from another host names the file
    to remove. The lock is gone when a run ends."""
    import socket

    from heart_sr_tf.cli import main
    from heart_sr_tf.folder_lock import lock_name

    inputs, model = cohort_inputs
    out = tmp_path / "out"
    out.mkdir()
    args = ["cohort", str(inputs / "p001.nii.gz"), "--out-dir", str(out), "--model", str(model), "--quiet"]
    args += ["--workers", "1", "--backend", "tensorflow", "--precision", "float32"]
    lock, host = out / lock_name("cohort"), socket.gethostname()
    lock.write_text(f"{host}\n{os.getpid()}\n2026-12-04 10:00:00\n")  # a live run: this very process
    held = CliRunner().invoke(main, args)
    assert held.exit_code == 2 and "Traceback" not in held.output
    assert f"{out}: another cohort is writing here (process {os.getpid()} on {host}, since 2026-12-04 10:00:00); " in (
        held.output
    )
    assert "wait for it to finish or stop it" in held.output and not (out / "p001.nii.gz").exists()
    lock.write_text("node-7.cluster\n4242\n2026-12-04 09:00:00\n")  # another host's: cannot be checked here
    elsewhere = CliRunner().invoke(main, args)
    assert elsewhere.exit_code == 2 and f"remove {lock}" in elsewhere.output, elsewhere.output
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    lock.write_text(f"{host}\n{gone.stdout.strip()}\n2026-12-04 08:00:00\n")  # a run killed: its process is gone
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "1 done" in result.output, result.output
    assert (out / "p001.nii.gz").is_file() and not lock.exists()


def test_a_worker_killed_mid_run_costs_only_a_retry(cohort_inputs, tmp_path):
    import psutil

    inputs, model = cohort_inputs
    out = tmp_path / "out"
    args = [sys.executable, "cli.py", "cohort", str(inputs), "--out-dir", str(out), "--model", str(model)]
    args += ["--workers", "2", "--backend", "tensorflow", "--quiet"]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    killed = None
    deadline = time.time() + 120
    while killed is None and time.time() < deadline and process.poll() is None:
        if not (out / "cohort.csv").is_file():  # the cluster is up and upscaling once a first scan is recorded
            time.sleep(0.1)
            continue
        workers = [p for p in psutil.Process(process.pid).children(recursive=True) if "spawn" in " ".join(p.cmdline())]
        busy = [w for w in workers if w.cpu_percent(interval=0.1) > 20]  # a worker upscaling
        if busy:
            os.kill(busy[0].pid, signal.SIGKILL)
            killed = busy[0].pid
    stdout, stderr = process.communicate(timeout=300)
    assert killed is not None, "no busy worker was seen"
    assert "8 done" in stdout and "1 failed" in stdout, stdout + stderr[-2000:]
    assert sorted(p.name for p in out.glob("*.nii.gz")) == [f"p{n:03d}.nii.gz" for n in range(1, 8)]
    assert not [p for p in out.rglob(".heart-sr-*")]


def _stopped_cohort(cohort_inputs, out: Path, signum: int, *extra: str):
    """``(args, returncode, stdout, stderr, rows)``: a cohort of ``cohort_inputs`` on one worker, one slice per
    call, sent ``signum`` once its first scan is recorded (the cluster up and upscaling)."""
    inputs, model = cohort_inputs
    args = [sys.executable, "cli.py", "cohort", str(inputs), "--out-dir", str(out), "--model", str(model)]
    args += ["--workers", "1", "--backend", "tensorflow", "--batch-size", "1", *extra]
    process = subprocess.Popen(args, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (out / "cohort.csv").is_file() and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signum)
    stdout, stderr = process.communicate(timeout=120)
    return args, process.returncode, stdout, stderr, (out / "cohort.csv").read_text().splitlines()[1:]


def test_sigint_stops_the_cohort_cleanly_and_it_resumes(cohort_inputs, tmp_path):
    out = tmp_path / "out"
    args, returncode, stdout, stderr, rows = _stopped_cohort(cohort_inputs, out, signal.SIGINT, "--quiet")
    if returncode != 1:  # interrupted before the end (the usual case): said so, nothing half-written
        assert returncode == 130, stderr[-2000:]
        assert "interrupted; what finished is in" in stdout and "Traceback" not in stderr
        assert "absl" not in stderr and "cuda" not in stderr.lower(), stderr  # no library noise from the workers
    assert not [p for p in out.rglob(".heart-sr-*")]
    done = {row.split(",")[0] for row in rows if ",done," in row}
    again = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert f"{8 - len(done)} done, {len(done)} skipped (already done), 1 failed" in again.stdout, again.stdout


def test_sigterm_stops_the_cohort_and_its_line_comes_last(cohort_inputs, tmp_path):
    """SIGTERM (a scheduler's time limit, kill) while scans are upscaled: the cluster stops, nothing half-written
    or locked is left, and "terminated" is the last line, after the progress bar's own last one (it was said
    first, then the bar was drawn again over it as it closed)."""
    out = tmp_path / "out"
    _, returncode, _, stderr, rows = _stopped_cohort(cohort_inputs, out, signal.SIGTERM)  # (the bar is drawn)
    assert returncode == 128 + signal.SIGTERM and len(rows) < 9, (rows, stderr[-2000:])
    lines = [line.strip() for line in re.split(r"[\r\n]", stderr) if line.strip()]
    assert lines[-1] == "terminated" and "cohort:" in stderr, stderr[-2000:]
    assert "Traceback" not in stderr and "resource_tracker" not in stderr, stderr[-2000:]
    assert not [p for p in out.rglob(".heart-sr-*")]  # no lock, no part file


def test_tasks_on_one_multi_threaded_worker_take_turns_with_its_models(cohort_inputs, tmp_path):
    """A worker of an existing cluster may run several tasks at once; its cached OpenVINO model serves one call at
    a time ("Infer Request is busy" otherwise)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    from concurrent.futures import ThreadPoolExecutor

    from heart_sr_tf.cohort.task import upscale_task

    inputs, model = cohort_inputs
    options = {
        "model": str(model), "in_plane": False, "through_plane": False, "through_plane_model": None,
        "backend": "openvino", "precision": "float32", "batch_size": 1,
    }  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        results = list(
            pool.map(lambda n: upscale_task(str(inputs / f"p{n:03d}.nii.gz"), str(tmp_path / f"{n}.nii.gz"), options),
                     range(1, 8))
        )  # fmt: skip
    assert [r["status"] for r in results] == ["done"] * 7, results


def test_a_cohort_keeps_a_file_that_appears_at_an_output_while_it_works(short_cine, tmp_path, monkeypatch):
    """A scan's outputs were checked before its work (the cohort's own earlier results, or nothing), then written
    with overwrite, so a lab's file put at the output, or at --measure's label map, while the model or the
    segmenter ran was replaced. Only a result that stood there at the check is replaced now: the file is kept and
    the scan fails naming it. A resumed scan's own earlier result is still replaced."""
    from heart_sr_tf.cohort import task
    from heart_sr_tf.inference.predictor import load_predictor
    from heart_sr_tf.inference.segmenter import Segmenter
    from heart_sr_tf.volumes.measure import measure_outputs

    models = tmp_path / "models"
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), models, "tiny", degradation=Degradation())
    options = {
        "model": str(models / "tiny"), "in_plane": False, "through_plane": False, "through_plane_model": None,
        "backend": "tensorflow", "precision": "float32", "batch_size": 4, "measure": True, "segmenter": "segmenter",
    }  # fmt: skip
    predictor, segmenter = load_predictor(models / "tiny", "tensorflow", "float32"), Segmenter()
    out = tmp_path / "sr.nii.gz"
    labels, table = measure_outputs(out)
    for appears, model, seg, unwritten in (
        (out, Meanwhile(predictor, out), segmenter, labels),  # while the model runs
        (labels, predictor, Meanwhile(segmenter, labels), table),  # while the segmenter runs
    ):
        monkeypatch.setattr(task, "_in_plane", lambda options, model=model: model)
        monkeypatch.setattr(task, "_segmenter", lambda path, seg=seg: seg)
        result = task.upscale_task(str(short_cine), str(out), options)
        assert result["status"] == "failed" and result["error"].startswith(f"{appears}: appeared while"), result
        assert appears.read_text() == "a lab's file" and not unwritten.exists()
        appears.unlink()
    monkeypatch.setattr(task, "_segmenter", lambda path: segmenter)
    rows, columns = nib.load(str(short_cine)).shape[:2]
    for _ in range(2):  # the second: a resumed scan, its own earlier results replaced
        assert task.upscale_task(str(short_cine), str(out), options)["status"] == "done"
        assert nib.load(str(out)).shape[:2] == (3 * rows, 3 * columns) and labels.is_file() and table.is_file()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary output left


def test_cohort_measure_tabulates_every_scan_next_to_the_scan_as_acquired(short_cine, tmp_path):
    """A cine and a single frame, measured by the shipped segmenter on the workers: each scan's label map and
    volume table as ``upscale --measure`` writes them, and one row per scan in measurements.csv, rebuilt on a
    resumed run; a bad segmenter or a stray --segmenter refused before any work."""
    from heart_sr_tf.cardiac_metrics import cine_measurements
    from heart_sr_tf.cli import main
    from heart_sr_tf.volumes.measure import read_volumes

    inputs = tmp_path / "in"
    inputs.mkdir()
    cine = nib.load(str(short_cine))
    nib.save(cine, str(inputs / "cine.nii.gz"))
    frame = nib.Nifti1Image(np.asarray(cine.dataobj)[..., 0], cine.affine, cine.header)
    nib.save(frame, str(inputs / "frame.nii.gz"))
    lax = nib.Nifti1Image(np.asarray(cine.dataobj)[:, :, :1], cine.affine, cine.header)  # one slice: no volumes
    nib.save(lax, str(inputs / "lax.nii.gz"))
    padded = np.asarray(cine.dataobj, dtype=np.float32)[..., :1].copy()
    padded[:2] = np.nan  # a resampling tool's NaN padding: upscaled (NaN kept), not segmented
    nib.save(nib.Nifti1Image(padded, cine.affine), str(inputs / "padded.nii.gz"))
    models = tmp_path / "models"
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), models, "tiny", degradation=Degradation())
    out = tmp_path / "out"
    args = ["cohort", str(inputs), "--out-dir", str(out), "--model", str(models / "tiny"), "--workers", "1",
            "--quiet", "--backend", "tensorflow", "--precision", "float32", "--measure"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "4 done" in result.output and "measurements of 2 scan(s)" in result.output
    assert f"warning: {inputs / 'lax.nii.gz'}: not measured: 1 slice(s): volumes need a short-axis stack" in (
        result.stderr
    )
    assert (out / "lax.nii.gz").is_file() and not (out / "lax_volumes.csv").exists()
    nan_count = 2 * padded.shape[1] * padded.shape[2]
    assert f"warning: {inputs / 'padded.nii.gz'}: not measured: {nan_count:,} voxels are NaN" in result.stderr
    upscaled = np.asarray(nib.load(str(out / "padded.nii.gz")).dataobj)
    assert np.isnan(upscaled[:4]).all() and not np.isnan(upscaled[6:]).any()  # NaN where the padding went
    assert not (out / "padded_volumes.csv").exists()
    lines = (out / "measurements.csv").read_text().splitlines()
    assert lines[0].startswith("# volumes from an automatic segmenter trained on ACDC")
    rows = {Path(r["input"]).name: r for r in csv.DictReader(lines[1:])}
    assert set(rows) == {"cine.nii.gz", "frame.nii.gz"}
    assert rows["cine.nii.gz"]["frames"] == "3" and rows["frame.nii.gz"]["frames"] == "1"
    expected = cine_measurements(read_volumes(out / "cine_volumes.csv"))
    acquired = cine_measurements(read_volumes(out / "cine_volumes.csv"), "acquired_")
    assert (
        10 < float(rows["cine.nii.gz"]["LVEF_pct"]) < 90 and 10 < float(rows["cine.nii.gz"]["acquired_LVEF_pct"]) < 90
    )
    assert float(rows["cine.nii.gz"]["LVEF_pct"]) == pytest.approx(expected["LVEF_pct"], abs=0.01)
    assert float(rows["cine.nii.gz"]["acquired_myo_mass_g"]) == pytest.approx(acquired["myo_mass_g"], abs=0.01)
    assert rows["frame.nii.gz"]["LVEF_pct"] == ""  # one frame: no ED and ES
    assert nib.load(str(out / "cine_labels.nii.gz")).shape == nib.load(str(out / "cine.nii.gz")).shape
    (out / "measurements.csv").unlink()
    again = CliRunner().invoke(main, args)
    assert "0 done, 4 skipped (already done)" in again.output and "measurements of 2 scan(s)" in again.output
    assert (out / "measurements.csv").read_text().splitlines() == lines
    (out / "frame.nii.gz").unlink()  # redone, and now failing: its old volume table stays, but not in the table
    (inputs / "frame.nii.gz").write_bytes(b"\x1f\x8b not a scan")
    failed = CliRunner().invoke(main, args)
    assert failed.exit_code == 1 and "measurements of 1 scan(s)" in failed.output, failed.output
    assert (out / "frame_volumes.csv").is_file()
    assert [Path(r["input"]).name for r in csv.DictReader((out / "measurements.csv").read_text().splitlines()[1:])] == [
        "cine.nii.gz"
    ]
    refused = CliRunner().invoke(main, [*args, "--segmenter", str(models / "tiny")])
    assert refused.exit_code == 2 and "a super-resolution model, not a segmenter" in refused.output
    stray = CliRunner().invoke(main, [a for a in args if a != "--measure"] + ["--segmenter", str(models / "tiny")])
    assert stray.exit_code == 2 and "--segmenter goes with --measure" in stray.output
    manifest = tmp_path / "m.csv"  # the cine's height and weight from a manifest: indexed volumes
    manifest.write_text(f"input,height_cm,weight_kg\n{inputs / 'cine.nii.gz'},180,81\n")
    indexed = CliRunner().invoke(main, ["cohort", str(manifest), *args[2:]])
    assert indexed.exit_code == 0 and "1 done" in indexed.output, indexed.output  # (its height and weight are new)
    (row,) = csv.DictReader((out / "measurements.csv").read_text().splitlines()[1:])
    assert float(row["BSA_m2"]) == pytest.approx(2.01, abs=0.005)  # Mosteller: sqrt(180 x 81 / 3600)
    indexed_lvedv = float(row["LVEDV_ml"]) / float(row["BSA_m2"])
    assert float(row["LVEDVi_ml_m2"]) == pytest.approx(indexed_lvedv, rel=0.005)  # (both rounded)
    assert "from the manifest's height 1.80 m" in (out / "cine_volumes.csv").read_text()
    # the same cohort again without --measure: each result replaced takes its measurements along, and the table
    # keeps no row of a result that is gone (both stayed, read as the new results' measurements)
    plain = CliRunner().invoke(main, ["cohort", str(manifest), *[a for a in args[2:] if a != "--measure"]])
    assert plain.exit_code == 0 and "1 done" in plain.output, plain.output
    assert not (out / "cine_volumes.csv").exists() and not (out / "cine_labels.nii.gz").exists()
    assert "measurements.csv rebuilt: 0 scan(s) still measured" in plain.output
    assert list(csv.DictReader((out / "measurements.csv").read_text().splitlines()[1:])) == []


def test_a_manifest_gives_height_and_weight_for_nifti_scans(tmp_path):
    """NIfTI holds no patient's height and weight: a manifest's ``height_cm`` and ``weight_kg`` give them (a comma
    as the decimal mark too), both or neither; a change of them makes the scan's result out of date; values no
    patient has are one line naming the row."""
    (tmp_path / "a.nii.gz").write_text("")
    (tmp_path / "b.nii.gz").write_text("")
    manifest = tmp_path / "m.csv"
    manifest.write_text("input;height_cm;weight_kg\na.nii.gz;172,5;81\nb.nii.gz;;\n")
    first, second = find_jobs(str(manifest), tmp_path / "out")
    assert first.body == pytest.approx((1.725, 81.0)) and second.body is None
    manifest.write_text("input;height_cm;weight_kg\na.nii.gz;172,5;82\nb.nii.gz;;\n")
    again = find_jobs(str(manifest), tmp_path / "out")
    assert again[0].state != first.state and again[1].state == second.state  # measured with another weight
    for cells, message in [
        ("172;", "weight_kg is empty; give height_cm and weight_kg both, or neither"),
        ("1.72;81", "height_cm 1.72, weight_kg 81: not a patient's (30 to 250 cm, 2 to 400 kg)"),  # metres
        ("tall;81", "height_cm 'tall', weight_kg '81': not numbers"),
    ]:
        manifest.write_text(f"input;height_cm;weight_kg\na.nii.gz;{cells}\n")
        with pytest.raises(HeartSRError, match=re.escape(f"m.csv:2: {message}")):
            find_jobs(str(manifest), tmp_path / "out")


def test_a_manifest_that_would_be_misread_is_one_line_naming_it(tmp_path):
    """A decimal comma in a comma-separated manifest ("172,5") shifted every cell after it: height 172, weight 5 kg
    (a patient's, so no check caught it), the real weight dropped. A column "height" for "height_cm" was left out
    unsaid, and a manifest without rows started a cluster for nothing. Each is now one line; a column of the
    lab's own ("notes") and fewer cells than columns are still fine."""
    (tmp_path / "a.nii.gz").write_text("")
    manifest = tmp_path / "m.csv"
    for text, message in [
        ("input,height_cm,weight_kg\na.nii.gz,172,5,81\n", "m.csv:2: 4 cells, but the header names 3 columns: a value "
         "holding the separator ',' (a decimal comma, a path with a comma)? quote it or use ';'"),
        ("input,height,weight_kg\na.nii.gz,172,81\n", "m.csv: column 'height' is not read; did you mean 'height_cm'?"),
        ("input,output\n,\n", "m.csv: a manifest without rows: no scan to upscale"),
    ]:  # fmt: skip
        manifest.write_text(text)
        with pytest.raises(HeartSRError, match=re.escape(message)):
            find_jobs(str(manifest), tmp_path / "out")
    manifest.write_text('input,height_cm,weight_kg,notes,patient,patient_id\na.nii.gz,"172,5",81,site 2\n')
    (job,) = find_jobs(str(manifest), tmp_path / "out")
    assert job.body == pytest.approx((1.725, 81.0))


def test_a_manifest_gives_the_slice_thickness_and_a_sidecar_counts_in_the_state(tmp_path):
    """A manifest's ``slice_thickness_mm`` (for --through-plane, before the header's) is read as a positive number
    in mm (a comma as the decimal mark too), and a change of it makes the result out of date; so does a NIfTI's
    BIDS sidecar added or edited, whose SliceThickness also chooses the model; a bad cell is one line naming the
    row."""
    (tmp_path / "a.nii.gz").write_text("")
    (tmp_path / "b.nii.gz").write_text("")
    manifest = tmp_path / "m.csv"
    manifest.write_text("input;slice_thickness_mm\na.nii.gz;7,5\nb.nii.gz;\n")
    first, second = find_jobs(str(manifest), tmp_path / "out")
    assert first.thickness == 7.5 and second.thickness is None
    manifest.write_text("input;slice_thickness_mm\na.nii.gz;8\nb.nii.gz;\n")
    again = find_jobs(str(manifest), tmp_path / "out")
    assert again[0].state != first.state and again[1].state == second.state
    (tmp_path / "b.json").write_text('{"SliceThickness": 8}')  # dcm2niix's sidecar beside b.nii.gz
    with_sidecar = find_jobs(str(manifest), tmp_path / "out")[1]
    assert with_sidecar.state != second.state
    (tmp_path / "b.json").write_text('{"SliceThickness": 6, "RepetitionTime": 3.1}')
    assert find_jobs(str(manifest), tmp_path / "out")[1].state != with_sidecar.state
    for cell in ("thick", "0", "-8", "nan", "inf"):
        manifest.write_text(f"input,slice_thickness_mm\na.nii.gz,{cell}\n")
        message = f"m.csv:2: slice_thickness_mm '{cell}': not a slice thickness in mm (a positive number)"
        with pytest.raises(HeartSRError, match=re.escape(message)):
            find_jobs(str(manifest), tmp_path / "out")


def test_a_cohort_warns_as_upscale_does_of_a_label_map_given_as_a_scan(tmp_path):
    """A label map passed as a scan is upscaled with a warning line in a cohort too (it came back silently)."""
    from heart_sr_tf.cli import main

    inputs = tmp_path / "in"
    inputs.mkdir()
    labels = np.zeros((30, 30, 2), np.uint8)
    labels[5:25, 5:25], labels[8:22, 8:22], labels[11:19, 11:19] = 1, 2, 3
    nib.save(nib.Nifti1Image(labels, np.diag([1.5, 1.5, 8.0, 1.0])), str(inputs / "gt.nii.gz"))
    models = tmp_path / "models"
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), models, "tiny", degradation=Degradation())
    args = ["cohort", str(inputs), "--out-dir", str(tmp_path / "out"), "--model", str(models / "tiny"),
            "--workers", "1", "--quiet", "--backend", "tensorflow", "--precision", "float32"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 done" in result.stdout and (tmp_path / "out" / "gt.nii.gz").is_file()
    expected = f"warning: {inputs / 'gt.nii.gz'}: holds only 4 distinct values (0, 1, 2, 3): is it a label map?"
    assert expected in result.stderr


def test_a_flat_study_folder_is_upscaled_series_by_series_and_resumes(cohort_inputs, tmp_path):
    """A study exported flat: each cine series is upscaled into its own file, exactly as ``upscale --series``
    makes it; the localiser among them is left out, named; a stack with one slice tilted is one failed row naming
    its series; a re-run skips the done series."""
    from dicom_series import oblique, write_localiser

    from heart_sr_tf.cli import main

    _, model = cohort_inputs
    study = tmp_path / "study"
    values = np.random.default_rng(0).integers(0, 400, (20, 24, 2, 2)).astype(np.float32) * 2.0 - 10.0
    sax = Cine(values)
    write_cine(study, sax, prefix="a")
    write_cine(study, Cine(values[:, :, :1] + 4.0, series_number=9, description="cine_2ch"), prefix="b")
    write_localiser(study, sax.study_uid)

    def tilted(z, t, ds):  # slice 1 planned 10 degrees off the others: a broken stack, not a localiser
        if z == 1:
            row, col = oblique(35.0)
            ds.ImageOrientationPatient = [f"{v:.6f}" for v in (*row, *col)]

    write_cine(study, Cine(values, series_number=11, description="cine_sax_tilted"), prefix="c", edit=tilted)
    out = tmp_path / "out"
    args = ["cohort", str(study), "--out-dir", str(out), "--model", str(model), "--workers", "1", "--quiet",
            "--backend", "tensorflow", "--precision", "float32"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1, result.output
    assert "2 done, 0 skipped (already done), 1 failed, 1 left out (no scan to upscale" in result.output
    left = [line for line in result.stderr.splitlines() if line.startswith(f"left out: {study} (series series-1_")]
    assert len(left) == 1 and "its plane lies 90 degrees from loc0's" in left[0] and left[0].endswith("not upscaled")
    assert f"failed: {study} (series series-11_cine_sax_tilted): " in result.output
    assert "--series-description '*sax*' (say) takes only the series to upscale" in result.output
    single = tmp_path / "single.nii.gz"
    assert CliRunner().invoke(main, ["upscale", str(study), str(single), "--series", "7", "--model", str(model),
                                     "--backend", "tensorflow", "--precision", "float32"]).exit_code == 0  # fmt: skip
    done = out / "study" / "series-7_cine_retro_sax.nii.gz"
    np.testing.assert_array_equal(nib.load(str(done)).get_fdata(), nib.load(str(single)).get_fdata())
    assert nib.load(str(out / "study" / "series-9_cine_2ch.nii.gz")).shape[:2] == (60, 72)
    again = CliRunner().invoke(main, args)
    assert "0 done, 2 skipped (already done), 1 failed, 1 left out" in again.output, again.output


def test_cohort_dicom_out_writes_derived_series_and_resumes(cohort_inputs, tmp_path):
    """--dicom-out: a DICOM scan's result is a derived series in its study, pixel for pixel what ``upscale ...
    OUT/`` writes; a NIfTI scan stays NIfTI; a re-run finds both done. Series named with dots (a UID, a
    description like ``2.5mm``) are folders all the same."""
    import pydicom

    from heart_sr_tf.cli import main

    inputs, model = cohort_inputs
    study = tmp_path / "in" / "study"
    values = np.random.default_rng(1).integers(0, 400, (20, 24, 2, 2)).astype(np.float32) * 2.0 - 10.0
    write_cine(study, Cine(values, description="cine 2.5mm"), prefix="a")
    write_cine(study, Cine(values[:, :, :1] + 4.0, series_number=9, description="cine_2ch"), prefix="b")
    nib.save(nib.load(str(inputs / "p001.nii.gz")), str(tmp_path / "in" / "p001.nii.gz"))
    out = tmp_path / "out"
    args = ["cohort", str(tmp_path / "in"), "--out-dir", str(out), "--model", str(model), "--workers", "1",
            "--quiet", "--backend", "tensorflow", "--precision", "float32", "--dicom-out"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0 and "3 done, 0 skipped (already done), 0 failed" in result.output, result.output
    assert (out / "p001.nii.gz").is_file()
    derived = out / "study" / "series-7_cine_2_5mm"
    single = tmp_path / "single.v2"  # a dot in its name: the trailing / still names a folder
    one = CliRunner().invoke(main, ["upscale", str(study), str(single) + "/", "--series", "7", "--model", str(model),
                                    "--backend", "tensorflow", "--precision", "float32"])  # fmt: skip
    assert one.exit_code == 0, one.output

    def pixels(folder):
        images = [pydicom.dcmread(p) for p in sorted(folder.iterdir()) if not p.name.startswith(".")]
        return sorted((float(ds.SliceLocation), float(ds.TriggerTime), ds.pixel_array.tobytes()) for ds in images)

    assert len(pixels(derived)) == 4 and pixels(derived) == pixels(single)
    assert pydicom.dcmread(next(derived.glob("[!.]*"))).SeriesNumber == 1007
    assert (out / "study" / "series-9_cine_2ch").is_dir()
    again = CliRunner().invoke(main, args)
    assert "0 done, 3 skipped (already done), 0 failed" in again.output, again.output
    # a scan changed since its result was written (re-exported, corrected) is done again, never kept stale
    scan = tmp_path / "in" / "p001.nii.gz"
    image = nib.load(str(scan))
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj)[::-1].copy(), image.affine, image.header), str(scan))
    changed = CliRunner().invoke(main, args)
    assert "1 done (1 again: changed since done), 2 skipped (already done)" in changed.output, changed.output
    redone = nib.load(str(out / "p001.nii.gz")).get_fdata()
    single = tmp_path / "p001_single.nii.gz"
    assert CliRunner().invoke(main, ["upscale", str(scan), str(single), "--model", str(model), "--backend",
                                     "tensorflow", "--precision", "float32"]).exit_code == 0  # fmt: skip
    np.testing.assert_array_equal(redone, nib.load(str(single)).get_fdata())
    file = next(study.iterdir())  # a file of the flat study folder: each of its series is done again
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))
    assert "2 done (2 again: changed since done), 1 skipped" in CliRunner().invoke(main, args).output
    # a status file from before the input_state column: taken as it was, its columns brought up to date
    status = out / "cohort.csv"
    with status.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    with status.open("w", newline="") as handle:
        old = csv.DictWriter(handle, fieldnames=[f for f in rows[0] if f != "input_state"], extrasaction="ignore")
        old.writeheader()
        old.writerows(rows)
    file = tmp_path / "in" / "p001.nii.gz"
    os.utime(file, ns=(file.stat().st_atime_ns, file.stat().st_mtime_ns + 10**9))
    older = CliRunner().invoke(main, args)
    assert "0 done, 3 skipped (already done)" in older.output, older.output
    assert status.read_text().splitlines()[0].endswith(",error,input_state")


def test_a_cohort_leaves_out_its_own_results_among_the_scans(cohort_inputs, tmp_path):
    """A result of this tool lying among the scans (a derived series sent back to the PACS and exported with the
    study) is not upscaled again: one line, not a failure."""
    from heart_sr_tf.cli import main
    from heart_sr_tf.inference.predictor import load_local_model
    from heart_sr_tf.volumes.upscale import upscale_file

    inputs, model = cohort_inputs
    scans = tmp_path / "in"
    scans.mkdir()
    nib.save(nib.load(str(inputs / "p002.nii.gz")), str(scans / "p002.nii.gz"))
    upscale_file(scans / "p002.nii.gz", scans / "p002_x3.nii.gz", load_local_model(model, "tensorflow", "float32"),
                 quiet=True)  # fmt: skip
    args = ["cohort", str(scans), "--out-dir", str(tmp_path / "out"), "--model", str(model), "--workers", "1",
            "--quiet", "--backend", "tensorflow", "--precision", "float32"]  # fmt: skip
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    assert "1 done, 0 skipped (already done), 0 failed, 1 left out (no scan to upscale" in result.output
    assert f"left out: {scans / 'p002_x3.nii.gz'}: was written by heart-sr" in result.stderr
    assert not (tmp_path / "out" / "p002_x3.nii.gz").exists()


def test_cohort_measure_starts_quietly_whatever_the_backend(short_cine, cohort_inputs, tmp_path):
    """With the default backend the model runs in OpenVINO, but --measure's segmenter runs in TensorFlow on the
    workers: its start-up lines reached the user's terminal once the model's OpenVINO form was cached (converting
    it had imported TensorFlow quietly first; the TensorFlow backend alone was imported quietly)."""
    _, model = cohort_inputs
    inputs = tmp_path / "in"
    inputs.mkdir()
    nib.save(nib.load(str(short_cine)), str(inputs / "cine.nii.gz"))
    for run in ("first", "cached"):  # the second finds the model's OpenVINO form cached by the first
        args = [sys.executable, "cli.py", "cohort", str(inputs), "--out-dir", str(tmp_path / run), "--model",
                str(model), "--workers", "1", "--measure", "--quiet"]  # fmt: skip
        done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=300)
        assert done.returncode == 0 and "1 done" in done.stdout, done.stderr[-2000:]
        noise = [line for line in done.stderr.splitlines() if "absl" in line or "I0000" in line or "oneDNN" in line]
        assert not noise, (run, noise)
        assert (tmp_path / run / "cine_volumes.csv").is_file()


def test_a_cohort_never_replaces_a_file_it_did_not_write(cohort_inputs, tmp_path):
    """A file someone put where a new scan's result goes, in a cohort's folder, is not replaced: that scan fails
    with one line naming it, the others go on; the cohort's own earlier results are replaced when their scan
    changes. Before, such a file was overwritten without a word."""
    import shutil

    from heart_sr_tf.cli import main
    from heart_sr_tf.volumes.measure import foreign_outputs

    inputs, model = cohort_inputs
    scans, out = tmp_path / "in", tmp_path / "out"
    scans.mkdir()
    shutil.copy(inputs / "p001.nii.gz", scans)
    args = ["cohort", str(scans), "--out-dir", str(out), "--model", str(model), "--workers", "1", "--quiet"]
    args += ["--backend", "tensorflow"]
    assert "1 done" in CliRunner().invoke(main, args).output
    assert foreign_outputs(out / "p001.nii.gz") == []  # its own result
    shutil.copy(inputs / "p002.nii.gz", scans)
    (out / "p002.nii.gz").write_text("a colleague's file")
    shutil.copy(inputs / "p003.nii.gz", scans / "p001.nii.gz")  # p001's scan changed: its result is redone
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 1 and "1 done (1 again: changed since done), 0 skipped (already done), 1 failed" in (
        result.output
    ), result.output
    line = f"failed: {out / 'p002.nii.gz'}: exists and was not written by heart-sr; move it away"
    assert line in result.output and (out / "p002.nii.gz").read_text() == "a colleague's file"
    redone = np.asarray(nib.load(str(out / "p001.nii.gz")).dataobj)
    assert redone.shape[:2] == (180, 180) and foreign_outputs(out / "p001.nii.gz") == []
    (out / "p002_volumes.csv").write_text("mine\n")
    assert foreign_outputs(out / "p002.nii.gz", measure=True) == [out / "p002.nii.gz", out / "p002_volumes.csv"]
    raw = bytearray(gzip.decompress((out / "p001.nii.gz").read_bytes()))  # a NIfTI whose header nibabel cannot
    raw[70:72] = (999).to_bytes(2, "little")  # read (datatype code 999) is foreign, not a crash
    (out / "bad.nii").write_bytes(bytes(raw))
    assert foreign_outputs(out / "bad.nii") == [out / "bad.nii"]
    (out / "p003_labels.nii.gz").mkdir()  # a folder, or a link to nothing, where --measure writes: in the way
    (out / "p003_volumes.csv").symlink_to(tmp_path / "gone.csv")
    in_the_way = [out / "p003_labels.nii.gz", out / "p003_volumes.csv"]
    assert foreign_outputs(out / "p003.nii.gz", measure=True) == in_the_way
    (out / "series").mkdir()  # a DICOM result's folder checks itself (refuse_output_folder)
    assert foreign_outputs(out / "series") == []


def test_file_names_that_are_not_utf8_go_through_and_resume(cohort_inputs, tmp_path):
    """A Latin-1 file name (``Müller.nii.gz`` copied from an old Windows share) reaches Python with a surrogate for
    its byte: the cohort failed in a traceback (hashing its name, then writing its status row), upscale to such an
    OUT too (checking the name's length), prepare --scans could not store its patient, and a line naming it raised
    under a strict locale (en_US.UTF-8) after the work. Now the cohort writes its result under the same bytes, its
    status row holds them, a second run skips it, and the lines print it escaped."""
    import shutil

    from heart_sr_tf.cohort.patients import find_scan_patients

    inputs, model = cohort_inputs
    scans = tmp_path / "scans"
    scans.mkdir()
    name = os.fsdecode(b"M\xfcller.nii.gz")
    shutil.copy(inputs / "p001.nii.gz", scans / name)
    out = tmp_path / "out"
    env = dict(os.environ, PYTHONIOENCODING="utf-8:strict", TF_CPP_MIN_LOG_LEVEL="3")
    common = ["--model", str(model), "--backend", "tensorflow", "--precision", "float32", "--quiet"]
    cohort = [sys.executable, str(ROOT / "cli.py"), "cohort", str(scans), "--out-dir", str(out), "--workers", "1"]
    first = subprocess.run([*cohort, *common], env=env, capture_output=True, text=True, errors="surrogateescape")
    assert first.returncode == 0 and "1 done, 0 skipped" in first.stdout, first.stderr[-2000:]
    assert nib.load(str(out / name)).shape == (180, 180, 3)
    with (out / "cohort.csv").open(newline="", encoding="utf-8", errors="surrogateescape") as handle:
        assert [row["output"] for row in csv.DictReader(handle)] == [str(out / name)]
    again = subprocess.run([*cohort, *common], env=env, capture_output=True, text=True, errors="surrogateescape")
    assert again.returncode == 0 and "0 done, 1 skipped" in again.stdout, again.stderr[-2000:]
    target = scans / os.fsdecode(b"sr_\xfc.nii.gz")
    upscale = [sys.executable, str(ROOT / "cli.py"), "upscale", str(scans / name), str(target), *common]
    result = subprocess.run(upscale, env=env, capture_output=True, text=True, errors="surrogateescape")
    assert result.returncode == 0 and f"wrote {scans}/sr_\\udcfc.nii.gz" in result.stdout, result.stderr[-2000:]
    (scans / os.fsdecode(b"sr_\xfc.nii.gz")).unlink()
    assert [patient for patient, _ in find_scan_patients(str(scans), quiet=True)] == ["M\\xfcller"]


def test_a_manifest_saved_in_a_windows_encoding_is_one_line_saying_so(tmp_path):
    """Excel's plain "CSV" on Windows is cp1252: the line said only which byte UTF-8 could not decode."""
    from heart_sr_tf.cohort.jobs import read_manifest

    manifest = tmp_path / "scans.csv"
    manifest.write_bytes("input,patient\nM\u00fcller.nii.gz,P01\n".encode("cp1252"))
    with pytest.raises(HeartSRError) as refused:
        read_manifest(manifest)
    assert str(refused.value) == f"{manifest}: unreadable CSV manifest (not UTF-8 text: save it as CSV UTF-8)"


def test_more_local_workers_than_cores_are_refused_before_any_work(tmp_path):
    """``--workers 999`` on 2 cores started 999 processes, each to load TensorFlow and the model: minutes of Dask's
    warnings, then a traceback. A local cluster takes at most one worker per core; by default 2, or the cores."""
    from heart_sr_tf.cli import main
    from heart_sr_tf.commands.cohort import DEFAULT_WORKERS, _local_workers
    from heart_sr_tf.hardware import usable_cores

    cores = usable_cores()
    (tmp_path / "in").mkdir()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        main, ["cohort", str(tmp_path / "in"), "--out-dir", str(out), "--workers", str(cores + 1)]
    )
    assert result.exit_code == 2 and "Traceback" not in result.output, result.output
    assert f"--workers {cores + 1}: this machine gives the cohort {cores} core" in result.output
    assert not out.exists()
    assert _local_workers(None, None) == min(DEFAULT_WORKERS, cores)  # the default never exceeds the cores
    assert _local_workers(cores, None) == cores
    assert _local_workers(cores + 10, "tcp://head-node:8786") == cores + 10  # another cluster's workers are its own
