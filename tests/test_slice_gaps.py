"""Stacks whose slices are thinner than their spacing (a gap between them): the slice thickness read, the
through-plane model trained for the nearest slab chosen, its output slices placed for that slab, a mismatch said."""

from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_series import Cine, write_cine
from in_process import run_cli

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.errors import DataError
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.volumes.through_plane import Thickness, ThroughPlane, choose_model, header_thickness
from heart_sr_tf.volumes.upscale import upscale_file

ROOT = Path(__file__).resolve().parents[1]
SCMR = (1.6, 1.6, 10.0)  # the usual cine stack: 10 mm between slices of 1.6 mm pixels (g = 6.25)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Untrained exports (cubic along the slices) for contiguous slices and for slabs 5 and 4 of 6 rows thick: every
    slab of g = 6 the shipped models have, so that none of theirs is chosen over these."""
    out = tmp_path_factory.mktemp("gap_models")
    for name, t in (("throughplane_x6", 6), ("throughplane_x6_t5", 5), ("throughplane_x6_t4", 4)):
        generator = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
        export_generator(generator, out, name, degradation=Degradation("through_plane", 6, thickness=t))
    return out


def test_the_slab_nearest_the_stacks_thickness_is_chosen(tmp_path):
    names = (
        "throughplane_x4",
        "throughplane_x4_t3",
        "throughplane_x6",
        "throughplane_x6_t5",
        "throughplane_x6_t4",
        "throughplane_x8",
        "throughplane_x8_t6",
        "throughplane_x8_t5",
    )
    for name in (*names, "throughplane_x6_"):
        (tmp_path / name).mkdir()
    cases = [
        (SCMR, None, "throughplane_x6"),  # not stated (a NIfTI): contiguous slices assumed
        (SCMR, 10.0, "throughplane_x6"),
        (SCMR, 12.0, "throughplane_x6"),  # overlapping slices: the thickest slab there is
        (SCMR, 8.0, "throughplane_x6_t5"),  # 0.8 of the spacing: 4.8 of 6 rows
        (SCMR, 6.0, "throughplane_x6_t4"),  # 3.6 rows
        (SCMR, 6.6, "throughplane_x6_t4"),  # 3.96 rows
        ((2.0, 2.0, 8.0), 6.0, "throughplane_x4_t3"),  # 3 of g = 4 rows
        ((2.0, 2.0, 8.0), 6.8, "throughplane_x4_t3"),  # 3.4 rows
        ((2.0, 2.0, 8.0), 7.2, "throughplane_x4"),  # 3.6 rows
        ((2.0, 2.0, 8.0), None, "throughplane_x4"),  # not stated: contiguous
        ((1.25, 1.25, 10.0), 8.0, "throughplane_x8_t6"),  # 6.4 of g = 8 rows
        ((1.25, 1.25, 10.0), 7.0, "throughplane_x8_t6"),  # 5.6 rows
        ((1.25, 1.25, 10.0), 6.8, "throughplane_x8_t5"),  # 5.44 rows
        ((1.25, 1.25, 10.0), 6.0, "throughplane_x8_t5"),  # 4.8 rows
        ((1.25, 1.25, 10.0), 5.0, "throughplane_x8_t5"),  # 4 rows: the thinnest slab there is
        ((1.25, 1.25, 10.0), None, "throughplane_x8"),  # not stated: contiguous
    ]
    for zooms, mm, name in cases:
        choice = choose_model(zooms, [tmp_path], Thickness(mm, "test"))
        assert choice.path.name == name, (zooms, mm)
        assert (choice.g, choice.t) == (int(name[14]), int(name[-1]) if "_t" in name else int(name[14]))
    # a tie between two slabs goes to the thicker (5.5 rows: t = 5 and t = 6 are half a row off)
    assert choose_model(SCMR, [tmp_path], Thickness(55 / 6, "test")).t == 6


def test_a_slab_more_than_a_row_off_is_said():
    assert Thickness(8.0, "x").mismatch(SCMR, 6, 5) is None
    assert Thickness(9.0, "x").mismatch(SCMR, 6, 6) is None  # 5.4 rows: within a row
    assert "4.8 of g = 6 rows" in Thickness(8.0, "x").mismatch(SCMR, 6, 6)  # the contiguous model, 1.2 rows off
    line = Thickness(6.0, "the header's SliceThickness").mismatch(SCMR, 6, 6)
    assert "6 mm thick (the header's SliceThickness) and 10 mm apart: 3.6 of g = 6 rows" in line
    assert "trained for slices 6 rows thick" in line
    assert "not stated" in Thickness(None, "").mismatch(SCMR, 6, 4)
    assert Thickness(None, "").mismatch(SCMR, 6, 6) is None


def _cine(folder: Path, thickness: str | None, gap: float = 10.0, shape=(16, 14, 3, 2)) -> Path:
    values = np.random.default_rng(1).random(shape) * 400

    def edit(z, t, ds):
        if thickness is None:
            del ds.SliceThickness
        else:
            ds.SliceThickness = thickness

    write_cine(folder, Cine(values, spacing=(1.6, 1.6), gap=gap), edit=edit)
    return folder


def test_the_thickness_a_header_states(tmp_path):
    assert read_scan(_cine(tmp_path / "a", "8")).slice_thickness == 8.0
    assert header_thickness(read_scan(tmp_path / "a")) == Thickness(8.0, "the header's SliceThickness")
    assert read_scan(_cine(tmp_path / "b", None)).slice_thickness is None  # (Type 2: may be absent)
    assert read_scan(_cine(tmp_path / "c", "0")).slice_thickness is None  # states none, as some writers put it
    assert "a DICOM header without a SliceThickness" in header_thickness(read_scan(tmp_path / "c")).describe(SCMR, 6)
    with pytest.raises(DataError, match=r"d: the DICOM header's SliceThickness is .*-6.*, not a slice thickness"):
        read_scan(_cine(tmp_path / "d", "-6")).stated_thickness()  # not read as "contiguous" behind the user's back
    image = nib.Nifti1Image(np.ones((8, 8, 3), np.float32), np.diag([1.6, 1.6, 10.0, 1.0]))
    nib.save(image, str(tmp_path / "stack.nii"))
    assert read_scan(tmp_path / "stack.nii").slice_thickness is None  # a NIfTI header states none


def test_the_thickness_a_nifti_sidecar_states(tmp_path):
    """dcm2niix writes the DICOM fields beside the NIfTI (BIDS sidecar): its SliceThickness is read; a sidecar that
    states none (or 0) leaves it unstated, and the terminal says where it looked; one that is not JSON, not an
    object, or whose SliceThickness is no thickness, is an error naming it and the value."""
    image = nib.Nifti1Image(np.ones((8, 8, 3), np.float32), np.diag([1.6, 1.6, 10.0, 1.0]))
    nib.save(image, str(tmp_path / "stack.nii.gz"))
    side = tmp_path / "stack.json"
    side.write_text('{"SliceThickness": 8, "SpacingBetweenSlices": 10, "Manufacturer": "Siemens"}')
    scan = read_scan(tmp_path / "stack.nii.gz")
    assert header_thickness(scan) == Thickness(8.0, "SliceThickness of the sidecar stack.json")
    for text in ('{"Manufacturer": "GE"}', '{"SliceThickness": 0}', '{"SliceThickness": null}'):
        side.write_text(text)
        stated = header_thickness(read_scan(tmp_path / "stack.nii.gz"))
        assert stated.mm is None, text
        assert "its sidecar stack.json states no SliceThickness" in stated.describe(SCMR, 6), text
    for text, value in (('{"SliceThickness": -6}', "-6"), ('{"SliceThickness": "abc"}', "'abc'")):
        side.write_text(text)
        with pytest.raises(DataError, match=rf"stack\.json: SliceThickness is {value}, not a slice thickness in mm"):
            read_scan(tmp_path / "stack.nii.gz").stated_thickness()
    side.write_text("[8]")
    with pytest.raises(DataError, match=r"stack\.json: not a BIDS sidecar: a JSON list"):
        read_scan(tmp_path / "stack.nii.gz").stated_thickness()
    side.unlink()
    assert "no BIDS sidecar stack.json beside it" in header_thickness(read_scan(tmp_path / "stack.nii.gz")).describe(
        SCMR, 6
    )
    side.write_text('{"SliceThickness": 8,')
    with pytest.raises(DataError, match=r"stack\.json: not a readable JSON sidecar"):
        read_scan(tmp_path / "stack.nii.gz").stated_thickness()


def test_a_thin_slab_model_places_its_slices_on_the_acquired_ones(models, tmp_path):
    """t = 5 of g = 6: the box is centred on its row, so output slice 6k + 2 lies on acquired slice k (for t = 6 it
    lies half a row before it) and the output starts 2 rows before the first slice."""
    data = (np.random.default_rng(0).random((12, 10, 4)) * 300).astype(np.float32)
    image = nib.Nifti1Image(data, np.diag([*SCMR, 1.0]))
    nib.save(image, str(tmp_path / "stack.nii"))
    across = ThroughPlane(load_predictor(models / "throughplane_x6_t5"))
    assert (across.t, across.lead, across.start) == (5, 2, -2.0)
    out = nib.load(str(upscale_file(tmp_path / "stack.nii", tmp_path / "out.nii", through_plane=across, quiet=True)))
    assert out.shape == (12, 10, 24)
    for k in range(4):
        np.testing.assert_allclose(out.affine @ [0, 0, 6 * k + 2, 1], image.affine @ [0, 0, k, 1], atol=1e-9)
    np.testing.assert_allclose(out.get_fdata()[:, :, 2::6], data, rtol=1e-5, atol=1e-3)  # cubic through them
    contiguous = ThroughPlane(load_predictor(models / "throughplane_x6"))
    assert contiguous.start == -2.5


def test_a_cohort_task_reads_the_thickness_from_the_header(models, tmp_path, monkeypatch):
    """The worker's model follows the header: 8 mm slices 10 mm apart take the t = 5 model (the output's first slice
    2 of its slices before the first acquired one); 3 mm slices are 2.2 rows thinner than any model's, said."""
    from heart_sr_tf.cohort.task import upscale_task

    monkeypatch.setenv("HEART_SR_MODELS", str(models))
    options = {
        "model": None, "in_plane": False, "through_plane": True, "through_plane_model": None,
        "backend": "tensorflow", "precision": "float32", "batch_size": 16,
    }  # fmt: skip
    for thickness, start, warned in (("8", -2.0, False), ("10", -2.5, False), ("3", -1.5, True)):
        folder = _cine(tmp_path / f"cine{thickness}", thickness)
        result = upscale_task(str(folder), str(tmp_path / f"out{thickness}.nii.gz"), options)
        assert result["status"] == "done", result
        acquired, out = read_scan(folder), nib.load(str(tmp_path / f"out{thickness}.nii.gz"))
        np.testing.assert_allclose(out.affine @ [0, 0, 0, 1], acquired.image.affine @ [0, 0, start / 6, 1], atol=1e-6)
        assert any("trained for slices 4 rows thick" in w for w in result["warnings"]) == warned, result
        assert (
            result["model"]
            == {"8": "throughplane_x6_t5/1", "10": "throughplane_x6/1", "3": "throughplane_x6_t4/1"}[thickness]
        ), result
    given = upscale_task(str(tmp_path / "cine10"), str(tmp_path / "given.nii.gz"), options, thickness_mm=8.0)
    assert given["status"] == "done" and not given["warnings"], given  # a manifest's thickness before the header's
    out = nib.load(str(tmp_path / "given.nii.gz"))
    first = read_scan(tmp_path / "cine10").image.affine @ [0, 0, -2.0 / 6, 1]  # t = 5's start, not t = 6's
    np.testing.assert_allclose(out.affine @ [0, 0, 0, 1], first, atol=1e-6)


def _cli(*args):
    return run_cli("upscale", *args, cwd=ROOT)


@pytest.mark.slow
def test_cli_slice_thickness(models, tmp_path, monkeypatch):
    monkeypatch.setenv("HEART_SR_MODELS", str(models))
    folder = _cine(tmp_path / "cine", "8")
    result = _cli(folder, tmp_path / "out.nii.gz", "--through-plane")
    assert result.returncode == 0, result.stderr
    assert "throughplane_x6_t5" in result.stdout and "trained for slices 5 of its 6 rows thick" in result.stdout
    assert "slices 8 mm thick (the header's SliceThickness), 0.80 of the spacing: 4.80 of g = 6 rows" in result.stdout
    assert "warning" not in result.stderr
    given = _cli(folder, tmp_path / "given.nii.gz", "--through-plane", "--slice-thickness", "10")  # replaces it
    assert given.returncode == 0, given.stderr
    assert "trained for contiguous slices" in given.stdout and "(--slice-thickness)" in given.stdout
    thin = _cli(folder, tmp_path / "thin.nii.gz", "--through-plane", "--slice-thickness", "3")
    assert thin.returncode == 0 and "warning" in thin.stderr and "trained for slices 4 rows thick" in thin.stderr
    for args, what in (
        (("--through-plane", "--slice-thickness", "0"), "--slice-thickness"),
        (("--through-plane", "--slice-thickness", "nan"), "--slice-thickness"),
        (("--slice-thickness", "8"), "--slice-thickness goes with --through-plane"),
    ):
        bad = _cli(folder, tmp_path / "bad.nii.gz", *args)
        assert bad.returncode == 2 and what in bad.stderr, bad.stderr
        assert len(bad.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.nii.gz").exists()


def test_cli_a_sidecar_whose_thickness_is_no_thickness(models, tmp_path, monkeypatch):
    """One line naming the sidecar and its value, exit 2, nothing written, before any model loads; the option that
    gives the thickness instead is honoured without reading the sidecar."""
    monkeypatch.setenv("HEART_SR_MODELS", str(models))
    data = (np.random.default_rng(0).random((12, 10, 3)) * 300).astype(np.float32)
    nib.save(nib.Nifti1Image(data, np.diag([*SCMR, 1.0])), str(tmp_path / "stack.nii.gz"))
    (tmp_path / "stack.json").write_text('{"SliceThickness": -8}')
    bad = _cli(tmp_path / "stack.nii.gz", tmp_path / "out.nii.gz", "--through-plane")
    assert bad.returncode == 2, bad.stderr
    assert bad.stderr.strip() == (
        f"error: {tmp_path / 'stack.json'}: SliceThickness is -8, not a slice thickness in mm "
        "(--slice-thickness MM gives it instead)"
    )
    assert not (tmp_path / "out.nii.gz").exists()
    given = _cli(tmp_path / "stack.nii.gz", tmp_path / "out.nii.gz", "--through-plane", "--slice-thickness", "8")
    assert given.returncode == 0, given.stderr
    assert "throughplane_x6_t5" in given.stdout and nib.load(str(tmp_path / "out.nii.gz")).shape == (12, 10, 18)
