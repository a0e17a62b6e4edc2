"""Every kind of bad input gives one clear line naming the file, exit status 2 from the CLI, no traceback."""

import os
import shutil
import threading

import nibabel as nib
import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.data.acdc import find_patients, parse_info
from heart_sr_tf.data.nifti import load_nifti
from heart_sr_tf.data.prepare import prepare
from heart_sr_tf.data.slices import patient_slices
from heart_sr_tf.errors import DataError


def _save(array, path):
    nib.save(nib.Nifti1Image(array, np.eye(4)), str(path))


def _copy_patient(phantom_root, tmp_path, pid="patient001"):
    dest = tmp_path / "data" / "training" / pid
    shutil.copytree(phantom_root / "training" / pid, dest)
    return dest


def _break(kind, folder):
    """Damage one patient folder; return the file the error must name."""
    pid = folder.name
    cine = folder / f"{pid}_4d.nii.gz"
    if kind == "truncated":
        data = cine.read_bytes()
        cine.write_bytes(data[: len(data) // 2])
        return cine
    if kind == "missing_info":
        (folder / "Info.cfg").unlink()
        return folder / "Info.cfg"
    if kind == "malformed_info":
        (folder / "Info.cfg").write_text("ED 1\nES: 4\n")
        return folder / "Info.cfg"
    if kind == "label_shape":
        label = sorted(folder.glob("*_gt.nii.gz"))[0]
        _save(np.zeros((10, 10, 6), np.uint8), label)
        return label
    if kind == "nan":
        data = np.ones((20, 20, 4, 3), np.float32)
        data[3, 4, 1, 2] = np.nan
        _save(data, cine)
        return cine
    if kind == "inf":
        data = np.ones((20, 20, 4, 3), np.float32)
        data[0, 0, 0, 0] = np.inf
        _save(data, cine)
        return cine
    if kind == "zero":
        _save(np.zeros((20, 20, 4, 3), np.int16), cine)
        return cine
    if kind == "2d":
        _save(np.ones((20, 20), np.float32), cine)
        return cine
    if kind == "5d":
        _save(np.ones((20, 20, 4, 3, 2), np.float32), cine)
        return cine
    if kind == "tiny":
        _save(np.ones((2, 20, 4, 3), np.float32), cine)
        return cine
    raise AssertionError(kind)


KINDS = ["truncated", "missing_info", "malformed_info", "label_shape", "nan", "inf", "zero", "2d", "5d", "tiny"]
MESSAGES = {
    "truncated": "truncated or unreadable",
    "missing_info": "missing Info.cfg",
    "malformed_info": "malformed Info.cfg",
    "label_shape": "differs from image shape",
    "nan": "NaN or infinite",
    "inf": "NaN or infinite",
    "zero": "all voxels are zero",
    "2d": "got a 2D array",
    "5d": "got a 5D array",
    "tiny": "smaller than one 3x3 block",
}


@pytest.mark.parametrize("kind", KINDS)
def test_reader_raises_one_line_naming_the_file(kind, phantom_root, tmp_path):
    folder = _copy_patient(phantom_root, tmp_path)
    bad_file = _break(kind, folder)
    with pytest.raises(DataError) as info:
        for patient in find_patients(tmp_path / "data"):
            list(patient_slices(patient))
    message = str(info.value)
    assert message.startswith(str(bad_file)) and MESSAGES[kind] in message
    assert "\n" not in message


@pytest.mark.parametrize("kind", ["truncated", "malformed_info", "nan", "5d"])
def test_cli_prints_one_line_and_exits_2(kind, phantom_root, tmp_path):
    folder = _copy_patient(phantom_root, tmp_path)
    bad_file = _break(kind, folder)
    out = tmp_path / "tfds"
    result = run_cli("prepare", "--acdc-dir", tmp_path / "data", "--data-dir", out, "--strict")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and str(bad_file) in errors[0] and MESSAGES[kind] in errors[0]
    assert not list(out.rglob("*.tfrecord*"))  # nothing half-written


def test_prepare_keeps_the_good_patients_and_reports_the_bad(phantom_root, tmp_path):
    for pid in ("patient001", "patient002", "patient003", "patient004"):
        _copy_patient(phantom_root, tmp_path, pid)
    bad = _break("nan", tmp_path / "data" / "training" / "patient002")
    _break("missing_info", tmp_path / "data" / "training" / "patient003")
    report = prepare(tmp_path / "data", tmp_path / "tfds", quiet=True)
    assert len(report.bad) == 2 and any(str(bad) in line for line in report.bad)
    assert sum(report.counts["full"].values()) == 2 * 6 * 10  # two good cines of 6 slices x 10 frames
    with pytest.raises(DataError):
        prepare(tmp_path / "data", tmp_path / "tfds-strict", strict=True, quiet=True)


def test_malformed_values_in_info(tmp_path):
    path = tmp_path / "Info.cfg"
    path.write_text("ED: one\nES: 4\nGroup: NOR\nNbFrame: 10\n")
    with pytest.raises(DataError, match="malformed Info.cfg"):
        parse_info(path)


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="file not found"):
        load_nifti(tmp_path / "nope.nii.gz")


@pytest.mark.parametrize("name", ["huge.nii", "huge.nii.gz"])
def test_a_header_claiming_more_voxels_than_the_file_or_memory_holds_is_one_line(tmp_path, name):
    """A damaged header's dimensions (30000 x 30000 x 300 x 30 voxels in a file of a few hundred bytes): nibabel
    allocated them all first and failed with MemoryError, a traceback. An uncompressed file's size tells it is
    truncated; a compressed one's voxels are more than the memory available."""
    import gzip
    import struct

    _save(np.ones((4, 4, 2), np.int16), tmp_path / "small.nii")
    raw = bytearray((tmp_path / "small.nii").read_bytes())
    struct.pack_into("<8h", raw, 40, 4, 30000, 30000, 300, 30, 1, 1, 1)  # dim[0..7]
    path = tmp_path / name
    path.write_bytes(gzip.compress(bytes(raw)) if name.endswith(".gz") else bytes(raw))
    result = run_cli("upscale", path, tmp_path / "out.nii.gz", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-500:]
    (line,) = result.stderr.strip().splitlines()
    voxels = "its header says 30000 x 30000 x 300 x 30 int16 voxels"
    if name.endswith(".gz"):
        assert line.startswith(f"error: {path}: {voxels}: reading them needs 48600.0 GB of memory and "), line
    else:
        need = f"from byte 352 need 16,200,000,000,352 bytes, and the file holds {len(raw):,}"
        assert line == f"error: {path}: truncated: {voxels} {need}", line
    with pytest.raises(DataError, match="truncated: its header says 4 x 4 x 2 int16 voxels"):
        (tmp_path / "cut.nii").write_bytes((tmp_path / "small.nii").read_bytes()[:-8])
        load_nifti(tmp_path / "cut.nii", allow_zero=True)


def test_a_data_dir_built_from_other_files_is_not_reused(phantom_root, phantom_tfds, tmp_path):
    other = tmp_path / "other"
    _copy_patient(phantom_root, other)
    with pytest.raises(DataError, match="holds a dataset built from"):
        prepare(other / "data", phantom_tfds, quiet=True)


@pytest.mark.parametrize(
    "text, message",
    [
        ("ED: 1\nES: 12\nGroup: NOR\nNbFrame: 10\n", "past the last frame"),
        ("ED: 1\nES: 4\nGroup: HEALTHY\nNbFrame: 10\n", "unknown Group 'HEALTHY'"),
    ],
)
def test_info_values_that_cannot_be_true(tmp_path, text, message):
    path = tmp_path / "Info.cfg"
    path.write_text(text)
    with pytest.raises(DataError, match=message):
        parse_info(path)


def test_a_cine_whose_frame_count_disagrees_with_its_info(phantom_root, tmp_path):
    import shutil

    from heart_sr_tf.data.acdc import find_patients, load_frames

    folder = tmp_path / "training" / "patient001"
    shutil.copytree(phantom_root / "training" / "patient001", folder)
    info = (folder / "Info.cfg").read_text().splitlines()
    frames = next(int(line.split(":")[1]) for line in info if line.startswith("NbFrame"))
    (folder / "Info.cfg").write_text(
        "\n".join(f"NbFrame: {frames + 1}" if line.startswith("NbFrame") else line for line in info) + "\n"
    )
    with pytest.raises(DataError, match=f"{frames} frames, but its Info.cfg says NbFrame {frames + 1}"):
        load_frames(find_patients(tmp_path)[0])


def test_an_acdc_folder_and_a_folder_of_scans_given_for_the_other_option_say_which_to_use(phantom_root, tmp_path):
    """The raw ACDC folder given as --data-dir (where its prepared dataset goes) was told to prepare itself into
    that very folder; a folder of a lab's NIfTI scans given as --acdc-dir had no word of --scans."""
    scans = tmp_path / "scans"
    scans.mkdir()
    shutil.copy(phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz", scans / "a.nii.gz")
    for args, line in [
        (
            ("evaluate", "rrdb", "--data-dir", phantom_root, "--out", tmp_path / "e"),
            f"error: --data-dir {phantom_root}: an ACDC folder, not a prepared dataset: give it as --acdc-dir "
            "(prepared on first use)",
        ),
        (
            ("prepare", "--acdc-dir", scans, "--data-dir", tmp_path / "d"),
            f"error: {scans}: no patientXXX folders found (expected training/, testing/ or patient folders); a "
            "folder of a lab's own scans is read with --scans (prepare, evaluate)",
        ),
    ]:
        refused = run_cli(*args, "--quiet") if args[0] == "evaluate" else run_cli(*args)
        assert refused.returncode == 2 and refused.stderr.strip() == line, refused.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scans"]


def test_a_missing_required_package_is_one_line_not_a_traceback(tmp_path):
    """A broken install (TensorFlow missing): one line naming the module and the Python, exit 1."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'tensorflow' or name.startswith('tensorflow.'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        "sys.meta_path.insert(0, Block())\n"
        "sys.argv = ['cli.py', 'export', '--help']\n"
        "exec(open('cli.py').read())\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], cwd=root, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "tensorflow is not installed" in lines[0] and "Traceback" not in done.stderr


@pytest.mark.parametrize("broken", ["missing", "failing", "interrupted"])
def test_an_optional_package_that_fails_to_import_is_not_called_missing(tmp_path, broken):
    """OpenVINO (the default runtime) absent says how to install it; present but failing to import (a native library
    missing) says so and why, instead of "not installed": one line, exit 2, after the scan was read and before any
    output. A Ctrl-C while its bindings initialise, which pybind11 raises as an ImportError from the
    KeyboardInterrupt, is the Ctrl-C it was: "aborted", exit 130."""
    import subprocess
    import sys
    from pathlib import Path

    import nibabel as nib
    import numpy as np

    root = Path(__file__).resolve().parents[1]
    scan, out = tmp_path / "scan.nii.gz", tmp_path / "out.nii.gz"
    nib.save(nib.Nifti1Image(np.arange(48 * 48 * 2, dtype=np.float32).reshape(48, 48, 2), np.eye(4)), scan)
    fake = tmp_path / "site"
    (fake / "openvino").mkdir(parents=True)
    (fake / "openvino" / "__init__.py").write_text(
        "try:\n    raise KeyboardInterrupt\nexcept KeyboardInterrupt as e:\n"
        "    raise ImportError('initialization failed') from e\n"
        if broken == "interrupted"
        else "raise ImportError('libopenvino.so.2640: cannot open shared object file: No such file or directory')\n"
    )
    blocker = (
        "import sys\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'openvino' or name.startswith('openvino.'):\n"
        "            raise ModuleNotFoundError(f\"No module named '{name}'\", name=name)\n"
        + ("sys.meta_path.insert(0, Block())\n" if broken == "missing" else "")
        + f"sys.path.insert(0, {str(fake)!r})\n"
        + f"sys.argv = ['cli.py', 'upscale', {str(scan)!r}, {str(out)!r}, '--backend', 'openvino']\n"
        + "exec(open('cli.py').read())\n"
    )
    done = subprocess.run([sys.executable, "-c", blocker], cwd=root, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in done.stderr, done.stderr
    if broken == "interrupted":
        assert done.returncode == 130 and done.stderr.strip().splitlines()[-1] == "aborted", done.stderr
    else:
        assert done.returncode == 2, done.stderr
    lines = [line for line in done.stderr.strip().splitlines() if line.startswith("error:")]
    assert len(lines) == (broken != "interrupted"), done.stderr
    if broken == "failing":
        assert "OpenVINO is installed in" in lines[0] and "but does not import (libopenvino.so.2640: cannot" in lines[0]
        assert "not installed" not in lines[0]
    elif broken == "missing":
        assert lines[0] == "error: --backend openvino: OpenVINO is not installed (pip install -e '.[openvino]')"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scan.nii.gz", "site"]


@pytest.mark.parametrize(
    "args, named",
    [
        (["cohort", "IN", "--out-dir", "OUT", "--scheduler", ""], "--scheduler"),  # was: a local cluster
        (["upscale", "IN", "OUT.nii.gz", "--server", ""], "--server"),  # was: the local default model
        (["evaluate", "rrdb_kspace", "--data-dir="], "--data-dir"),  # was: a dataset built in the current folder
        (["upscale", "IN", ""], "the argument after 'upscale IN'"),
        (["train", "srgan", "--name", "", "--steps", "1"], "--name"),
        (["upscale", "IN", "--measure", ""], "the argument after 'upscale IN --measure'"),  # was: "--measure"
        (["--verbose", "upscale", "IN", "--quiet", "", "x"], "the argument after '--verbose upscale IN --quiet'"),
    ],
)
def test_an_empty_value_on_the_command_line_is_one_line_and_no_work(tmp_path, args, named):
    """An empty value is what a script's unset variable gives: it is named, before anything is read or written."""
    (tmp_path / "IN").mkdir()
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {named}: an empty value"), result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]  # nothing made: no dataset, run or output


@pytest.mark.parametrize("args", [[], ["train"], ["sweep"]])
def test_a_command_given_nothing_shows_its_help_not_an_error(args):
    result = run_cli(*args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert result.stderr.startswith(f"Usage: cli.py {' '.join(args)}".rstrip() + " [OPTIONS] COMMAND"), result.stderr
    assert "error" not in result.stderr.lower() and "Commands:" in result.stderr


def test_a_mistyped_models_folder_is_one_line_not_the_shipped_models(phantom_root, tmp_path):
    """``HEART_SR_MODELS`` names where a lab's own models are; mistyped, a model name fell back on the shipped
    model of that name, unsaid. A path given as such does not depend on it."""
    scan = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"  # (one frame: the shipped model
    env = {"HEART_SR_MODELS": str(tmp_path / "typo")}  # runs on it below, a tenth of the whole cine's work)
    result = run_cli("upscale", scan, tmp_path / "o.nii.gz", "--quiet", env=env)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.strip()
        == f"error: HEART_SR_MODELS={tmp_path / 'typo'}: no such folder (it says where your models are)"
    )
    assert not (tmp_path / "o.nii.gz").exists()
    (tmp_path / "typo").mkdir()  # an existing folder without the model: the shipped one, as before
    assert run_cli("upscale", scan, tmp_path / "o.nii.gz", "--quiet", env=env).returncode == 0


@pytest.mark.parametrize(
    "args, reads",
    [
        (["upscale", "IN", "OUT.nii.gz"], "a scan is read from a NIfTI or DICOM file, or a folder"),
        (["cohort", "IN", "--out-dir", "OUT"], "INPUTS names a scan file, a folder, a glob or a CSV manifest"),
        (["evaluate", "rrdb_kspace", "--scans", "IN"], "INPUTS names a scan file, a folder, a glob or a CSV manifest"),
    ],
)
def test_a_named_pipe_given_as_a_scan_is_one_line_not_a_hang(tmp_path, args, reads):
    """Opening a named pipe that nothing writes to waits for a writer: ``upscale`` hung without a word. It is refused
    before it is opened, as a device is (``/dev/zero`` read as an empty NIfTI)."""
    if args[0] == "cohort":
        pytest.importorskip("distributed", reason="cohort runs on Dask (the cohort extra)")
    fifo = tmp_path / "IN"
    os.mkfifo(fifo)
    waited, stop = [], threading.Event()

    def release():  # after a minute, a reader waiting on the pipe is let go (it reads an empty file), each time
        while not stop.wait(60 if not waited else 0.2):
            try:
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
                waited.append(True)
            except OSError:  # ENXIO: nothing is reading it
                pass

    watchdog = threading.Thread(target=release, daemon=True)
    watchdog.start()
    try:
        result = run_cli(*args, cwd=tmp_path)  # (in the main thread: the CLI sets signal handlers)
    finally:
        stop.set()
    assert not waited, f"{' '.join(args)} waited on the named pipe"
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == f"error: IN: a named pipe (FIFO), not a file or folder: {reads}", result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["IN"]
    device = run_cli("upscale", "/dev/zero", "OUT.nii.gz", cwd=tmp_path)
    assert device.returncode == 2 and "/dev/zero: a character device, not a file or folder" in device.stderr


def test_a_name_with_a_line_break_stays_one_line(tmp_path):
    """A file name may hold a line break (a script's or an archive's); the error line that names it, from upscale
    and in a cohort's failures and status, stays one line, the break escaped."""
    bad = tmp_path / "in" / "bad\nname.nii.gz"
    bad.parent.mkdir()
    bad.write_bytes(b"not a scan")
    result = run_cli("upscale", bad, tmp_path / "out.nii.gz", cwd=tmp_path)
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"error: {tmp_path}/in/bad\\nname.nii.gz: truncated or unreadable NIfTI"), line
    labels = tmp_path / "in" / "lab\nels.nii.gz"  # a warning line too (a label map given as the scan)
    _save(np.random.default_rng(0).integers(0, 4, (24, 24, 2)).astype(np.int16), labels)
    result = run_cli("upscale", labels, tmp_path / "out.nii.gz", "--quiet", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"warning: {tmp_path}/in/lab\\nels.nii.gz: holds only 4 distinct values"), line
    pytest.importorskip("distributed", reason="cohort runs on Dask (the cohort extra)")
    from heart_sr_tf.cohort.task import upscale_task

    options = {"backend": "tensorflow", "through_plane": False}  # (the scan fails before any model is needed)
    outcome = upscale_task(str(bad), str(tmp_path / "co" / "bad\nname.nii.gz"), options)
    assert outcome["status"] == "failed" and "\n" not in outcome["error"], outcome
    assert outcome["error"].startswith(f"{tmp_path}/in/bad\\nname.nii.gz: truncated or unreadable NIfTI")
