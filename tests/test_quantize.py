"""int8 through NNCF: the quantised twin is cached beside the model, keeps the float parts float, stays close to
float32, serves through the same Predictor, and is asked for by name, never made silently."""

import json
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.hardware import int8_isa
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
    assert "int8 (performance) against OpenVINO float32 on 4 validation slices" in lines[-1]
    assert "(within the limits" in lines[-1] and sum(line.startswith("quantizing") for line in lines) == 1
    assert "Statistics collection" not in result.stdout + result.stderr  # --quiet: no NNCF progress bars either
    version = next(p for p in model_copy.iterdir() if p.name.isdigit())
    xml = version / "openvino-int8" / "model.xml"
    assert xml.is_file() and (version / "openvino-int8" / "fingerprint").is_file()
    check = json.loads((version / "openvino-int8" / "check.json").read_text())  # what --precision auto reads
    assert check["within"] is True and check["preset"] == "performance" and check["validation_slices"] == 4
    assert check["int8_isa"] == int8_isa() and abs(check["psnr_loss_db"]) < 0.03 and abs(check["ssim_loss"]) < 0.001
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
    assert not (version / "openvino-int8" / "check.json").exists()  # --check 0: a twin nobody checked


def test_auto_runs_the_checked_int8_twin_where_bfloat16_is_not_native(model_copy, phantom_tfds, monkeypatch):
    """The CPU's bfloat16 is the one thing set here (this machine may have it); the twin, its check and the run
    are real."""
    import heart_sr_tf.inference.hardware as hardware
    from heart_sr_tf.inference.predictor import effective_precision

    result = run_cli("quantize", model_copy, "--data-dir", phantom_tfds, "--calibration", "8", "--check", "4")
    assert result.returncode == 0 and "(within the limits" in result.stdout, result.stdout + result.stderr[-2000:]
    monkeypatch.setattr(hardware, "native_bfloat16", lambda: True)
    assert effective_precision(model_copy, "openvino", "auto") == "bfloat16"  # native bfloat16 stays first
    monkeypatch.setattr(hardware, "native_bfloat16", lambda: False)
    assert effective_precision(model_copy, "openvino", "auto") == "int8"
    assert effective_precision(model_copy, "tensorflow", "auto") == "float32"  # int8 runs in OpenVINO only
    assert load_predictor(model_copy, "auto", "auto").precision == "int8"
    src = model_copy.parent / "scan.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((20, 24, 3)).astype(np.float32), np.eye(4)), str(src))
    upscaled = run_cli("upscale", src, model_copy.parent / "up.nii.gz", "--model", model_copy, "--quiet")
    assert upscaled.returncode == 0, upscaled.stderr[-2000:]
    assert "; openvino, int8" in upscaled.stdout and "int8: no native bfloat16 on this CPU" in upscaled.stdout
    version = next(p for p in model_copy.iterdir() if p.name.isdigit())
    record = version / "openvino-int8" / "check.json"
    check = json.loads(record.read_text())
    record.write_text(json.dumps({**check, "int8_isa": "a CPU of another class"}))  # a twin checked elsewhere
    assert effective_precision(model_copy, "openvino", "auto") == "float32"
    record.write_text(json.dumps({**check, "within": False}))
    assert effective_precision(model_copy, "openvino", "auto") == "float32"
    record.write_text(json.dumps(check))
    assert effective_precision(model_copy, "openvino", "float32") == "float32"  # asked for by name: as asked


def test_auto_preset_tries_the_next_and_keeps_the_closest_when_none_is_within(model_copy, phantom_tfds, monkeypatch):
    import heart_sr_tf.inference.openvino_backend as backend
    from heart_sr_tf.commands import quantize as command

    saved, real_save = [], backend.save_ir

    def save(model, folder, kind="openvino"):
        if kind == backend.INT8_KIND:  # (not the float IR, converted here too when the model has none yet)
            saved.append(model)
        return real_save(model, folder, kind)

    monkeypatch.setattr(backend, "save_ir", save)
    monkeypatch.setattr(command, "LIMITS", {"psnr": -1.0, "ssim": -1.0})  # int8 would have to beat float32: never
    result = run_cli(
        "quantize", model_copy, "--data-dir", phantom_tfds, "--calibration", "8", "--check", "3", "--quiet"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    tried = [line.split("NNCF preset ")[-1].rstrip(")") for line in lines if line.startswith("quantizing")]
    assert tried == ["performance", "mixed"]
    checks = [line for line in lines if line.startswith("int8 (")]
    assert [line[6 : line.index(")")] for line in checks] == tried and all("BEYOND" in line for line in checks)
    assert (
        result.stderr.count("\n") == 1 and "beyond the limits with NNCF preset performance and mixed" in result.stderr
    )
    kept = result.stderr.split("kept ")[1].split(",")[0]
    assert kept in tried
    # what stays cached is the kept preset's model: saved again when it was not the last one tried
    assert saved[-1] is saved[tried.index(kept)] and len(saved) == (2 if kept == "mixed" else 3)
    version = next(p for p in model_copy.iterdir() if p.name.isdigit())
    check = json.loads((version / "openvino-int8" / "check.json").read_text())
    assert check["within"] is False and check["preset"] == kept  # so --precision auto never picks it


def test_closest_preset_is_the_smallest_loss_against_its_limit():
    from heart_sr_tf.commands.quantize import LIMITS, closest_preset

    psnr, ssim = LIMITS["psnr"], LIMITS["ssim"]
    assert (
        closest_preset({"performance": {"psnr": 2 * psnr, "ssim": 0.0}, "mixed": {"psnr": 0.0, "ssim": 1.5 * ssim}})
        == "mixed"
    )
    assert (
        closest_preset(
            {"performance": {"psnr": 1.2 * psnr, "ssim": 1.1 * ssim}, "mixed": {"psnr": 0.0, "ssim": 1.3 * ssim}}
        )
        == "performance"
    )


def test_auto_preset_without_a_check_says_it_cannot_choose(model_copy, phantom_tfds):
    result = run_cli(
        "quantize", model_copy, "--data-dir", phantom_tfds, "--calibration", "4", "--check", "0", "--quiet"
    )
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    assert lines[0] == "--check 0: nothing to choose a preset by, so NNCF's performance"
    assert "NNCF preset performance" in lines[1] and lines[-1].startswith("wrote ") and len(lines) == 3


def test_quantize_refuses_a_3d_model_before_any_work(tmp_path):
    result = run_cli("quantize", "wgan3d_kspace", "--data-dir", tmp_path)  # (not even prepared data: no work done)
    assert result.returncode == 2 and result.stderr.count("\n") == 1, result.stderr[-2000:]
    assert "a 3D model; int8 quantisation is for 2D generators" in result.stderr
