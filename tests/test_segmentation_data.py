import numpy as np

from heart_sr_tf.data.acdc import find_patients
from heart_sr_tf.data.segmentation import label_centres, labelled_frames, load_split, split_of


def test_labelled_frames_follow_the_protocol_and_keep_the_volumes(acdc_dir):
    patient = next(p for p in find_patients(acdc_dir) if p.id == "patient001")
    frames = labelled_frames(patient)
    assert [f.phase for f in frames] == ["ED", "ES"]
    for frame in frames:
        depth = frame.labels_native.shape[2]
        assert frame.image.shape == frame.labels.shape == (depth, 256, 256)
        assert frame.image.min() >= 0.0 and frame.image.max() <= 1.0 and frame.image.dtype == np.float32
        assert set(np.unique(frame.labels)) <= {0, 1, 2, 3}
        for label in (1, 2, 3):  # nearest-neighbour resizing keeps each structure's volume within 3%
            native = np.sum(frame.labels_native == label) * frame.native_voxel_ml
            grid = np.sum(frame.labels == label) * frame.grid_voxel_ml
            assert abs(grid - native) / native < 0.03, (label, native, grid)


def test_the_split_is_the_one_prepare_uses(acdc_dir):
    from heart_sr_tf.data.acdc import scan_patients
    from heart_sr_tf.data.splits import split_patients

    patients, _ = scan_patients(acdc_dir)
    assignment = split_patients([(p.id, p.info.group, p.source_split) for p in patients], seed=0)
    test = [p.id for p in split_of(acdc_dir, "test", 0)]
    assert test == sorted(p for p, s in assignment.items() if s == "test") and len(test) == 15
    frames = load_split(acdc_dir, "validation", 0, limit=2)
    assert len(frames) == 4 and len({f.patient for f in frames}) == 2


def test_label_centres():
    labels = np.zeros((2, 8, 8), np.uint8)
    labels[0, 2:4, 4:6] = 2
    assert label_centres(labels).tolist() == [[2, 4], [-1, -1]]
