import warnings

import numpy as np
import pytest

from heart_sr_tf.cardiac_metrics import (
    agreement,
    dice,
    dice_scores,
    gap_closed,
    gap_closed_interval,
    kept_shares,
    paired_difference,
    patient_measurements,
    volumes_ml,
    wall_thickness_mm,
)
from heart_sr_tf.inference.segmenter import largest_components


def test_dice_and_volumes_on_hand_made_labels():
    truth = np.zeros((2, 10, 10), np.uint8)
    truth[:, 2:6, 2:6] = 3  # LV: 32 voxels
    truth[:, 7:9, 7:9] = 1  # RV: 8 voxels
    pred = truth.copy()
    pred[:, 2:6, 2:4] = 0  # half the LV lost
    assert dice(pred, truth, 3) == pytest.approx(2 * 16 / (16 + 32))
    assert dice_scores(pred, truth)["RV"] == 1.0 and dice_scores(pred, truth)["myocardium"] == 1.0  # both empty
    assert volumes_ml(truth, 0.5) == {"LV": 16.0, "myocardium": 0.0, "RV": 4.0}


def test_ejection_fraction_mass_and_agreement():
    ed = {"LV": 150.0, "RV": 160.0, "myocardium": 100.0}
    es = {"LV": 60.0, "RV": 80.0, "myocardium": 110.0}
    m = patient_measurements(ed, es)
    assert m["LVEF"] == pytest.approx(60.0) and m["RVEF"] == pytest.approx(50.0)
    assert m["myo_mass"] == pytest.approx(105.0) and m["LVEDV"] == 150.0 and m["LVESV"] == 60.0
    assert np.isnan(m["ED_wall_mm"]) and patient_measurements({**ed, "wall_mm": 7.5}, es)["ED_wall_mm"] == 7.5
    a = agreement([11.0, 9.0, 13.0], [10.0, 10.0, 10.0])  # differences 1, -1, 3
    assert a["bias"] == pytest.approx(1.0) and a["mae"] == pytest.approx(5 / 3)
    assert a["loa_high"] - a["bias"] == pytest.approx(1.96 * 2.0)  # sample SD of (1, -1, 3) is 2
    assert gap_closed(0.85, 0.80, 0.90) == pytest.approx(50.0) and gap_closed(0.80, 0.80, 0.90) == 0.0


def test_gap_closed_interval_resamples_patients():
    patients = np.repeat([f"p{i}" for i in range(10)], 2)  # ED and ES of 10 patients
    low, full = np.full(20, 0.80), np.full(20, 0.90)
    # The same share in every patient: no spread whatever the resample.
    assert gap_closed_interval(np.full(20, 0.85), low, full, patients) == pytest.approx((50.0, 50.0))
    # Half the patients closed the whole gap, half none: 50% overall, and an interval that says how uncertain.
    model = np.where(np.arange(20) < 10, 0.90, 0.80)
    lo, hi = gap_closed_interval(model, low, full, patients)
    assert 10 < lo < 50 < hi < 90
    assert gap_closed_interval(model, low, full, patients) == (lo, hi)  # seeded: the same figures every run
    # No gap to close in any resample: no interval.
    assert all(np.isnan(gap_closed_interval(model, full, full, patients)))


def test_paired_difference_and_its_interval():
    d = paired_difference([3.0, 5.0, np.nan, 4.0], [1.0, 1.0, 2.0, 1.0])  # the NaN pair is dropped: 2, 4, 3
    assert d["mean"] == pytest.approx(3.0) and 2.0 <= d["low"] < 3.0 < d["high"] <= 4.0
    same = paired_difference([2.0] * 5, [1.0] * 5)
    assert (same["mean"], same["low"], same["high"]) == pytest.approx((1.0, 1.0, 1.0))


def _ring(inner: float, outer: float, size: int = 80, stretch: float = 1.0) -> np.ndarray:
    """One slice: an LV cavity of radius ``inner`` in a myocardium to radius ``outer`` (in mm when the columns
    are ``stretch`` times narrower than the rows' 1 mm), in an RV-labelled surround."""
    rows, columns = np.mgrid[:size, :size].astype(float)
    r = np.hypot(rows - size / 2, (columns - size / 2) / stretch)
    section = np.where(r <= inner, 3, np.where(r <= outer, 2, 1)).astype(np.uint8)
    return section[None]


def test_wall_thickness_of_a_ring_is_its_width_in_mm():
    # A 6 mm wall on 1 mm pixels: the endocardial border pixels lie within a pixel of the cavity, so their
    # distance to the outside is the width less up to one pixel.
    assert 5.0 <= wall_thickness_mm(_ring(10, 16), (1.0, 1.0)) <= 6.5
    assert wall_thickness_mm(_ring(10, 16), (1.5, 1.5)) == pytest.approx(1.5 * wall_thickness_mm(_ring(10, 16), (1, 1)))
    thin, thick = wall_thickness_mm(_ring(10, 13), (1, 1)), wall_thickness_mm(_ring(10, 19), (1, 1))
    assert thin + 5 < thick  # 3 mm and 9 mm walls
    # Anisotropic pixels: the same 6 mm ring drawn on pixels half as wide along the columns.
    assert 5.0 <= wall_thickness_mm(_ring(10, 16, size=120, stretch=2.0), (1.0, 0.5)) <= 6.5
    empty = np.zeros((2, 10, 10), np.uint8)
    assert np.isnan(wall_thickness_mm(empty, (1, 1)))
    apart = np.zeros((2, 20, 20), np.uint8)  # an LV and a myocardium that never touch: no border, NaN, no warning
    apart[:, 2:5, 2:5], apart[:, 12:16, 12:16] = 3, 2
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert np.isnan(wall_thickness_mm(apart, (1, 1)))
    apart[1, 5, 2:5] = 2  # one slice where they touch: that slice's border only
    assert wall_thickness_mm(apart, (1, 1)) == pytest.approx(1.0)


def test_largest_components_drop_islands_per_structure():
    labels = np.zeros((3, 20, 20), np.uint8)
    labels[:, 2:10, 2:10] = 3
    labels[1, 15:17, 15:17] = 3  # an island of LV far away
    labels[:, 12:14, 2:4] = 1
    out = largest_components(labels)
    assert (out[:, 2:10, 2:10] == 3).all() and (out[1, 15:17, 15:17] == 0).all()
    assert (out[:, 12:14, 2:4] == 1).all() and out.dtype == labels.dtype
    # what the post-processing kept, per structure: the LV lost its 4-voxel island, the RV nothing, no myocardium
    shares = kept_shares(labels, out)
    assert shares == {"LV": pytest.approx(192 / 196), "myocardium": 1.0, "RV": 1.0}


def test_a_gap_thinner_than_the_bridge_keeps_both_parts():
    """Slices made between acquired ones (6 per slab): the segmenter missed the LV in two rows; the apex beyond
    them is no island. A part further away, or beside rather than below, still is."""
    labels = np.zeros((30, 20, 20), np.uint8)
    labels[:12, 2:10, 2:10] = 3  # the base, 768 voxels
    labels[14:20, 3:8, 3:8] = 3  # the apex beyond a 2-row gap, 150 voxels
    labels[28:30, 3:5, 3:5] = 3  # an island 8 rows further, under the LV
    labels[:12, 14:18, 14:18] = 3  # an island beside the LV, on the same rows
    assert (largest_components(labels)[14:20] == 0).all()  # alone, the apex is dropped
    out = largest_components(labels, bridge=5)
    np.testing.assert_array_equal(out[:20, :10, :10], labels[:20, :10, :10])  # base and apex, no voxel added
    assert not out[28:].any() and not out[:, 14:, 14:].any()
    assert not largest_components(labels, bridge=1)[14:20].any()  # a 2-row gap is more than one row


def test_a_structure_in_pieces_is_a_warning_naming_the_frame():
    from heart_sr_tf.volumes.measure import kept_warnings

    labels = np.zeros((4, 20, 20), np.uint8)
    labels[:2, 2:10, 2:10] = 3  # the LV in three pieces, 128, 64 and 32 voxels: the first is kept
    labels[3, 2:10, 2:10] = 3
    labels[3, 12:16, 2:10] = 3
    shares = kept_shares(labels, largest_components(labels))
    assert shares["LV"] == pytest.approx(128 / 224)
    (line,) = kept_warnings(7, shares)
    assert line.startswith("frame 7: the LV's largest component holds 57% of the voxels labelled LV")
    assert kept_warnings(7, {"LV": 0.64, "myocardium": 1.0, "RV": 1.0}) == []
    from heart_sr_tf.cardiac_metrics import kept_percent

    assert (kept_percent(0.5996), kept_percent(0.57), kept_percent(1.0)) == ("59%", "57%", "100%")  # never "60%"


def test_volumes_and_mass_are_indexed_to_the_body_surface_area_the_header_gives():
    """Mosteller's BSA from a DICOM series' PatientSize and PatientWeight; a cine's summary gives the LV and RV
    volumes at ED and ES, and with a BSA those and the mass indexed to it; no header, or an implausible one (a
    height in centimetres), gives no index."""
    from types import SimpleNamespace

    import pydicom

    from heart_sr_tf.cardiac_metrics import body_surface_area
    from heart_sr_tf.volumes.measure import _cine_summary, patient_body

    assert body_surface_area(1.80, 81.0) == pytest.approx(2.01246, abs=1e-5)  # sqrt(180 * 81 / 3600)
    header = pydicom.Dataset()
    header.PatientSize, header.PatientWeight = "1.80", "81"
    scan = SimpleNamespace(dicom=SimpleNamespace(headers=[[header]]))
    assert patient_body(scan) == (1.80, 81.0)
    assert patient_body(SimpleNamespace(dicom=None)) is None
    header.PatientSize = "180"  # centimetres where metres belong
    assert patient_body(scan) is None
    rows = [
        {"frame": 1, "LV_ml": 120.0, "RV_ml": 150.0, "myocardium_ml": 100.0, "LV_wall_mm": 8.0},
        {"frame": 2, "LV_ml": 50.0, "RV_ml": 75.0, "myocardium_ml": 98.0, "LV_wall_mm": 11.0},
    ]
    lines = {line["measure"]: line["value"] for line in _cine_summary(rows, (1.80, 81.0)) if "measure" in line}
    assert lines["LV end-diastolic / end-systolic volume"] == "120.0 / 50.0 ml (59.6 / 24.8 ml/m2)"
    assert lines["RV volumes at the LV's ED / ES"] == "150.0 / 75.0 ml (74.5 / 37.3 ml/m2)"
    assert lines["myocardial mass at ED"] == "105.0 g (52.2 g/m2)" and lines["LVEF"] == "58.3 %"
    assert lines["body surface area (Mosteller)"].startswith("2.01 m2, from the DICOM header's height 1.80 m")
    plain = {line["measure"]: line["value"] for line in _cine_summary(rows) if "measure" in line}
    assert plain["LV end-diastolic / end-systolic volume"] == "120.0 / 50.0 ml" and not any(
        "m2" in v for v in map(str, plain.values())
    )
