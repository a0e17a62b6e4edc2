"""A regular (non-editable) install finds its configs and shipped models from any working directory."""

import os
import site
import subprocess
import sys
import sysconfig
from pathlib import Path

import nibabel as nib
import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_a_regular_install_trains_and_upscales_from_another_directory(phantom_root, phantom_tfds, tmp_path):
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    purelib = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    # the dependencies (TensorFlow, ...) come from this environment; the package itself is installed for real
    deps = [p for p in site.getsitepackages() + [sysconfig.get_paths()["purelib"]] if Path(p).is_dir()]
    (Path(purelib) / "heart_sr_deps.pth").write_text("\n".join(dict.fromkeys(deps)) + "\n")
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", str(ROOT)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert install.returncode == 0, install.stderr[-3000:]
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL="3", HEART_SR_CACHE=str(tmp_path / "cache"))
    env.pop("PYTHONPATH", None)
    heart_sr = venv / "bin" / "heart-sr"
    where = subprocess.run(
        [python, "-c", "import heart_sr_tf; print(heart_sr_tf.__file__)"], capture_output=True, text=True, cwd=work
    )
    assert str(venv) in where.stdout, where.stdout + where.stderr  # the installed copy, not the checkout
    recorded = subprocess.run(
        [python, "-c", "import importlib.metadata as m; print(m.version('heart-sr-tf'))"],
        capture_output=True, text=True, cwd=work, env=env,
    ).stdout.strip()  # fmt: skip
    said = subprocess.run([heart_sr, "--version"], capture_output=True, text=True, cwd=work, env=env)
    assert said.returncode == 0 and said.stdout == f"heart-sr-tf {recorded}\n" and recorded, said.stdout + said.stderr
    shipped = subprocess.run(
        [python, "-c", "from heart_sr_tf.config import load_config; print(load_config('srgan_cpu').data.patch)"],
        capture_output=True, text=True, cwd=work, env=env,
    )  # fmt: skip
    assert shipped.returncode == 0 and shipped.stdout.strip() == "96", shipped.stderr[-3000:]  # the default config
    tiny = ROOT / "tests" / "configs" / "tiny.toml"  # (the default one trains for a minute before its first step)
    train = subprocess.run(
        [heart_sr, "train", "srgan", "--config", tiny, "--data-dir", phantom_tfds, "--quiet"],
        capture_output=True, text=True, cwd=work, env=env, timeout=900,
    )  # fmt: skip
    assert train.returncode == 0, train.stderr[-3000:]
    assert "model PSNR" in train.stdout and (work / "runs").is_dir()
    scan = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    up = subprocess.run(
        [heart_sr, "upscale", scan, work / "up.nii.gz", "--quiet"], capture_output=True, text=True, cwd=work, env=env
    )
    assert up.returncode == 0, up.stderr[-3000:]
    assert "share/heart-sr-tf/saved_models/rrdb_kspace" in up.stdout
    assert nib.load(str(work / "up.nii.gz")).shape[:2] == tuple(3 * n for n in nib.load(str(scan)).shape[:2])
