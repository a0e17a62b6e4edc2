"""The committed exports beat the baseline of their degradation on real test patients (skipped without
$HEART_SR_ACDC_DIR): aligned bicubic for the decimation models, the scanner's zero-filling for the k-space ones."""

from pathlib import Path

import numpy as np
import pytest

from heart_sr_tf.data.acdc import scan_patients
from heart_sr_tf.data.acdc_sr import crop
from heart_sr_tf.data.slices import patient_slices
from heart_sr_tf.data.splits import split_patients
from heart_sr_tf.evaluation.evaluate import predict_slice
from heart_sr_tf.export.layout import read_metadata, versions
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.metrics import image_metrics

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


SHIPPED = [  # name, degradation, its scale, the baseline to beat, the least PSNR gain on these slices
    ("rrdb", "decimation", 3, "bicubic", 1.0),
    ("srgan", "decimation", 3, "bicubic", 0.0),
    ("rrdb_kspace", "kspace", 3, "zero_fill", 1.5),
    ("srgan_kspace", "kspace", 3, "zero_fill", 0.0),
    ("wgan_kspace", "kspace", 3, "zero_fill", 0.0),
    ("throughplane_x4", "through_plane", 4, "cubic", 2.0),
    ("throughplane_x6", "through_plane", 6, "cubic", 2.0),
    ("throughplane_x8", "through_plane", 8, "cubic", 1.5),
    ("throughplane_x6_t5", "through_plane", 6, "cubic", 1.5),  # slices 5 of 6 rows thick (a gap between them)
    ("throughplane_x8_t6", "through_plane", 8, "cubic", 1.5),  # slices 6 of 8 rows thick
    ("throughplane_x8_t5", "through_plane", 8, "cubic", 1.5),  # slices 5 of 8 rows thick
    ("throughplane_x6_t4", "through_plane", 6, "cubic", 1.5),  # slices 4 of 6 rows thick
    ("throughplane_x4_t3", "through_plane", 4, "cubic", 1.5),  # slices 3 of 4 rows thick
]


@pytest.mark.parametrize("name, kind, scale, baseline, min_psnr_gain", SHIPPED)
def test_shipped_model_beats_its_baseline(name, kind, scale, baseline, min_psnr_gain, test_slices):
    base = ROOT / "saved_models" / name
    assert versions(base), f"{base} holds no exported version"
    assert (base / "MODEL_CARD.md").is_file()
    predictor = load_predictor(base)
    meta = read_metadata(Path(predictor.source))
    assert meta["scale"] == scale and predictor.degradation.kind == kind
    if kind == "through_plane":  # upscale --through-plane chooses by the name: it must say the model's g and t
        from heart_sr_tf.volumes.through_plane import MODEL_PATTERN

        g, t = MODEL_PATTERN.match(name).groups()
        assert (int(g), int(t or g)) == (scale, predictor.degradation.thickness), meta
    slices = test_slices[:8] if kind == "through_plane" else test_slices  # their margins are wide; they are slow
    for roi in ("full", "heart"):
        gains = []
        for item in slices:
            hr = item.image if roi == "full" else crop(item.image, item.box)
            _, hr, outputs = predict_slice(predictor, hr, predictor.degradation)
            model, base_scores = image_metrics(outputs["model"], hr), image_metrics(outputs[baseline], hr)
            gains.append((model["psnr"] - base_scores["psnr"], model["ssim"] - base_scores["ssim"]))
        psnr_gain, ssim_gain = np.mean(gains, axis=0)
        assert psnr_gain > min_psnr_gain, f"{name} {roi}: {psnr_gain:+.2f} dB over {baseline}"
        assert ssim_gain > 0, f"{name} {roi}: {ssim_gain:+.4f} SSIM over {baseline}"


def test_shipped_segmenter_segments_real_test_patients(acdc_dir):
    """The shipped segmenter on full-resolution ED/ES frames of two test patients it never saw."""
    from heart_sr_tf.cardiac_metrics import dice_scores
    from heart_sr_tf.data.segmentation import labelled_frames, split_of
    from heart_sr_tf.inference.segmenter import Segmenter

    base = ROOT / "saved_models" / "segmenter"
    assert versions(base) and (base / "MODEL_CARD.md").is_file()
    segmenter = Segmenter(base)
    scores = []
    for patient in split_of(acdc_dir, "test", 0)[:2]:
        for frame in labelled_frames(patient):
            scores.append(dice_scores(segmenter.volume(frame.image), frame.labels))
    mean = {k: float(np.mean([s[k] for s in scores])) for k in scores[0]}
    assert mean["LV"] > 0.85 and mean["myocardium"] > 0.75 and mean["RV"] > 0.7, mean


def test_shipped_temporal_model_beats_zero_filling_on_a_held_out_cine(acdc_dir):
    """wgan3d_kspace on two slices of patient062's whole cine (no model trained on this patient), each frame
    from its neighbours, against the scanner's zero-filling on the same frames."""
    from heart_sr_tf.data.cine import cine_slices, degraded_cines

    cropped = Path(acdc_dir).parent / "acdc-cine-cropped"
    if not cropped.is_dir():
        pytest.skip(f"{cropped}: the cropped cines are not beside the ACDC folder")
    predictor = load_predictor(ROOT / "saved_models" / "wgan3d_kspace")
    assert predictor.axis == "frames" and predictor.depth == 3
    cines = [c for c in cine_slices([acdc_dir, cropped], [acdc_dir], ["patient062"]) if c.slice in (2, 3)]
    gains = []
    for _, lr, hr in degraded_cines(cines, predictor.degradation):
        sr = predictor.frames(lr)
        assert sr.shape[2] == hr.shape[2] == 30
        for t in range(0, 30, 3):
            zero = predictor.degradation.baseline_images(lr[:, :, t], hr.shape[:2])["zero_fill"]
            model = image_metrics(sr[: hr.shape[0], : hr.shape[1], t], hr[:, :, t])
            base = image_metrics(zero, hr[:, :, t])
            gains.append((model["psnr"] - base["psnr"], model["ssim"] - base["ssim"]))
    psnr_gain, ssim_gain = np.mean(gains, axis=0)
    assert psnr_gain > 1.0 and ssim_gain > 0.02, (psnr_gain, ssim_gain)


def test_a_regular_install_carries_every_shipped_models_highest_version():
    """setup.cfg's data_files hold, for every model under saved_models/, its card and every file of its highest
    version: `pip install .` (not editable) finds them under <prefix>/share/heart-sr-tf/saved_models."""
    import configparser

    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    listed = {
        file.strip()
        for value in parser["options.data_files"].values()
        for file in value.replace("\n", ",").split(",")
        if file.strip()
    }
    for model in sorted(p for p in (ROOT / "saved_models").iterdir() if p.is_dir()):
        highest = max(versions(model))
        files = [model / "MODEL_CARD.md", *(p for p in (model / str(highest)).rglob("*") if p.is_file())]
        files = [f for f in files if not {"openvino", "openvino-int8"} & set(f.relative_to(model).parts)]
        missing = [str(f.relative_to(ROOT)) for f in files if str(f.relative_to(ROOT)) not in listed]
        assert not missing, f"setup.cfg data_files lacks {missing}"
