import numpy as np

from heart_sr_tf.data.slices import heart_box


def test_box_is_the_union_widened_by_ten_pixels():
    a = np.zeros((128, 64, 3), np.uint8)
    a[40:50, 10:20, 0] = 3
    b = np.zeros((128, 64, 3), np.uint8)
    b[60:70, 30:33, 2] = 1
    # 128 rows -> x2, 64 cols -> x4 in 256x256 coordinates
    assert heart_box([a, b]) == (80 - 10, 140 + 10, 40 - 10, 132 + 10)


def test_box_is_clamped_to_the_image_and_none_without_labels():
    a = np.zeros((256, 256, 2), np.uint8)
    a[0:5, 250:256, 1] = 2
    assert heart_box([a]) == (0, 15, 240, 256)
    assert heart_box([np.zeros((10, 10, 2), np.uint8)]) is None
    assert heart_box([]) is None
