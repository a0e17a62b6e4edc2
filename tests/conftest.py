"""Shared fixtures. TensorFlow is configured before anything initialises it."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
if os.environ.get("PYTEST_XDIST_WORKER"):
    # One intra-op thread per worker (and per command it starts): two workers with two threads each on two cores
    # spin against each other. On a 2-core AVX2-only EPYC the suite took 15.3 min without this, 10.4 min with it
    # (and with the shorter cine below).
    os.environ.setdefault("TF_NUM_INTRAOP_THREADS", "1")

from heart_sr_tf.startup import import_tensorflow_quietly  # noqa: E402

import_tensorflow_quietly()  # (pytest-xdist's workers do not capture what TensorFlow prints on import)

import tensorflow as tf  # noqa: E402

# Two logical CPUs make MirroredStrategy testable on a CPU-only machine.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(_cpus[0], [tf.config.LogicalDeviceConfiguration()] * 2)

import json  # noqa: E402
import shutil  # noqa: E402
import threading  # noqa: E402
from http.server import BaseHTTPRequestHandler, HTTPServer  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ACDC_ENV = "HEART_SR_ACDC_DIR"

# Tests that train, prepare a dataset or read real scans are "slow"; `pytest -m "not slow"` runs the unit tests.
SLOW_FIXTURES = {
    "acdc_dir",
    "phantom_root",
    "phantom_tfds",
    "tiny_run",
    "tiny_export",
    "tiny_segmenter",
    "short_cine",
}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(scope="session")
def acdc_dir() -> Path:
    """The real ACDC folder from $HEART_SR_ACDC_DIR; tests using it skip when it is unset."""
    value = os.environ.get(ACDC_ENV)
    if not value:
        pytest.skip(f"{ACDC_ENV} is not set: no real ACDC data to test on")
    path = Path(value)
    if not path.is_dir():
        pytest.skip(f"{ACDC_ENV}={value} is not a directory")
    return path


def _built_once(tmp_path_factory, name: str, build) -> Path:
    """The folder ``build(folder)`` fills, built once for the whole test run: under pytest-xdist every worker
    process would otherwise build its own session fixtures, so the first builds it under a lock and the others
    wait and reuse it. Tests only read these folders."""
    import fcntl

    root = tmp_path_factory.getbasetemp()
    if os.environ.get("PYTEST_XDIST_WORKER"):
        root = root.parent  # the run's folder, shared by the workers
    folder = root / f"built-{name}"
    with open(root / f"built-{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (folder / ".complete").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            build(folder)
            (folder / ".complete").touch()
    return folder


@pytest.fixture(scope="session")
def phantom_root(tmp_path_factory) -> Path:
    """Five synthetic patients in the ACDC layout (one per group)."""
    from heart_sr_tf.data.phantoms import write_phantoms

    return _built_once(tmp_path_factory, "phantoms", lambda root: write_phantoms(root, patients=5, seed=0))


@pytest.fixture(scope="session")
def phantom_tfds(phantom_root, tmp_path_factory) -> Path:
    """The phantoms built into the acdc_sr TFDS dataset."""
    from heart_sr_tf.data.prepare import prepare

    return _built_once(tmp_path_factory, "tfds", lambda data_dir: prepare(phantom_root, data_dir, quiet=True))


@pytest.fixture(scope="session")
def short_cine(phantom_root, tmp_path_factory) -> Path:
    """Three frames of a phantom's cine (its ED, its ES and one between), for tests that segment every frame:
    a third of the work of the whole cine, with an ED and an ES still to find."""
    import nibabel as nib

    def build(folder):
        cine = nib.load(str(phantom_root / "training" / "patient001" / "patient001_4d.nii.gz"))
        data = np.asarray(cine.dataobj)[..., [0, 3, 6]]  # Info.cfg: ED 1, ES 4 (1-based)
        nib.save(nib.Nifti1Image(data, cine.affine, cine.header), str(folder / "cine.nii.gz"))

    return _built_once(tmp_path_factory, "short_cine", build) / "cine.nii.gz"


TINY_CONFIG = Path(__file__).resolve().parent / "configs" / "tiny.toml"


@pytest.fixture(scope="session")
def tiny_run(phantom_tfds, tmp_path_factory) -> Path:
    """A tiny SRGAN run, trained for a few steps on the phantoms."""
    from heart_sr_tf.config import load_config
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.srgan_trainer import train_srgan

    def build(root):
        config = load_config(TINY_CONFIG)
        for stage in config.train.stages:
            stage.steps = 3
        train_srgan(Run.create(root, "tiny", config, data_dir=phantom_tfds), quiet=True)

    return _built_once(tmp_path_factory, "runs", build) / "tiny"


@pytest.fixture(scope="session")
def tiny_export(tiny_run, tmp_path_factory) -> Path:
    """The tiny run exported as saved_models/tiny/1."""
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.inference.predictor import load_run

    def build(out):
        export_generator(load_run(tiny_run).generator, out, "tiny", metadata={"scale": 3, "run": str(tiny_run)})

    return _built_once(tmp_path_factory, "saved_models", build) / "tiny" / "1"


@pytest.fixture(scope="session")
def tiny_segmenter(phantom_root, tmp_path_factory) -> tuple[Path, Path]:
    """``(run, export)``: the CPU segmenter config trained briefly on the phantoms, and its export."""
    from heart_sr_tf.commands.export import export_model
    from heart_sr_tf.config import CONFIG_CLASSES, load_config
    from heart_sr_tf.training.runs import Run
    from heart_sr_tf.training.segmenter_trainer import train_segmenter

    def build(root):
        config = load_config("segmenter_cpu", CONFIG_CLASSES["segmenter"])
        config.train.steps, config.train.log_every, config.train.validate_every = 120, 20, 60
        run = Run.create(root / "runs", "seg", config, "segmenter", phantom_root)
        train_segmenter(run, quiet=True)
        export_model(run.folder, None, None, root / "saved_models", False, False, "float32")

    root = _built_once(tmp_path_factory, "segmenter", build)
    return root / "runs" / "seg", root / "saved_models" / "segmenter"


class _StandIn(BaseHTTPRequestHandler):
    """A loopback stand-in for TF Serving's REST predict API, backed by the server's SavedModel signature."""

    def do_POST(self):  # noqa: N802
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        self.server.requests.append((self.path, body))
        lr = np.asarray(body["inputs"]["lr_image"], np.float32)
        out = self.server.signature(lr_image=tf.constant(lr))["sr_image"].numpy()
        data = json.dumps({"outputs": out.tolist()}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def tf_serving():
    """``serve(saved_model_dir, name) -> (url, requests)``: the SavedModel behind a loopback TF Serving stand-in
    (its ``serving_default`` answers ``POST /v1/models/NAME:predict``); ``requests`` collects ``(path, body)``."""
    servers = []

    def serve(saved_model: Path, name: str):
        server = HTTPServer(("127.0.0.1", 0), _StandIn)
        server.signature = tf.saved_model.load(str(saved_model)).signatures["serving_default"]
        server.requests = []
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_port}/v1/models/{name}", server.requests

    yield serve
    for server in servers:
        server.shutdown()
