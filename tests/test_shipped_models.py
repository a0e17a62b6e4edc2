"""The committed exports beat aligned bicubic on real test patients (skipped without $HEART_SR_ACDC_DIR)."""

from pathlib import Path

import numpy as np
import pytest

from heart_sr_tf.data.acdc import scan_patients
from heart_sr_tf.data.acdc_sr import crop
from heart_sr_tf.data.slices import patient_slices
from heart_sr_tf.data.splits import split_patients
from heart_sr_tf.evaluation.evaluate import predict_slice
from heart_sr_tf.metrics import image_metrics
from heart_sr_tf.serving.export import read_metadata, versions
from heart_sr_tf.serving.predictor import load_predictor

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def test_slices(acdc_dir):
    """Mid-ventricular ED and ES slices of four test-split patients (the split the models never saw)."""
    patients, _ = scan_patients(acdc_dir)
    assignment = split_patients([(p.id, p.info.group, p.source_split) for p in patients], seed=0)
    chosen = [p for p in patients if assignment[p.id] == "test"][:4]
    out = []
    for patient in chosen:
        slices = [s for s in patient_slices(patient) if s.frame in (patient.info.ed, patient.info.es)]
        depth = max(s.slice for s in slices) + 1
        out += [s for s in slices if depth // 3 <= s.slice < depth // 3 + 2]
    return out


@pytest.mark.parametrize("name, min_psnr_gain", [("rrdb", 1.0), ("srgan", 0.0)])
def test_shipped_model_beats_aligned_bicubic(name, min_psnr_gain, test_slices):
    base = ROOT / "saved_models" / name
    assert versions(base), f"{base} holds no exported version"
    assert (base / "MODEL_CARD.md").is_file()
    predictor = load_predictor(base)
    assert read_metadata(Path(predictor.source))["scale"] == 3
    for roi in ("full", "heart"):
        gains = []
        for item in test_slices:
            hr = item.image if roi == "full" else crop(item.image, item.box)
            _, outputs = predict_slice(predictor, hr)
            model, bicubic = image_metrics(outputs["model"], hr), image_metrics(outputs["bicubic"], hr)
            gains.append((model["psnr"] - bicubic["psnr"], model["ssim"] - bicubic["ssim"]))
        psnr_gain, ssim_gain = np.mean(gains, axis=0)
        assert psnr_gain > min_psnr_gain, f"{name} {roi}: {psnr_gain:+.2f} dB over aligned bicubic"
        assert ssim_gain > 0, f"{name} {roi}: {ssim_gain:+.4f} SSIM over aligned bicubic"
