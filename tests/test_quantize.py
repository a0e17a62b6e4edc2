"""int8 through NNCF: the quantised twin is cached beside the model, keeps the float parts float, stays close to
float32, serves through the same Predictor, and is asked for by name, never made silently."""

import shutil
from pathlib import Path

import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.inference.predictor import load_predictor

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("openvino", reason="OpenVINO is not installed")
pytest.importorskip("nncf", reason="NNCF is not installed (the [int8] extra)")


@pytest.fixture(scope="module")
def model_copy(tiny_export, tmp_path_factory) -> Path:
    target = tmp_path_factory.mktemp("int8") / "tiny"
    shutil.copytree(Path(tiny_export).parent, target)
    return target


def test_int8_is_refused_until_quantize_has_made_it(model_copy):
    with pytest.raises(HeartSRError, match="no int8 model yet; make one with `python cli.py quantize"):
        load_predictor(model_copy, "openvino", "int8")
    with pytest.raises(HeartSRError, match="--precision int8: runs in OpenVINO"):
        load_predictor(model_copy, "tensorflow", "int8")
    from heart_sr_tf.commands.export import export_model

    with pytest.raises(HeartSRError, match="no int8 model yet"):
        export_model(model_copy, None, None, model_copy.parent / "ovms", False, False, "int8")


def test_quantize_caches_an_int8_twin_close_to_float32(model_copy, phantom_tfds):
    import openvino as ov

    from heart_sr_tf.inference.quantize import float_scope

    args = ["quantize", model_copy, "--data-dir", phantom_tfds]
    result = run_cli(*args, "--calibration", "8", "--check", "4", "--quiet")
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0].startswith("quantizing") and "on 8 training slices" in lines[0]
    assert "int8 against OpenVINO float32 on 4 validation slices" in lines[-1]
    assert "Statistics collection" not in result.stdout + result.stderr  # --quiet: no NNCF progress bars either
    version = next(p for p in model_copy.iterdir() if p.name.isdigit())
    xml = version / "openvino-int8" / "model.xml"
    assert xml.is_file() and (version / "openvino-int8" / "fingerprint").is_file()
    model = ov.Core().read_model(str(xml))
    types = {op.get_type_name() for op in model.get_ordered_ops()}
    assert "FakeQuantize" in types  # quantised
    names, kept = float_scope(ov.Core().read_model(str(version / "openvino" / "model.xml")))
    assert kept == ["Add", "Concat"] and len(names) >= 2
    lr = np.random.default_rng(0).random((2, 20, 24, 1)).astype(np.float32)
    reference = load_predictor(model_copy, "openvino", "float32")(lr)
    int8 = load_predictor(model_copy, "openvino", "int8")
    assert int8.precision == "int8"
    out = int8(lr)
    assert out.shape == reference.shape == (2, 60, 72, 1)
    assert 0 < np.abs(out - reference).max() < 0.05  # quantised (not identical), and close
    from heart_sr_tf.commands.export import export_model

    line = export_model(model_copy, "tiny_int8", None, model_copy.parent / "ovms", False, False, "int8")
    served = model_copy.parent / "ovms" / "tiny_int8" / "1"
    assert "OpenVINO Model Server" in line and (served / "model.xml").is_file() and (served / "model.bin").is_file()
    assert (served / "model.bin").read_bytes() == (version / "openvino-int8" / "model.bin").read_bytes()
    # NNCF's mixed preset (asymmetric activations): another int8 twin, as close to float32, said in its first line
    mixed = run_cli(*args, "--calibration", "8", "--check", "0", "--preset", "mixed", "--quiet")
    assert mixed.returncode == 0 and "NNCF preset mixed" in mixed.stdout.splitlines()[0], mixed.stderr[-2000:]
    out_mixed = load_predictor(model_copy, "openvino", "int8")(lr)
    assert 0 < np.abs(out_mixed - out).max() and np.abs(out_mixed - reference).max() < 0.05


def test_quantize_refuses_a_3d_model_before_any_work(tmp_path):
    result = run_cli("quantize", "wgan3d_kspace", "--data-dir", tmp_path)  # (not even prepared data: no work done)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "a 3D model; int8 quantisation is for 2D generators" in result.stderr
