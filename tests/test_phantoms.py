import nibabel as nib
import numpy as np
import pytest
from gzip_header import recorded_name

from heart_sr_tf.data.acdc import find_patients, load_frames, load_labels
from heart_sr_tf.data.phantoms import phantom_patient


def test_deterministic_per_seed():
    a, la, ia = phantom_patient(2, seed=5)
    b, lb, ib = phantom_patient(2, seed=5)
    c, _, _ = phantom_patient(2, seed=6)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(la, lb)
    assert ia == ib and not np.array_equal(a, c)


def test_layout_labels_and_a_beating_ventricle(phantom_root):
    patients = find_patients(phantom_root)
    assert [p.id for p in patients] == [f"patient{i:03d}" for i in range(1, 6)]
    assert {p.info.group for p in patients} == {"NOR", "DCM", "HCM", "MINF", "RV"}
    p = patients[0]
    assert p.cine_path is not None and sorted(p.frame_paths) == [p.info.ed, p.info.es]
    frames, spacing = load_frames(p)
    labels = load_labels(p, frames[0][1].shape)
    assert set(np.unique(labels[p.info.ed])) == {0, 1, 2, 3}
    lv_ed = (labels[p.info.ed] == 3).sum()
    lv_es = (labels[p.info.es] == 3).sum()
    assert lv_es < 0.85 * lv_ed  # the ventricle contracts
    ed_file = nib.load(str(p.frame_paths[p.info.ed])).get_fdata()
    np.testing.assert_array_equal(ed_file, frames[p.info.ed - 1][1])
    assert recorded_name(p.cine_path) == p.cine_path.name[: -len(".gz")]  # not the temporary file's name
    np.testing.assert_allclose(spacing, (1.6, 1.6, 8.0), rtol=1e-6)


def test_phantoms_never_write_into_a_folder_they_did_not_create(tmp_path):
    from heart_sr_tf.data.phantoms import write_phantoms
    from heart_sr_tf.errors import DataError

    real = tmp_path / "acdc" / "training" / "patient001"
    real.mkdir(parents=True)
    (real / "Info.cfg").write_text("ED: 1\n")
    with pytest.raises(DataError, match="not empty and was not written by `phantoms`"):
        write_phantoms(tmp_path / "acdc", 3, 0)
    assert (real / "Info.cfg").read_text() == "ED: 1\n" and sorted(p.name for p in real.iterdir()) == ["Info.cfg"]
    ours = tmp_path / "ours"
    write_phantoms(ours, 3, 0)
    assert len(write_phantoms(ours, 3, 0)) == 3  # its own earlier output may be written again
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataError, match="is a file"):
        write_phantoms(tmp_path / "file", 3, 0)
