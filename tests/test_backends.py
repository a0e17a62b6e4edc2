"""Backends and precisions against TensorFlow float32, tiled against whole-slice inference, the memory bound."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.intensity import normalise
from heart_sr_tf.export.layout import resolve_model_dir
from heart_sr_tf.inference.hardware import resolve_precision
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.inference.tiling import tiled_apply
from heart_sr_tf.metrics import image_metrics

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ROOT / "saved_models" / "rrdb_kspace"


@pytest.fixture(scope="module")
def slices(acdc_dir) -> list[np.ndarray]:
    """Six real HR slices in [0, 1] (the intensity protocol), of their scan's own size."""
    path = sorted((acdc_dir / "training").glob("patient0*/patient0*_frame01.nii.gz"))[0]
    volume = normalise(np.asarray(nib.load(str(path)).dataobj, np.float32))
    return [volume[:, :, z] for z in range(1, volume.shape[2] - 1)][:6]


@pytest.fixture(scope="module")
def model_copy(tmp_path_factory) -> Path:
    """The shipped rrdb_kspace, copied so that OpenVINO's cache is written beside the copy."""
    target = tmp_path_factory.mktemp("models") / "rrdb_kspace"
    shutil.copytree(SHIPPED, target, ignore=shutil.ignore_patterns("openvino"))
    return target


def _scores(predictor, slices):
    degradation = Degradation("kspace", 3)
    out = []
    for hr in slices:
        lr, hr = degradation.pair_np(hr)
        sr = predictor(lr[None, ..., None].astype(np.float32))[0, : hr.shape[0], : hr.shape[1], 0]
        out.append((sr, image_metrics(sr, hr)))
    return out


@pytest.mark.parametrize(
    "flags,expected",
    [({"avx512f", "avx512_bf16"}, "bfloat16"), ({"amx_bf16", "amx_tile"}, "bfloat16"), ({"avx2", "fma"}, "float32")],
)
def test_auto_precision_follows_the_cpu_flags(monkeypatch, flags, expected):
    import heart_sr_tf.hardware as hardware

    monkeypatch.setattr(hardware, "cpu_flags", lambda: flags)  # this machine has no GPU: the CPU decides
    assert resolve_precision("auto") == expected
    assert resolve_precision("float32") == "float32" and resolve_precision("bfloat16") == "bfloat16"


@pytest.mark.parametrize(
    "backend,precision", [("tensorflow", "bfloat16"), ("openvino", "float32"), ("openvino", "bfloat16")]
)
def test_backends_and_precisions_match_tensorflow_float32(model_copy, slices, backend, precision):
    if backend == "openvino":
        pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    reference = _scores(load_predictor(model_copy, "tensorflow", "float32"), slices)
    other = load_predictor(model_copy, backend, precision)
    assert (other.backend, other.precision) == (backend, precision)
    scores = _scores(other, slices)
    diff = max(float(np.abs(a[0] - b[0]).max()) for a, b in zip(reference, scores, strict=True))
    psnr = np.mean([s[1]["psnr"] for s in scores]) - np.mean([s[1]["psnr"] for s in reference])
    ssim = np.mean([s[1]["ssim"] for s in scores]) - np.mean([s[1]["ssim"] for s in reference])
    if precision == "float32":
        assert diff < 1e-4
    else:  # the limits for the accuracy cost of bfloat16
        assert diff < 0.05 and abs(psnr) < 0.02 and abs(ssim) < 0.001, (diff, psnr, ssim)


@pytest.mark.slow
def test_openvino_converts_once_and_caches_beside_the_model(model_copy, tmp_path):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    load_predictor(model_copy, "openvino", "float32")
    ir = resolve_model_dir(model_copy) / "openvino" / "model.xml"  # beside the highest version
    assert ir.is_file() and (ir.parent / "model.bin").is_file()
    stamp = ir.stat().st_mtime_ns
    load_predictor(model_copy, "openvino", "bfloat16")
    assert ir.stat().st_mtime_ns == stamp  # reused, not converted again
    # A stale cache (here: rrdb_kspace's IR put beside another model with the same graph) is never used.
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.models.rrdb import rrdb_generator

    other = export_generator(rrdb_generator(3, 4, 32, 16), tmp_path, "untrained", degradation=Degradation("kspace"))
    shutil.copytree(ir.parent, other / "openvino")
    lr = np.random.default_rng(0).random((2, 20, 24, 1)).astype(np.float32)
    got = load_predictor(other, "openvino", "float32")(lr)
    np.testing.assert_allclose(got, load_predictor(other, "tensorflow", "float32")(lr), atol=1e-4)


def test_a_model_folder_that_cannot_hold_the_cache_uses_heart_sr_cache(tmp_path, monkeypatch):
    """Beside the model when it can (read-only installs cannot): else under $HEART_SR_CACHE, found there again."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.models.rrdb import rrdb_generator

    model = export_generator(rrdb_generator(3, 1, 8, 4), tmp_path / "models", "tiny", degradation=Degradation("kspace"))
    (model / "openvino").write_text("not a folder")  # (root writes anywhere: a file stands in the cache's way)
    monkeypatch.setenv("HEART_SR_CACHE", str(tmp_path / "cache"))
    lr = np.random.default_rng(0).random((2, 20, 24, 1)).astype(np.float32)
    got = load_predictor(model, "openvino", "float32")(lr)
    np.testing.assert_allclose(got, load_predictor(model, "tensorflow", "float32")(lr), atol=1e-4)
    [ir] = (tmp_path / "cache" / "openvino").glob(f"tiny-{model.name}-*/model.xml")
    stamp = ir.stat().st_mtime_ns
    load_predictor(model, "openvino", "float32")
    assert ir.stat().st_mtime_ns == stamp and (model / "openvino").read_text() == "not a folder"


def test_tiles_equal_whole_slice_inference(slices):
    import cv2

    predictor = load_predictor(SHIPPED, "tensorflow", "float32")
    big = cv2.resize(slices[2], (300, 330), interpolation=cv2.INTER_CUBIC).clip(0, 1)[None, ..., None]
    whole = predictor.fn(big)
    tiled = tiled_apply(predictor.fn, big, (3, 3), budget=150 * 150)  # 4 x 4 cores of about 83 x 75, margins
    assert tiled.shape == whole.shape == (1, 990, 900, 1)
    assert np.abs(tiled - whole).max() < 1e-3


def test_through_plane_tiles_are_anisotropic():
    calls = []

    def fn(x):  # an exact anisotropic upsampler: repeat rows 6 times
        calls.append(x.shape)
        return np.repeat(x, 6, axis=1)

    lr = np.random.default_rng(0).random((3, 40, 700, 1)).astype(np.float32)
    out = tiled_apply(fn, lr, (6, 1), budget=40 * 300)
    np.testing.assert_array_equal(out, np.repeat(lr, 6, axis=1))
    assert len(calls) > 1 and max(np.prod(shape[:3]) for shape in calls) <= 40 * 300  # within the budget


@pytest.mark.slow
def test_two_large_slices_stay_under_2_gb(tmp_path):
    """Peak RSS of a fresh process upscaling two 1024x512 LR slices: in one whole call they take 3.0 GB; tiled,
    every call is bounded (1.1 GB measured, most of it TensorFlow itself), so the count only adds the outputs."""
    script = f"""
import resource, numpy as np
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
export_generator(rrdb_generator(3, blocks=1, features=32, growth=16), r"{tmp_path}", "big", degradation=Degradation())
predictor = load_predictor(r"{tmp_path}/big", "tensorflow", "float32")
out = predictor(np.random.default_rng(0).random((2, 1024, 512, 1)).astype(np.float32))
assert out.shape == (2, 3072, 1536, 1)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    peak = int(result.stdout.strip().splitlines()[-1])
    assert peak < 2 * 2**30, f"peak RSS {peak / 2**30:.2f} GB"


def test_export_bfloat16_twin_for_tf_serving(tmp_path, slices):
    import json

    import tensorflow as tf

    result = run_cli("export", SHIPPED, "--precision", "bfloat16", "--out", tmp_path)
    assert result.returncode == 0, result.stderr
    folder = tmp_path / "rrdb_kspace_bf16" / "1"
    meta = json.loads((folder / "assets.extra" / "heart_sr_metadata.json").read_text())
    assert meta["precision"] == "bfloat16" and meta["degradation"]["kind"] == "kspace"
    signature = tf.saved_model.load(str(folder)).signatures["serving_default"]
    lr, _ = Degradation("kspace", 3).pair_np(slices[0])
    x = tf.constant(lr[None, ..., None].astype(np.float32))
    out = signature(lr_image=x)["sr_image"]
    assert out.dtype == tf.float32 and out.shape == (1, 3 * lr.shape[0], 3 * lr.shape[1], 1)
    reference = load_predictor(SHIPPED, "tensorflow", "float32").fn(x.numpy())
    assert 0 < np.abs(out.numpy() - reference).max() < 0.05  # bfloat16 inside, close to float32


def test_with_its_ir_cached_the_openvino_path_never_imports_tensorflow_or_the_datasets(model_copy, tmp_path, acdc_dir):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    load_predictor(model_copy, "openvino", "bfloat16")  # the one-time conversion (checked by TensorFlow)
    scan = sorted((acdc_dir / "training").glob("patient0*/patient0*_frame01.nii.gz"))[0]
    script = f"""
import sys
from heart_sr_tf.cli import main
sys.argv = ["cli.py", "upscale", r"{scan}", r"{tmp_path / "out.nii.gz"}", "--model", r"{model_copy}",
            "--backend", "openvino", "--quiet"]
try:
    main()
except SystemExit as exit:
    assert exit.code == 0, exit.code
print("tensorflow imported:", "tensorflow" in sys.modules)
print("dataset machinery imported:", any(m in sys.modules for m in ("tensorflow_datasets", "heart_sr_tf.data.prepare")))
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "tensorflow imported: False" in result.stdout
    assert "dataset machinery imported: False" in result.stdout  # upscale prepares no dataset
    assert nib.load(str(tmp_path / "out.nii.gz")).shape[:2] == tuple(3 * n for n in nib.load(str(scan)).shape[:2])


def test_openvino_compiles_once_per_shape_and_equals_the_dynamic_model(model_copy):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    from heart_sr_tf.inference.openvino_backend import StaticShapes, openvino_fn

    folder = resolve_model_dir(model_copy)
    static, rank = openvino_fn(folder, "float32")
    dynamic, _ = openvino_fn(folder, "float32", static=False)
    assert isinstance(static, StaticShapes) and rank == 4
    static.limit = 2
    rng = np.random.default_rng(0)
    shapes = [(3, 20, 24, 1), (3, 20, 24, 1), (1, 31, 17, 1), (3, 20, 24, 1), (2, 16, 16, 1), (1, 31, 17, 1)]
    for shape in shapes:
        lr = rng.random(shape).astype(np.float32)
        out = static(lr)
        assert out.shape == (shape[0], 3 * shape[1], 3 * shape[2], 1)
        np.testing.assert_array_equal(out, dynamic(lr))  # exact shapes, never padding: the same numbers
    # Compiled: 20x24, 31x17; 20x24 reused (so 31x17 is now the least recently used); 16x16 evicts 31x17, which
    # is compiled again, evicting 20x24. Two kept, the most recent last.
    assert static.compiled == 4 and list(static.requests) == [(2, 16, 16, 1), (1, 31, 17, 1)]


def test_auto_precision_runs_an_export_without_a_config_in_float32(monkeypatch, tmp_path):
    """On a CPU with native bfloat16, TensorFlow's bfloat16 path rebuilds the generator from the export's config:
    an export without one runs in float32 under ``auto`` (never an error), and is refused by name when bfloat16 is
    asked for explicitly."""
    import heart_sr_tf.hardware as hardware
    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.export.writer import export_generator
    from heart_sr_tf.inference.predictor import effective_precision
    from heart_sr_tf.models.rrdb import rrdb_generator

    monkeypatch.setattr(hardware, "cpu_flags", lambda: {"avx512f", "avx512_bf16"})
    bare = export_generator(
        rrdb_generator(3, blocks=1, features=8, growth=4), tmp_path, "bare", degradation=Degradation()
    )
    assert effective_precision(bare, "tensorflow", "auto") == "float32"
    assert effective_precision(bare, "openvino", "auto") == "bfloat16"  # OpenVINO converts the graph itself
    assert effective_precision(SHIPPED, "tensorflow", "auto") == "bfloat16"  # its metadata carries its config
    predictor = load_predictor(bare, "tensorflow", "auto")
    assert predictor.precision == "float32"
    assert predictor(np.zeros((1, 10, 12, 1), np.float32)).shape == (1, 30, 36, 1)
    with pytest.raises(HeartSRError, match="no training config"):
        load_predictor(bare, "tensorflow", "bfloat16")


def test_a_3d_exports_layout_comes_from_its_metadata_config_or_is_refused():
    from heart_sr_tf.errors import HeartSRError
    from heart_sr_tf.export.layout import training_data
    from heart_sr_tf.inference.predictor import volume_layout

    meta = {"config": '[data]\ndims = 3\naxis = "frames"\ndepth = 3\n'}
    assert training_data(meta)["dims"] == 3 and volume_layout(meta, "m") == ("frames", 3)
    assert volume_layout({"config": "[data]\ndims = 3\n"}, "m") == ("slices", 4)  # the config's defaults
    for bad in ({}, {"config": "not toml ["}, {"config": '[data]\ndepth = "deep"\n'}):
        with pytest.raises(HeartSRError, match="no readable training config"):
            volume_layout(bad, "m")
    assert training_data({}) is None and training_data({"config": "x = ["}) is None


def test_a_new_process_imports_the_compiled_model_and_gets_the_same_result(tmp_path):
    """OpenVINO's compiled models are kept under $HEART_SR_CACHE/openvino-compiled: the first process compiles and
    stores one per shape, the next imports it; the results are equal to the bit (a cache that changed a value
    would be worse than none)."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    code = (
        "import sys, numpy as np\n"
        "from heart_sr_tf.inference.predictor import load_predictor\n"
        f"p = load_predictor({str(SHIPPED)!r}, 'openvino', 'bfloat16')\n"
        "lr = np.random.default_rng(0).random((3, 40, 36, 1)).astype(np.float32)\n"
        "np.save(sys.argv[1], p(lr))\n"
    )
    env = {**os.environ, "HEART_SR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    results = []
    for run in ("first", "second"):
        out = tmp_path / f"{run}.npy"
        done = subprocess.run([sys.executable, "-c", code, str(out)], env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        results.append(np.load(out))
        if run == "first":
            blobs = sorted((tmp_path / "cache" / "openvino-compiled").glob("*.blob"))
            assert len(blobs) == 1 and blobs[0].stat().st_size > 0  # one shape, compiled and stored
            stored = blobs[0].stat().st_mtime_ns
    assert results[0].shape == (3, 120, 108, 1) and np.array_equal(results[0], results[1])
    assert sorted((tmp_path / "cache" / "openvino-compiled").glob("*.blob")) == blobs
    assert blobs[0].stat().st_mtime_ns == stored  # imported by the second process, not compiled and written again


def test_the_compiled_models_kept_are_bounded_least_recently_used_first(tmp_path):
    """The folder of compiled models grows by a few MB a shape: over its bound the least recently used go, down to
    three quarters of it; what is within it, folders and links are left alone."""
    from heart_sr_tf.cache import prune_oldest

    folder = tmp_path / "compiled"
    folder.mkdir()
    for age, name in enumerate(["newest", "recent", "old", "oldest"]):
        (folder / name).write_bytes(b"x" * 1000)
        os.utime(folder / name, (1e9 - age * 1000, 1e9 - age * 1000))
    (folder / "sub").mkdir()
    (folder / "sub" / "inner").write_bytes(b"x" * 5000)
    (folder / "link").symlink_to(folder / "sub" / "inner")
    assert prune_oldest(folder, 4000) == 0 and len(list(folder.iterdir())) == 6  # at the bound: nothing goes
    assert prune_oldest(folder, 3999) == 2000  # over it: down to 2999 bytes or less, oldest first
    assert sorted(p.name for p in folder.iterdir()) == ["link", "newest", "recent", "sub"]
    os.utime(folder / "recent", (2e9, 1e9 - 1000))  # read since (a later access time): now the most recent
    assert prune_oldest(folder, 1500) == 1000 and (folder / "recent").exists() and not (folder / "newest").exists()
    assert (folder / "sub" / "inner").stat().st_size == 5000
    assert prune_oldest(tmp_path / "missing", 0) == 0


@pytest.mark.parametrize("value", ["abc", "-1", "nan", "inf", "1e400"])
def test_a_bad_bound_on_the_compiled_models_is_one_line(phantom_root, tmp_path, monkeypatch, value):
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    monkeypatch.setenv("HEART_SR_COMPILED_CACHE_MB", value)
    scan = next((phantom_root / "training" / "patient001").glob("*_4d.nii.gz"))
    result = run_cli("upscale", scan, tmp_path / "o.nii.gz", "--backend", "openvino", "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert "HEART_SR_COMPILED_CACHE_MB: must be a number of megabytes" in result.stderr and value in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_a_bad_bound_on_the_compiled_models_stops_a_cohort_before_any_scan(phantom_root, tmp_path, monkeypatch):
    """Checked once, before the cluster starts: not one failure per scan."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    pytest.importorskip("distributed", reason="Dask is not installed (the [cohort] extra)")
    monkeypatch.setenv("HEART_SR_COMPILED_CACHE_MB", "lots")
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(next((phantom_root / "training" / "patient001").glob("*_4d.nii.gz")), inputs / "a.nii.gz")
    result = run_cli("cohort", inputs, "--out-dir", tmp_path / "out", "--backend", "openvino", "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert (
        result.stderr.strip()
        == "error: HEART_SR_COMPILED_CACHE_MB: must be a number of megabytes, 0 or more, got 'lots'"
    )
    assert not (tmp_path / "out").exists()


def test_a_process_over_the_bound_removes_the_least_recently_used_compiled_models(tmp_path):
    """With the folder over ``$HEART_SR_COMPILED_CACHE_MB``, a new process removes the oldest compiled models
    before it compiles, and keeps its own; 0 keeps none and stores none."""
    pytest.importorskip("openvino", reason="OpenVINO is not installed (the [openvino] extra)")
    folder = tmp_path / "cache" / "openvino-compiled"
    folder.mkdir(parents=True)
    for age in range(3):  # three earlier compiled models of 10 MB, the first the newest
        (folder / f"earlier{age}.blob").write_bytes(b"x" * 10_000_000)
        os.utime(folder / f"earlier{age}.blob", (1e9 - age, 1e9 - age))
    code = (
        "import numpy as np\n"
        "from heart_sr_tf.inference.predictor import load_predictor\n"
        f"p = load_predictor({str(SHIPPED)!r}, 'openvino', 'float32')\n"
        "out = p(np.random.default_rng(0).random((2, 24, 20, 1)).astype(np.float32))\n"
        "assert out.shape == (2, 72, 60, 1)\n"
    )
    env = {**os.environ, "HEART_SR_CACHE": str(tmp_path / "cache"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-c", code], env={**env, "HEART_SR_COMPILED_CACHE_MB": "25"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    names = sorted(p.name for p in folder.iterdir())
    assert "earlier0.blob" in names and "earlier1.blob" not in names and "earlier2.blob" not in names, names
    assert len(names) == 2  # the newest earlier one and this process's own compiled model
    assert sum(p.stat().st_size for p in folder.iterdir()) <= 25_000_000
    done = subprocess.run(
        [sys.executable, "-c", code], env={**env, "HEART_SR_COMPILED_CACHE_MB": "0"}, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert list(folder.iterdir()) == []


def test_an_empty_cache_variable_is_the_default_cache_not_the_current_folder(tmp_path, monkeypatch):
    """``HEART_SR_CACHE=`` (a script's empty variable) made the current folder the cache: every upscale left an
    openvino-compiled folder where it ran."""
    from heart_sr_tf.cache import cache_root

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HEART_SR_CACHE", "")
    assert cache_root() == tmp_path / "home" / ".cache" / "heart-sr-tf"
    monkeypatch.setenv("HEART_SR_CACHE", str(tmp_path / "elsewhere"))
    assert cache_root() == tmp_path / "elsewhere"
