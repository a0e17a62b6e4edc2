"""The reader and preprocessing on the real ACDC files (skipped without $HEART_SR_ACDC_DIR)."""

import cv2
import nibabel as nib
import numpy as np

from heart_sr_tf.data.acdc import GROUPS, find_patients, load_frames, load_labels
from heart_sr_tf.data.intensity import intensity_window, normalise
from heart_sr_tf.data.slices import heart_box, patient_slices


def test_finds_all_patients_with_their_info(acdc_dir):
    patients = find_patients(acdc_dir)
    assert len(patients) == 100
    assert {p.info.group for p in patients} == set(GROUPS)
    first = next(p for p in patients if p.id == "patient001")
    assert (first.info.ed, first.info.es, first.info.group, first.info.nb_frame) == (1, 12, "DCM", 30)
    assert sorted(first.frame_paths) == [1, 12] and sorted(first.label_paths) == [1, 12]
    assert first.cine_path is None and first.source_split == "training"


def test_uses_the_cine_when_present(acdc_dir):
    p090 = next(p for p in find_patients(acdc_dir) if p.id == "patient090")
    frames, spacing = load_frames(p090)
    assert [n for n, _ in frames] == list(range(1, 13))
    assert frames[0][1].shape == (154, 224, 7)
    np.testing.assert_allclose(spacing, (1.78571, 1.78571, 10.0), atol=1e-4)
    slices = list(patient_slices(p090))
    assert len(slices) == 12 * 7


def test_every_dtype_normalises_to_unit_range(acdc_dir):
    patients = {p.id: p for p in find_patients(acdc_dir)}
    seen = set()
    for pid in ("patient001", "patient090", "patient050", "patient100", "patient030", "patient070"):
        frames, _ = load_frames(patients[pid])
        volume = frames[0][1]
        low, high = intensity_window(volume)
        assert low == volume.min() and np.isclose(high, np.percentile(volume, 99.5))
        scaled = normalise(volume)
        assert scaled.dtype == np.float32 and scaled.min() == 0.0 and scaled.max() == 1.0
        ed_path = patients[pid].frame_paths[patients[pid].info.ed]
        seen.add(str(nib.load(str(ed_path)).get_data_dtype()))
    assert len(seen) >= 2  # the real data mixes int16, uint8 and float32


def test_slices_are_256_in_unit_range_with_provenance(acdc_dir):
    patient = next(p for p in find_patients(acdc_dir) if p.id == "patient001")
    slices = list(patient_slices(patient))
    assert len(slices) == 2 * 10
    for item in slices:
        assert item.image.shape == (256, 256) and item.image.dtype == np.float32
        assert 0.0 <= item.image.min() and item.image.max() <= 1.0
    assert {(s.frame, s.slice) for s in slices} == {(f, z) for f in (1, 12) for z in range(10)}
    assert slices[0].spacing == (1.5625, 1.5625, 10.0) and slices[0].group == "DCM"


def test_heart_box_holds_every_label_with_margin(acdc_dir):
    patient = next(p for p in find_patients(acdc_dir) if p.id == "patient001")
    frames, _ = load_frames(patient)
    labels = load_labels(patient, frames[0][1].shape)
    r0, r1, c0, c1 = heart_box(list(labels.values()))
    mask = np.zeros((256, 256), bool)
    for volume in labels.values():
        for z in range(volume.shape[2]):
            resized = cv2.resize(volume[:, :, z], (256, 256), interpolation=cv2.INTER_NEAREST)
            mask |= resized > 0
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    assert r0 <= rows[0] - 10 + 2 and rows[-1] + 10 - 2 < r1
    assert c0 <= cols[0] - 10 + 2 and cols[-1] + 10 - 2 < c1
    assert 0 <= r0 < r1 <= 256 and 0 <= c0 < c1 <= 256
