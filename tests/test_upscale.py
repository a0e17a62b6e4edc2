import subprocess
import sys
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.inference.remote import rest_predictor
from heart_sr_tf.volumes.upscale import upscale_nifti

ROOT = Path(__file__).resolve().parents[1]


def _check_geometry(src: Path, dst: Path):
    a, b = nib.load(str(src)), nib.load(str(dst))
    assert b.shape == (3 * a.shape[0], 3 * a.shape[1], *a.shape[2:])
    za, zb = a.header.get_zooms(), b.header.get_zooms()
    np.testing.assert_allclose(zb[:2], np.array(za[:2]) / 3, rtol=1e-6)
    np.testing.assert_allclose(zb[2:], za[2:], rtol=1e-6)
    np.testing.assert_allclose(b.affine[:3, 2:], a.affine[:3, 2:], atol=1e-6)  # slice axis and origin unchanged
    np.testing.assert_allclose(b.affine[:3, :2] * 3, a.affine[:3, :2], atol=1e-6)
    assert b.get_data_dtype() == a.get_data_dtype()
    x, y = np.asarray(a.dataobj, np.float32), np.asarray(b.dataobj, np.float32)
    assert y.min() >= x.min() - 1e-3 and y.max() <= x.max() + 1e-3  # back in the input's intensity range
    return x, y


def test_upscale_a_phantom_cine(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_4d.nii.gz"
    dst = upscale_nifti(src, tmp_path / "up.nii.gz", load_predictor(tiny_export), quiet=True)
    x, y = _check_geometry(src, dst)
    corr = np.corrcoef(y[::3, ::3].ravel(), x.ravel())[0, 1]
    assert corr > 0.9  # output voxel (3i, 3j) sits on input voxel (i, j)


def test_refuses_to_overwrite_its_input(phantom_root, tiny_export, tmp_path):
    src = tmp_path / "scan.nii.gz"
    src.write_bytes((phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz").read_bytes())
    with pytest.raises(HeartSRError, match="refusing to overwrite"):
        upscale_nifti(src, src, load_predictor(tiny_export), quiet=True)
    result = subprocess.run(
        [sys.executable, "cli.py", "upscale", str(src), str(src), "--model", str(tiny_export)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr and "Traceback" not in result.stderr


def test_bad_input_scan_gives_one_line_and_no_output(tiny_export, tmp_path):
    src = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.full((10, 10, 2), np.nan, np.float32), np.eye(4)), str(src))
    result = subprocess.run(
        [sys.executable, "cli.py", "upscale", str(src), str(tmp_path / "out.nii.gz"), "--model", str(tiny_export)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and f"{src}: " in result.stderr and "NaN" in result.stderr
    assert not list(tmp_path.glob("*out*"))


def test_real_cines(acdc_dir, tiny_export, tmp_path):
    predictor = load_predictor(tiny_export)
    src = acdc_dir / "training" / "patient090" / "patient090_4d.nii.gz"
    _check_geometry(src, upscale_nifti(src, tmp_path / "p090.nii.gz", predictor, quiet=True))
    cropped = acdc_dir.parent / "acdc-cine-cropped" / "training" / "patient001" / "patient001_4d.nii.gz"
    if not cropped.exists():
        pytest.skip(f"{cropped} not found")
    _check_geometry(cropped, upscale_nifti(cropped, tmp_path / "c001.nii.gz", predictor, quiet=True))


def test_server_mode_sends_tf_serving_requests(phantom_root, tiny_export, tmp_path, tf_serving):
    url, requests = tf_serving(tiny_export, "tiny")
    src = phantom_root / "training" / "patient002" / "patient002_frame01.nii.gz"
    remote = upscale_nifti(src, tmp_path / "remote.nii.gz", rest_predictor(url), batch_size=4, quiet=True)
    local = upscale_nifti(src, tmp_path / "local.nii.gz", load_predictor(tiny_export), batch_size=4, quiet=True)
    path, body = requests[0]
    assert path == "/v1/models/tiny:predict" and body["signature_name"] == "serving_default"
    assert np.asarray(body["inputs"]["lr_image"]).shape[1:] == (176, 208, 1)
    assert len(requests) == 2  # 6 slices in batches of 4
    np.testing.assert_allclose(nib.load(str(remote)).get_fdata(), nib.load(str(local)).get_fdata(), atol=1)


def test_a_corrupt_model_gives_one_line(phantom_root, tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"not a model")
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    result = subprocess.run(
        [sys.executable, "cli.py", "upscale", str(src), str(tmp_path / "o.nii.gz"), "--model", str(tmp_path / "m")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'm' / '1'}: not a loadable" in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()
