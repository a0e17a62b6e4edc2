"""A NIfTI file whose slices are not its third axis (a short-axis stack reoriented to the nearest canonical axes)
is upscaled in its acquisition plane and written back in its own axis order: the same voxels, at the same places,
as the file with the slices third."""

import nibabel as nib
import numpy as np
import pytest

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.scan import read_scan, slice_axis
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.inference.segmenter import Segmenter
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.volumes.measure import measure_scan
from heart_sr_tf.volumes.through_plane import ThroughPlane
from heart_sr_tf.volumes.upscale import upscale_file


@pytest.mark.parametrize(
    "zooms, shape, expected",
    [
        ((1.56, 1.56, 10.0), (216, 256, 10), 2),  # ACDC, dcm2niix: slices third
        ((10.0, 1.56, 1.56), (10, 216, 256), 0),  # reoriented: slices first
        ((1.4, 8.0, 1.3, 0.03), (192, 12, 180, 25), 1),  # a reoriented cine: slices second, frames fourth
        ((1.0, 1.0, 1.0), (64, 64, 64), 2),  # isotropic: nothing to tell, the third
        ((2.0, 1.0, 1.0), (200, 100, 100), 2),  # longest voxels but the most of them: not a stack of slices
        ((1.0, 2.0, 10.0), (216, 256, 10), 2),  # anisotropic in-plane pixels, slices third
        ((1.56, 1.56), (216, 256), 2),  # one slice
        ((0.0, 0.0, 0.0), (10, 216, 256), 2),  # no voxel sizes in the header: nothing to tell
    ],
)
def test_the_slice_axis_is_the_clearly_longest_and_fewest(zooms, shape, expected):
    assert slice_axis(zooms, shape) == expected


def _pair(tmp_path, data: np.ndarray, zooms, order):
    """The scan as written by a converter (slices third) and the same scan with its axes in ``order``."""
    affine = np.diag([-zooms[0], -zooms[1], zooms[2], 1.0])
    affine[:3, 3] = [12.0, -30.0, 45.0]
    reoriented = affine.copy()
    reoriented[:3, :3] = affine[:3, :3][:, list(order)]
    order4 = (*order, *range(3, data.ndim))
    first, second = tmp_path / "slices_third.nii.gz", tmp_path / "reoriented.nii.gz"
    nib.save(nib.Nifti1Image(data, affine), str(first))
    nib.save(nib.Nifti1Image(np.transpose(data, order4), reoriented), str(second))
    return first, second, order4


def _same_voxels(a_path, b_path, order4, points):
    """``b`` is ``a`` with its axes in ``order4``, voxel for voxel and in world coordinates."""
    a, b = nib.load(str(a_path)), nib.load(str(b_path))
    np.testing.assert_array_equal(np.transpose(np.asarray(a.dataobj), order4), np.asarray(b.dataobj))
    for point in points:
        moved = [point[k] for k in order4[:3]]
        np.testing.assert_allclose(b.affine @ [*moved, 1], a.affine @ [*point[:3], 1], atol=1e-4)


def test_a_reoriented_scan_is_upscaled_in_its_acquisition_plane(acdc_dir, tiny_export, tmp_path):
    values = np.asarray(nib.load(str(acdc_dir / "training" / "patient001" / "patient001_frame01.nii.gz")).dataobj)
    data = values[70:150, 80:160, :6].astype(np.int16)
    first, second, order4 = _pair(tmp_path, data, (1.5625, 1.5625, 10.0), (2, 0, 1))
    scan = read_scan(second)
    assert scan.slice_axis == 0 and scan.data.shape == (80, 80, 6)
    assert scan.zooms == pytest.approx((1.5625, 1.5625, 10.0))
    predictor = load_predictor(tiny_export)
    a = upscale_file(first, tmp_path / "a.nii.gz", predictor, quiet=True)
    b = upscale_file(second, tmp_path / "b.nii.gz", predictor, quiet=True)
    assert nib.load(str(b)).shape == (6, 240, 240)
    _same_voxels(a, b, order4, [(0, 0, 0), (100, 37, 4), (239, 239, 5)])
    assert nib.load(str(b)).header.get_zooms() == pytest.approx((10.0, 1.5625 / 3, 1.5625 / 3))


def test_a_reoriented_cine_across_slices_and_its_label_map(phantom_root, tmp_path):
    """Slices second, frames fourth; across slices the output's voxels are near-isotropic, so its label map (the
    shipped segmenter's) keeps the input's slice axis rather than guessing again."""
    cine = next((phantom_root / "training" / "patient001").glob("*_4d.nii.gz"))
    data = np.asarray(nib.load(str(cine)).dataobj)[..., :1]
    zooms = tuple(float(z) for z in nib.load(str(cine)).header.get_zooms()[:3])
    first, second, order4 = _pair(tmp_path, data, zooms, (0, 2, 1))
    model = tmp_path / "models"
    export_generator(
        rrdb_generator((4, 1), blocks=1, features=8, growth=4), model, "tp", degradation=Degradation("through_plane", 4)
    )
    across = ThroughPlane(load_predictor(model / "tp"))
    a = upscale_file(first, tmp_path / "a.nii.gz", through_plane=across, quiet=True)
    b = upscale_file(second, tmp_path / "b.nii.gz", through_plane=across, quiet=True)
    _same_voxels(a, b, order4, [(0, 0, 0, 0), (20, 31, 9, 0)])

    seg = Segmenter()
    la, ta, _, _ = measure_scan(a, seg, quiet=True, acquired=read_scan(first))
    lb, tb, _, _ = measure_scan(b, seg, quiet=True, acquired=read_scan(second))
    _same_voxels(la, lb, order4, [(0, 0, 0, 0), (20, 31, 9, 0)])
    assert np.asarray(nib.load(str(la)).dataobj).any()  # it found a heart
    assert ta.read_text() == tb.read_text()
