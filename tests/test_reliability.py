"""Nothing lost, nothing silent: bad options, intensity outliers, odd data types, interruption, leftovers."""

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
from in_process import run_cli

from heart_sr_tf.errors import DataError, HeartSRError
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.volumes.upscale import _part_prefix, upscale_file

ROOT = Path(__file__).resolve().parents[1]
TINY = ROOT / "tests" / "configs" / "tiny.toml"


def _cli(*args, cwd=ROOT):
    """The command in this process (see in_process.py)."""
    return run_cli(*args, cwd=cwd)


def _fresh_cli(*args, cwd=ROOT, timeout=300):
    """The command in a new process: for what only a whole process shows (its start-up, TensorFlow's logging)."""
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.run(
        [sys.executable, str(ROOT / "cli.py"), *map(str, args)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def _one_error_line(result, *fragments):
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:") or line.startswith("Error:")]
    assert len(errors) == 1, result.stderr
    for fragment in fragments:
        assert fragment in errors[0], errors[0]


def _scan(path: Path, data: np.ndarray, dtype, slope=None, inter=0.0) -> Path:
    """``data`` in real units, stored as ``dtype``; with ``slope``, as the integers (data - inter) / slope (nibabel
    writes an array as it is once a slope is set)."""
    if slope is not None:
        data = np.round((data - inter) / slope).astype(dtype)
    image = nib.Nifti1Image(data, np.diag([1.5, 1.5, 8.0, 1.0]))
    image.set_data_dtype(dtype)
    if slope is not None:
        image.header.set_slope_inter(slope, inter)
    nib.save(image, str(path))
    return path


def _anatomy(shape, top: float, seed=0) -> np.ndarray:
    """A smooth image in [0, top] with a few very bright voxels (outliers above the 99.5th percentile)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.meshgrid(np.linspace(-1, 1, shape[0]), np.linspace(-1, 1, shape[1]), indexing="ij")
    base = np.clip(1 - (yy**2 + xx**2), 0, 1)[..., None] * np.ones(shape[2:])[None, None]
    data = 0.5 * top * base + 0.02 * top * rng.random(shape)
    flat = data.reshape(-1)
    flat[rng.choice(flat.size, 40, replace=False)] = top  # bright outliers: vessels, fat
    return data


@pytest.mark.parametrize(
    "dtype, top, slope",
    [
        (np.uint8, 255, None),
        (np.int16, 658, None),
        (np.float32, 1234.5, None),
        (np.int16, 3000.0, 0.5),
        (np.int16, 3.3, 0.001),  # real values of a few units stored as integers (e.g. a normalised export)
    ],
)
def test_upscale_keeps_the_intensity_range_of_every_data_type(tiny_export, tmp_path, dtype, top, slope):
    data = _anatomy((20, 24, 4), top)
    if np.issubdtype(dtype, np.integer) and slope is None:
        data = np.round(data)
    src = _scan(tmp_path / "in.nii.gz", data.astype(np.float32), dtype, slope)
    before = nib.load(str(src)).get_fdata()
    out = upscale_file(src, tmp_path / "out.nii.gz", load_predictor(tiny_export), quiet=True)
    image = nib.load(str(out))
    after = image.get_fdata()
    assert image.get_data_dtype() == np.dtype(dtype)
    assert after.shape == (60, 72, 4)
    # the brightest voxels keep their value at their own HR position, within the (tiny, barely trained) model's
    # error on the clipped part; clipping at the 99.5th percentile without giving the excess back loses ~30 %
    tolerance = 0.05 * before.max()
    bright = np.argwhere(before >= before.max() - 1e-3)
    assert len(bright) >= 10
    for i, j, k in bright[:10]:
        assert abs(after[3 * i, 3 * j, k] - before[i, j, k]) <= tolerance, (i, j, k)
    assert before.max() - tolerance <= after.max() <= before.max() + (slope or 1.0)  # bounded by the input's range
    assert after.min() >= before.min() - (slope or 1e-3)
    if slope is not None:  # stored with the input's own scaling: its quantisation step, not whole numbers
        assert image.dataobj.slope == pytest.approx(slope) and image.dataobj.inter == pytest.approx(0.0)
        assert len(np.unique(after)) > 200


@pytest.mark.parametrize(
    "dtype, slope, inter", [(np.uint8, 1.0, 0.0), (np.int16, 0.5, -100.0), (np.uint16, 0.001, 3.0), (np.int8, 2.0, 7.5)]
)
def test_stored_values_are_the_nearest_step_clipped_to_the_type(dtype, slope, inter):
    """The in-place conversion of a result to its stored type equals the plain formula: round half to even, then
    clip to the type's range (values beyond it included)."""
    from heart_sr_tf.volumes.upscale import to_stored

    info = np.iinfo(dtype)
    rng = np.random.default_rng(1)
    steps = rng.integers(int(info.min), int(info.max), size=(7, 9, 5)).astype(np.float64)
    steps += rng.choice([0.0, 0.5, -0.5, 0.25, 0.49], size=steps.shape)  # halves, both ways, and near-halves
    steps[0, 0, :3] = [info.min - 40.0, info.max + 40.0, info.max + 0.4]  # beyond the type's range
    values = (steps * slope + inter).astype(np.float32)
    expected = np.clip(np.round((values - inter) / slope), info.min, info.max).astype(dtype)  # (in float32)
    stored = to_stored(values.copy(), dtype, slope, inter)
    assert stored.dtype == np.dtype(dtype) and stored.shape == values.shape
    assert np.array_equal(stored, expected)
    assert stored[0, 0, 0] == info.min and stored[0, 0, 1] == info.max and stored[0, 0, 2] == info.max
    half = np.abs(steps - np.floor(steps) - 0.5) < 1e-9
    if slope == 1.0 and inter == 0.0:  # exact halves go to the even neighbour
        assert half.any() and np.all(stored[half] % 2 == 0)


def test_a_nifti2_scan_is_written_back_as_nifti2_without_a_complaint(tiny_export, tmp_path, caplog):
    data = np.round(_anatomy((20, 24, 4), 400.0)).astype(np.int16)
    image = nib.Nifti2Image(data, np.diag([1.5, 1.5, 8.0, 1.0]))
    nib.save(image, str(tmp_path / "in.nii.gz"))
    with caplog.at_level("DEBUG"):
        out = upscale_file(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", load_predictor(tiny_export), quiet=True)
    result = nib.load(str(out))
    assert isinstance(result, nib.Nifti2Image) and result.shape == (60, 72, 4)
    assert bytes(result.header["descrip"]).startswith(b"heart-sr x3 in-plane")  # it says what it is
    assert np.allclose(np.diag(result.affine)[:3], [0.5, 0.5, 8.0])
    assert not [r for r in caplog.records if r.name.startswith("nibabel")], caplog.text  # no "sizeof_hdr" line


def test_a_label_map_passed_as_the_scan_is_named_in_a_warning(phantom_root, tiny_export, tmp_path):
    folder = phantom_root / "training" / "patient001"
    gt = next(folder.glob("*_gt.nii.gz"))
    result = _cli("upscale", gt, tmp_path / "o.nii.gz", "--model", tiny_export, "--quiet")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1 and "label map" in warnings[0] and "(0, 1, 2, 3)" in warnings[0], result.stderr
    image = gt.with_name(gt.name.replace("_gt", ""))
    result = _cli("upscale", image, tmp_path / "i.nii.gz", "--model", tiny_export, "--quiet")
    assert result.returncode == 0 and "label map" not in result.stderr, result.stderr


def test_nifti_names_in_capitals_are_read_written_and_measured_as_lowercase_ones(phantom_root, tiny_export, tmp_path):
    """``SCAN.NII.GZ`` (Windows tools and some exports write capitals, and nibabel reads them): upscaled into a
    gzip-compressed ``OUT.NII.GZ`` equal to the lowercase run's output; it was refused as not NIfTI, and a cohort
    folder skipped such files without a word."""
    from heart_sr_tf.volumes.measure import measure_outputs

    frame = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    upper = tmp_path / "SCAN.NII.GZ"
    upper.write_bytes(frame.read_bytes())
    result = _cli("upscale", upper, tmp_path / "OUT.NII.GZ", "--model", tiny_export, "--quiet")
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "OUT.NII.GZ").read_bytes()[:2] == b"\x1f\x8b"  # gzip, as the name says
    lower = _cli("upscale", frame, tmp_path / "out.nii.gz", "--model", tiny_export, "--quiet")
    assert lower.returncode == 0, lower.stderr
    np.testing.assert_array_equal(
        nib.load(str(tmp_path / "OUT.NII.GZ")).get_fdata(), nib.load(str(tmp_path / "out.nii.gz")).get_fdata()
    )
    assert [p.name for p in measure_outputs(tmp_path / "OUT.NII.GZ")] == ["OUT_labels.nii.gz", "OUT_volumes.csv"]
    refused = _cli("upscale", upper, tmp_path / "OUT.NII.GZ", "--model", tiny_export, "--quiet")
    assert refused.returncode == 2 and "exists; pass --overwrite" in refused.stderr


def test_bad_batch_sizes_are_refused_before_any_work(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    for value in ("0", "-1", "-3"):
        result = _cli("upscale", src, tmp_path / "o.nii.gz", "--model", tiny_export, "--batch-size", value)
        _one_error_line(result, "--batch-size")
        assert not list(tmp_path.iterdir())


def test_an_unwritable_output_fails_before_inference(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    (tmp_path / "afile").write_text("x")
    _one_error_line(_cli("upscale", src, tmp_path / "afile" / "o.nii.gz", "--model", tiny_export), "is a file")
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):
            pytest.skip("running as a user who can write anywhere (root): the permission check cannot fail here")
        _one_error_line(_cli("upscale", src, locked / "o.nii.gz", "--model", tiny_export), "cannot write")
    finally:
        locked.chmod(0o700)


def test_a_result_larger_than_the_free_space_is_refused_before_inference(phantom_root, tiny_export, tmp_path):
    """The result's size is known before any inference: an uncompressed NIfTI's exactly (its voxels at the input's
    data type), a gzipped one's as a lower bound; where the file system holds less, one line and nothing written."""
    import shutil

    from heart_sr_tf.data.scan import read_scan
    from heart_sr_tf.volumes.upscale import InPlane, check_space, expected_bytes

    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    predictor = load_predictor(tiny_export)
    written = upscale_file(src, tmp_path / "o.nii", predictor, quiet=True)
    scan, steps = read_scan(src), [InPlane(predictor, 16)]
    assert expected_bytes(scan, steps, False, False) == written.stat().st_size - 352  # (the NIfTI-1 header)
    upscale_file(src, tmp_path / "o.nii.gz", predictor, quiet=True)
    assert expected_bytes(scan, steps, False, True) <= (tmp_path / "o.nii.gz").stat().st_size
    free = shutil.disk_usage(tmp_path).free
    check_space(tmp_path / "new" / "x.nii", free // 2)  # (the nearest existing folder's file system)
    with pytest.raises(HeartSRError, match=r"x.nii: the result needs at least .* MB and .* MB are free there"):
        check_space(tmp_path / "new" / "x.nii", free + 10**12)
    assert not (tmp_path / "new").exists()


def test_a_result_larger_than_the_available_memory_is_refused_before_inference(tmp_path):
    """The upscaled scan is held in memory (float32) before it is written: a result that cannot fit would have the
    run killed part-way by the system, with no line of ours; it is refused first, from the memory the system
    reports available (Linux's MemAvailable)."""
    from heart_sr_tf.memory import available_memory
    from heart_sr_tf.volumes.upscale import check_memory

    free = available_memory()
    if free is None:
        pytest.skip("this system reports no available memory (/proc/meminfo)")
    check_memory(tmp_path / "scan.nii.gz", free // 4)
    with pytest.raises(HeartSRError, match=r"scan.nii.gz: its upscaled result needs at least .* GB of memory and "):
        check_memory(tmp_path / "scan.nii.gz", free + 10**12)


def test_an_output_place_that_cannot_be_made_is_one_line_before_any_work(phantom_root, tiny_export, tmp_path):
    """A link to nothing, or a file, where an output folder (or a folder on the way to it) must be: `train
    --runs-dir` raised FileExistsError or NotADirectoryError (a traceback), `evaluate --out` the same after the
    whole evaluation, `upscale` said "cannot create its folder (File exists)". Now one line naming the place, exit
    2, before any work, and nothing created."""
    gone, link, afile = tmp_path / "gone", tmp_path / "link", tmp_path / "afile"
    link.symlink_to(gone)
    afile.write_text("not a folder")
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    dangling = f"is a link to {gone}, which does not exist"
    cases = [
        (("train", "srgan", "--runs-dir", link, "--name", "r", "--steps", "1"), f"{link / 'r'}: {link} {dangling}"),
        (("train", "srgan", "--runs-dir", afile / "runs", "--steps", "1"), f"{afile} is a file, not a folder"),
        (("evaluate", tiny_export, "--scans", src, "--out", link, "--figures", "0"), f"{link}: {dangling}"),
        (("evaluate", tiny_export, "--scans", src, "--out", afile / "e"), f"{afile / 'e'}: {afile} is a file"),
        (("upscale", src, link / "up.nii.gz", "--model", tiny_export), f"{link / 'up.nii.gz'}: {link} {dangling}"),
        (("upscale", src, link / "deeper" / "up.nii.gz", "--model", tiny_export), f"{link} {dangling}"),
    ]
    for args, fragment in cases:
        _one_error_line(_cli(*args), fragment)
    assert not gone.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["afile", "link"]


def test_a_hard_link_to_the_input_is_refused_like_the_input(phantom_root, tiny_export, tmp_path):
    src = tmp_path / "scan.nii.gz"
    src.write_bytes((phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz").read_bytes())
    os.link(src, tmp_path / "alias.nii.gz")
    _one_error_line(_cli("upscale", src, tmp_path / "alias.nii.gz", "--model", tiny_export), "refusing to overwrite")
    assert (tmp_path / "alias.nii.gz").read_bytes() == src.read_bytes()


def test_sigterm_leaves_the_complete_result_or_nothing(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_4d.nii.gz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    outcomes = set()
    for delay in (1.0, 3.0, 5.0, 8.0):
        out = tmp_path / f"o{delay}" / "up.nii.gz"
        args = [sys.executable, str(ROOT / "cli.py"), "upscale", str(src), str(out), "--model", str(tiny_export)]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        left = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
        assert left in ([], ["up.nii.gz"]), left  # no temporary file, whatever the moment
        if left:
            assert nib.load(str(out)).shape[:2] == (3 * 176, 3 * 208)  # complete and readable
        outcomes.add(bool(left))
    assert False in outcomes  # at least one signal arrived before the result was written


def test_a_closed_terminal_unwinds_as_sigterm_does_unless_under_nohup(phantom_root, tiny_export, tmp_path):
    """SIGHUP (an ssh session that drops, a terminal closed) killed the command outright: its temporary file stayed,
    and a cohort left its lock, its workers' partial files and the folder it had made. It now unwinds as SIGTERM
    does. Under nohup (SIGHUP ignored) the command goes on to its result."""
    src = phantom_root / "training" / "patient001" / "patient001_4d.nii.gz"
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", PYTHONUNBUFFERED="1")
    for ignored in (False, True):
        out = tmp_path / f"ignored-{ignored}" / "up.nii.gz"
        args = [sys.executable, str(ROOT / "cli.py"), "upscale", str(src), str(out), "--model", str(tiny_export)]
        nohup = (lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN)) if ignored else None
        proc = subprocess.Popen(args, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                preexec_fn=nohup)  # fmt: skip
        assert proc.stdout.readline().startswith("model: ")  # the model is loaded: the work begins
        proc.send_signal(signal.SIGHUP)
        _, err = proc.communicate(timeout=120)
        left = sorted(p.name for p in out.parent.iterdir()) if out.parent.exists() else []
        if ignored:
            assert proc.returncode == 0 and left == ["up.nii.gz"], err[-2000:]
        else:
            assert proc.returncode == 128 + signal.SIGHUP and left == [], (left, err[-2000:])
            assert err.splitlines()[-1] == "terminated: the terminal closed (SIGHUP)"


def test_a_killed_runs_temporary_file_is_removed_by_the_next_run(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    stale = tmp_path / f"{_part_prefix(tmp_path / 'up.nii.gz')}999999.nii.gz"  # as a SIGKILLed run would leave it
    stale.write_bytes(b"partial")
    other = tmp_path / f"{_part_prefix(tmp_path / 'other.nii.gz')}999999.nii.gz"  # another output's: not ours
    other.write_bytes(b"partial")
    upscale_file(src, tmp_path / "up.nii.gz", load_predictor(tiny_export), quiet=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([other.name, "up.nii.gz"])


def test_resume_refuses_options_it_would_ignore(tiny_run):
    result = _cli("train", "srgan", "--resume", tiny_run, "--steps", "50", "--lr", "1e-3")
    _one_error_line(result, "--steps", "--lr", "would be ignored", "config.toml")


def test_bad_training_options_fail_before_any_work(tmp_path):
    _one_error_line(_cli("train", "srgan", "--lr", "-1e-3", "--runs-dir", tmp_path), "--lr")
    _one_error_line(_cli("train", "srgan", "--steps", "0", "--runs-dir", tmp_path), "--steps")
    _one_error_line(_cli("sweep", "srgan", "--lr", "1e-3", "--lr", "0.001", "--runs-dir", tmp_path), "--lr", "twice")
    bad = tmp_path / "bad.toml"
    bad.write_text("[data]\npatch = 50\n")
    _one_error_line(_cli("train", "srgan", "--config", bad, "--runs-dir", tmp_path), "bad.toml", "data.patch")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.toml"]  # no half-made run folder


def test_a_run_name_that_is_a_path_is_refused_before_any_work(tmp_path):
    """--name names a folder under --runs-dir: '../x' wrote a run outside it, 'a/b' nested one, '.' wrote into the
    runs folder itself."""
    for name in ("../outside", "a/b", ".", ".."):
        result = _cli("train", "srgan", "--runs-dir", tmp_path / "runs", "--name", name, "--steps", "1", "--quiet")
        _one_error_line(result, f"--name {name!r}: a run's name, one folder under the runs folder")
    assert not list(tmp_path.iterdir())


def test_an_export_name_that_is_a_path_is_refused_before_any_work(tiny_run, tmp_path):
    """export --name is TF Serving's model folder under --out: '../x' wrote the export beside --out, 'a/b' nested
    it. Refused as a run's --name is, nothing written."""
    for name in ("../outside", "a/b", ".", ".."):
        result = _cli("export", tiny_run, "--out", tmp_path / "models", "--name", name)
        _one_error_line(result, f"--name {name!r}: the model's name, one folder under --out")
    assert not list(tmp_path.iterdir())


def test_export_takes_the_run_name_and_never_adds_to_another_model(tiny_run, tmp_path):
    result = _cli("export", tiny_run, "--out", tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert (tmp_path / Path(tiny_run).name / "1" / "saved_model.pb").is_file()
    assert not (tmp_path / "srgan").exists()


def test_a_quiet_start_unless_verbose(tiny_run, tmp_path):
    quiet = _fresh_cli("export", tiny_run, "--out", tmp_path / "a")
    assert quiet.returncode == 0, quiet.stderr[-2000:]
    assert quiet.stderr == "" and quiet.stdout.startswith("exported ")
    loud = _fresh_cli("--verbose", "export", tiny_run, "--out", tmp_path / "b")
    assert loud.returncode == 0  # TensorFlow's own start-up lines are still there (which ones depends on the CPU)
    assert any(word in loud.stderr for word in ("oneDNN", "absl", "cpu_feature_guard", "cuda")), loud.stderr


def test_prepare_rebuilds_when_the_source_folder_changed(phantom_root, tmp_path):
    import shutil

    from heart_sr_tf.data.prepare import prepare

    source = tmp_path / "acdc"
    shutil.copytree(phantom_root, source)
    first = prepare(source, tmp_path / "tfds", quiet=True)
    assert sum(first.patients.values()) == 5
    assert prepare(source, tmp_path / "tfds", quiet=True).counts == first.counts  # unchanged: reused
    shutil.rmtree(source / "training" / "patient005")  # e.g. a bad patient removed, or fixed
    second = prepare(source, tmp_path / "tfds", quiet=True)
    assert sum(second.patients.values()) == 4
    assert sum(second.counts["full"].values()) < sum(first.counts["full"].values())


def test_a_truncated_savedmodel_is_one_error_line(tiny_export, phantom_root, tmp_path):
    import shutil

    broken = tmp_path / "m" / "1"
    shutil.copytree(tiny_export, broken)
    data = broken / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    _one_error_line(_cli("upscale", src, tmp_path / "o.nii.gz", "--model", tmp_path / "m"), str(broken))
    assert not (tmp_path / "o.nii.gz").exists()


def test_evaluate_on_an_empty_split_is_one_error_line(tiny_export, phantom_root, tmp_path):
    import shutil

    only_testing = tmp_path / "acdc" / "testing"
    shutil.copytree(phantom_root / "training" / "patient001", only_testing / "patient001")
    result = _cli("evaluate", tiny_export, "--acdc-dir", tmp_path / "acdc", "--split", "validation", "--quiet")
    _one_error_line(result, "validation split holds no")


def test_wgan_takes_its_dimensions_from_its_config(phantom_tfds, tmp_path):
    result = _cli(
        "train", "wgan", "--config", "wgan3d_cpu", "--data-dir", phantom_tfds, "--steps", "1", "--runs-dir", tmp_path,
        "--name", "w3", "--quiet",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    assert "dims = 3" in (tmp_path / "w3" / "config.toml").read_text()
    mismatch = _cli("train", "wgan", "--config", "wgan3d_cpu", "--dims", "2", "--runs-dir", tmp_path)
    _one_error_line(mismatch, "data.dims is 3 but --dims 2")


def test_sigterm_during_export_leaves_no_partial_version(tiny_run, tmp_path):
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
    for delay in (2.0, 4.0, 6.0):
        out = tmp_path / f"out{delay}"
        args = [sys.executable, str(ROOT / "cli.py"), "export", str(tiny_run), "--out", str(out), "--name", "m"]
        proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(delay)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=120)
        left = sorted(p.name for p in (out / "m").iterdir()) if (out / "m").exists() else []
        assert left in ([], ["1"]), left  # the whole version or nothing, no temporary folder
        if left:
            assert (out / "m" / "1" / "saved_model.pb").is_file()


def test_an_interrupted_prepare_is_rebuilt_whole_from_the_new_source(phantom_root, tmp_path):
    import shutil

    from heart_sr_tf.data.prepare import builder, prepare

    data = tmp_path / "data"
    prepare(phantom_root, data, seed=0, quiet=True)
    shutil.rmtree(data / "acdc_sr" / "heart")  # as if killed between the two halves
    other = tmp_path / "other"
    shutil.copytree(phantom_root, other)
    prepare(other, data, seed=1, quiet=True)
    full, heart = (builder(data, roi).info.metadata for roi in ("full", "heart"))
    assert full["source"] == heart["source"] == str(other.resolve())
    assert full["split_seed"] == heart["split_seed"] == 1 and full["assignment"] == heart["assignment"]


def test_a_run_is_never_scored_on_patients_it_trained_on(tiny_run, phantom_root, tmp_path):
    import shutil

    from heart_sr_tf.data.prepare import prepare, split_assignment
    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.training.runs import Run

    run = Run.open(tiny_run)
    run.check_scored_on(run.data_dir)  # its own dataset
    trained = {p for p, s in split_assignment(run.data_dir).items() if s == "train"}
    fewer = tmp_path / "fewer" / "training"
    for patient in sorted(trained):  # only the patients it trained on: some must go to validation and test
        shutil.copytree(phantom_root / "training" / patient, fewer / patient)
    other = prepare(fewer.parent, tmp_path / "other", quiet=True).data_dir
    with pytest.raises(HeartSRError, match="trained"):
        run.check_scored_on(other)
    result = _cli("evaluate", tiny_run, "--data-dir", other, "--limit", "2", "--figures", "0")
    _one_error_line(result, "trained", str(tiny_run))


def test_non_nifti_and_colour_inputs_are_one_line_before_any_model(phantom_root, tmp_path):
    source = nib.load(str(phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"))
    data = np.asarray(source.dataobj)
    analyze = tmp_path / "scan.img"
    nib.save(nib.AnalyzeImage(data.astype(np.int16), np.eye(4)), str(analyze))
    mgh = tmp_path / "scan.mgz"
    nib.save(nib.MGHImage(data.astype(np.float32), np.eye(4)), str(mgh))
    rgb = tmp_path / "rgb.nii.gz"
    colour = np.zeros(data.shape, dtype=[("R", "u1"), ("G", "u1"), ("B", "u1")])
    nib.save(nib.Nifti1Image(colour, np.eye(4)), str(rgb))
    for path, message in ((analyze, "not a NIfTI file"), (mgh, "not a NIfTI file"), (rgb, "a colour")):
        result = _cli("upscale", path, tmp_path / "out.nii.gz", "--model", "no-such-model")  # never loaded
        _one_error_line(result, str(path), message)
    assert not (tmp_path / "out.nii.gz").exists()


def test_non_finite_learning_rates_name_the_option(tmp_path):
    for value in ("nan", "inf"):
        _one_error_line(_cli("train", "srgan", "--lr", value, "--runs-dir", tmp_path), "--lr", "finite")
    assert list(tmp_path.iterdir()) == []


def test_a_new_run_that_fails_leaves_no_folder(phantom_tfds, tmp_path):
    args = ("train", "srgan", "--config", TINY, "--data-dir", phantom_tfds, "--runs-dir", tmp_path, "--name", "x")
    result = _cli(*args, "--lr", "1e30", "--steps", "40", "--quiet")
    _one_error_line(result, "non-finite")
    assert not (tmp_path / "x").exists()  # the name can be used again


def test_a_damaged_checkpoint_is_one_line_everywhere(tiny_run, tmp_path):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    data = max((run / "checkpoints").glob("ckpt-*.data-*"), key=lambda p: int(p.name.split("-")[1].split(".")[0]))
    data.write_bytes(data.read_bytes()[: data.stat().st_size // 3])
    _one_error_line(_cli("export", run, "--out", tmp_path / "exports"), str(run / "checkpoints"))
    assert not (tmp_path / "exports" / "run" / "1").exists()
    _one_error_line(_cli("train", "srgan", "--resume", run, "--quiet"), str(run / "checkpoints"))


def test_a_damaged_prepared_dataset_is_one_line(phantom_tfds, tmp_path):
    import shutil

    for damage in ("info", "records"):
        data = tmp_path / damage
        shutil.copytree(phantom_tfds, data)
        folder = next((data / "acdc_sr" / "full").iterdir())
        if damage == "info":
            (folder / "dataset_info.json").write_text("{ not json")
        else:
            for record in folder.glob("*test.tfrecord*"):
                record.write_bytes(record.read_bytes()[:200])
        result = _cli("evaluate", "rrdb_kspace", "--data-dir", data, "--split", "test", "--figures", "0")
        _one_error_line(result, "rebuild")


def test_prepare_where_nothing_can_be_written_is_one_line_before_any_work(tmp_path):
    from heart_sr_tf.data.prepare import prepare

    (tmp_path / "a-file").write_text("")
    for where in (Path("/proc/heart-sr-test/data"), tmp_path / "a-file" / "data"):
        with pytest.raises(DataError, match="cannot write the prepared dataset there|a-file is a file, not a") as error:
            prepare(tmp_path / "no-patients-needed", where, quiet=True)
        assert str(where) in str(error.value)


def test_a_run_edited_to_another_architecture_is_one_line_and_nothing_else(tiny_run, tmp_path):
    """The checkpoint no longer fits the config: export, resume and upscale each say so in one line, without
    TensorFlow's 100+ "Value in checkpoint could not be found" warnings after it."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(tiny_run, run)
    config = (run / "config.toml").read_text()
    (run / "config.toml").write_text(config.replace("blocks = 1\n", "blocks = 2\n", 1))
    assert (run / "config.toml").read_text() != config
    scan = _scan(tmp_path / "scan.nii.gz", _anatomy((40, 36, 2), 300.0), np.int16)
    for args in (
        ("export", run, "--out", tmp_path / "out"),
        ("train", "srgan", "--resume", run, "--quiet"),
        ("upscale", scan, tmp_path / "up.nii.gz", "--model", run),
    ):
        result = (_cli if "train" in args else _fresh_cli)(*args)  # export and upscale import TensorFlow apart
        _one_error_line(result, "holds another architecture" if "train" in args else "as configured")
        assert "WARNING" not in result.stderr and len(result.stderr.splitlines()) == 1, result.stderr[:500]
    assert not (tmp_path / "out").exists() and not (tmp_path / "up.nii.gz").exists()


def test_a_run_edited_to_another_degradation_is_refused_wherever_it_is_used(tiny_run, tmp_path):
    """A run's config.toml edited from the degradation it was created for to another of the same architecture
    (decimation to kspace, x3 both): export went out stating kspace for a network that learnt decimation, and
    resume, evaluate and upscale used it as one. Each is now one line saying what changed; raising steps (its
    schedule) is still how a run is extended."""
    import shutil

    run = tmp_path / "edited"
    shutil.copytree(tiny_run, run)
    created = (run / "config.toml").read_text()
    assert 'kind = "decimation"' in created and 'kind = "decimation"' in (run / "trained_for.toml").read_text()
    (run / "config.toml").write_text(created.replace('kind = "decimation"', 'kind = "kspace"', 1))
    files = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    scan = _scan(tmp_path / "scan.nii.gz", _anatomy((40, 36, 2), 300.0), np.int16)
    for args in (
        ("export", run, "--out", tmp_path / "out"),
        ("train", "srgan", "--resume", run, "--quiet"),
        ("evaluate", run, "--scans", scan, "--out", tmp_path / "scored", "--quiet"),
        ("upscale", scan, tmp_path / "up.nii.gz", "--model", run),
    ):
        result = _cli(*args)
        _one_error_line(result, f"{run / 'config.toml'}: degradation.kind is 'kspace', created as 'decimation'")
        assert result.stdout == "", result.stdout
    assert not any((tmp_path / name).exists() for name in ("out", "scored", "up.nii.gz"))
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == files  # the run as it was, no lock left


def test_a_second_process_waits_for_the_first_to_build_the_phantoms_then_uses_them(tmp_path):
    """Two processes needing the same cached build (the phantoms here; a prepared dataset and an OpenVINO
    conversion take the same lock) on a fresh machine: the second waits, saying so, and writes nothing while the
    first holds the lock; then it finds the build done or does it whole. Without the lock the two wrote into one
    temporary folder and one failed (seen under pytest-xdist)."""
    from heart_sr_tf.cache import building

    env = dict(os.environ, HEART_SR_CACHE=str(tmp_path))
    code = "from heart_sr_tf.data.prepare import phantom_dir; print(phantom_dir(2))"
    out = tmp_path / "phantoms-n2-s0"
    os.environ["HEART_SR_CACHE"], before = str(tmp_path), os.environ.get("HEART_SR_CACHE")
    try:
        with building(out):
            child = subprocess.Popen(
                [sys.executable, "-c", code], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                text=True,
            )  # fmt: skip
            line = child.stderr.readline()  # blocks until the child is at the lock
            assert line.strip() == f"waiting: another process is building {out}"
            time.sleep(0.5)
            assert child.poll() is None and not out.exists() and not out.with_name(out.name + ".tmp").exists()
    finally:
        if before is None:
            del os.environ["HEART_SR_CACHE"]
        else:
            os.environ["HEART_SR_CACHE"] = before
    stdout, stderr = child.communicate(timeout=120)
    assert child.returncode == 0, stderr[-2000:]
    assert stdout.strip() == str(out)
    assert sorted(p.name for p in (out / "training").iterdir()) == ["patient001", "patient002"]
    assert (out / "training" / "patient002" / "Info.cfg").is_file()


def test_a_killed_process_not_yet_reaped_counts_as_gone():
    """A part file is stale once its process is gone. A process killed but not yet reaped by its parent (a Dask
    worker killed with SIGKILL while its nanny restarts it) is a zombie: gone, though the kernel still answers
    for its PID. Counted alive, its part file outlived the cohort that retried its scan."""
    from heart_sr_tf.processes import process_alive

    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        assert process_alive(child.pid)
        child.kill()
        deadline = time.time() + 10
        while Path(f"/proc/{child.pid}/stat").read_text().rsplit(")", 1)[-1].split()[0] != "Z":
            assert time.time() < deadline
            time.sleep(0.05)
        assert not process_alive(child.pid)  # a zombie: not reaped (no wait() yet)
    finally:
        child.kill()
        child.wait()
    assert not process_alive(child.pid) and process_alive(os.getpid())


def _tree(root: Path, files: dict) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    return root


def test_a_control_groups_memory_limit_counts_as_what_is_available(tmp_path):
    """A container's or SLURM job's memory limit is lower than what the host has available; the kernel kills a
    process over it with no line of ours. The limit read the way the kernel lays out cgroup v1 and v2 (files in
    a folder here; the real thing below): the tightest headroom of the group and its parents, reclaimable page
    cache not counted as used, no limit where none is set."""
    from heart_sr_tf.memory import available_memory, cgroup_headroom

    gib = 1 << 30
    proc = _tree(tmp_path / "proc", {"meminfo": "MemTotal: 25165824 kB\nMemAvailable: 20971520 kB\n"})
    v1 = _tree(
        tmp_path / "v1",
        {
            "memory/memory.limit_in_bytes": "9223372036854771712\n",  # the root: no limit
            "memory/memory.usage_in_bytes": f"{5 * gib}\n",
            "memory/job_7/memory.limit_in_bytes": f"{4 * gib}\n",  # the job's limit
            "memory/job_7/memory.usage_in_bytes": f"{3 * gib}\n",
            "memory/job_7/memory.stat": f"cache 1\ninactive_file 7\ntotal_inactive_file {gib // 2}\n",
            "memory/job_7/step_0/memory.limit_in_bytes": f"{8 * gib}\n",  # looser than its parent's
            "memory/job_7/step_0/memory.usage_in_bytes": f"{gib}\n",
        },
    )
    (proc / "self").mkdir()
    (proc / "self" / "cgroup").write_text("5:cpu,cpuacct:/job_7\n4:memory:/job_7/step_0\n0::/\n")
    assert cgroup_headroom(proc / "self" / "cgroup", v1) == 4 * gib - 3 * gib + gib // 2
    assert available_memory(proc, v1) == 4 * gib - 3 * gib + gib // 2  # below MemAvailable's 20 GiB
    (proc / "self" / "cgroup").write_text("4:memory:/host/path/not/mounted\n")  # in a container: the mount's root
    assert cgroup_headroom(proc / "self" / "cgroup", v1) is None and available_memory(proc, v1) == 20 * gib

    v2 = _tree(
        tmp_path / "v2",
        {
            "cgroup.controllers": "cpu memory\n",
            "user.slice/memory.max": "max\n",
            "user.slice/memory.current": f"{6 * gib}\n",
            "user.slice/pod/memory.max": f"{2 * gib}\n",
            "user.slice/pod/memory.current": f"{3 * gib}\n",  # over its limit, all of it in use: nothing left
            "user.slice/pod/memory.stat": "anon 5\ninactive_file 0\n",
        },
    )
    (proc / "self" / "cgroup").write_text("0::/user.slice/pod\n")
    assert cgroup_headroom(proc / "self" / "cgroup", v2) == 0 and available_memory(proc, v2) == 0
    (proc / "self" / "cgroup").write_text("0::/user.slice\n")
    assert cgroup_headroom(proc / "self" / "cgroup", v2) is None  # "max": no limit


def test_a_real_memory_limit_refuses_the_scan_before_inference(tmp_path):
    """The same through the kernel: `upscale` in a cgroup v1 memory group limited to 600 MB refuses a scan whose
    result needs more, in one line, before inference; the host has far more available. (Without the limit read,
    such a run was killed part-way: exit 137, no line of ours.)"""
    own = [line.split(":", 2)[2] for line in Path("/proc/self/cgroup").read_text().splitlines() if ":memory:" in line]
    base = Path("/sys/fs/cgroup/memory")
    parent = base / own[0].strip("/") if own and (base / own[0].strip("/")).is_dir() else base
    group = parent / f"heart-sr-test-{os.getpid()}"
    try:
        group.mkdir()
        (group / "memory.limit_in_bytes").write_text(str(600 * 2**20))
    except OSError as exc:
        pytest.skip(f"no cgroup v1 memory group can be made here ({exc.strerror}): needs root and cgroup v1")
    try:
        scan, out = tmp_path / "scan.nii.gz", tmp_path / "o.nii.gz"
        data = np.zeros((256, 256, 16, 20), np.int16)  # x3: 0.75 GB as float32
        data[64:192, 64:192] = np.random.default_rng(0).integers(0, 1000, (128, 128, 16, 20))
        nib.save(nib.Nifti1Image(data, np.diag([1.4, 1.4, 8.0, 1.0])), str(scan))
        env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3")
        line = f'echo $$ > {group / "cgroup.procs"} && exec "{sys.executable}" cli.py upscale {scan} {out}'
        done = subprocess.run(["sh", "-c", line], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
        assert done.returncode == 2, done.stderr[-2000:]
        assert re.search(r"needs at least 0\.8 GB of memory and 0\.[0-5] GB are available here", done.stderr)
        assert "Traceback" not in done.stderr and not out.exists() and "upscale:" not in done.stderr  # no bar
    finally:
        group.rmdir()
