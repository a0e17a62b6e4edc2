"""Through-plane upscaling of NIfTI stacks: model choice, geometry, intensity, the CLI."""

import importlib.util
import shutil
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from in_process import run_cli

from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.export.writer import export_generator
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.models.rrdb import rrdb_generator
from heart_sr_tf.volumes.through_plane import ThroughPlane, choose_model
from heart_sr_tf.volumes.upscale import upscale_file

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> Path:
    """Untrained exports: throughplane_x6 (exactly cubic along the slices) and an in-plane x3 (aligned bicubic)."""
    out = tmp_path_factory.mktemp("models")
    across = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    export_generator(across, out, "throughplane_x6", degradation=Degradation("through_plane", 6))
    export_generator(rrdb_generator(3, blocks=1, features=8, growth=4), out, "inplane", degradation=Degradation())
    return out


def _scan(path: Path, shape=(20, 18, 4, 3), zooms=(1.25, 1.25, 8.0, 30.0)) -> Path:
    rng = np.random.default_rng(0)
    data = (rng.random(shape) * 300).astype(np.int16)
    data[(5, 6, 2, 1)[: len(shape)]] = 4000  # a bright outlier far above the 99.5th percentile
    affine = np.diag([*zooms[:3], 1.0])
    affine[:3, 3] = [-10.0, 20.0, 5.0]
    image = nib.Nifti1Image(data, affine)
    image.header.set_zooms(zooms[: len(shape)])
    nib.save(image, str(path))
    return path


def test_the_nearest_g_is_chosen(tmp_path):
    for g in (4, 6, 8):
        (tmp_path / f"throughplane_x{g}").mkdir()
    (tmp_path / "rrdb").mkdir()
    for zooms, g in [((1.5, 1.5, 8.1), 6), ((1.0, 1.0, 7.2), 8), ((1.25, 1.25, 6.25), 4), ((2.0, 2.0, 5.0), 4)]:
        choice = choose_model(zooms, [tmp_path])
        assert choice.g == g and choice.path.name == f"throughplane_x{g}"
        assert choice.ratio == pytest.approx(zooms[2] / zooms[0])
    with pytest.raises(HeartSRError, match="no through-plane model"):
        choose_model((1.0, 1.0, 6.0), [tmp_path / "rrdb"])


def test_through_plane_keeps_geometry_and_every_voxel(models, tmp_path):
    src = _scan(tmp_path / "scan.nii.gz")
    predictor = load_predictor(models / "throughplane_x6")
    dst = upscale_file(src, tmp_path / "out.nii.gz", through_plane=ThroughPlane(predictor), quiet=True)
    a, b = nib.load(str(src)), nib.load(str(dst))
    assert b.shape == (20, 18, 24, 3) and b.get_data_dtype() == np.int16
    np.testing.assert_allclose(b.header.get_zooms(), (1.25, 1.25, 8.0 / 6, 30.0), rtol=1e-6)
    np.testing.assert_allclose(b.affine[:3, 2] * 6, a.affine[:3, 2])  # the slice column divided by g
    np.testing.assert_allclose(b.affine[:3, :2], a.affine[:3, :2])  # in-plane kept
    # the output tiles the acquired slabs: its first slice lies 2.5 of its slices before the first acquired one
    # (whose slab starts 3 before), its last 2.5 after the last acquired one
    edges = [(b.affine @ [0, 0, k, 1])[:3] for k in (-0.5, 24 - 0.5)]
    np.testing.assert_allclose(edges, [(a.affine @ [0, 0, k, 1])[:3] for k in (-0.5, 4 - 0.5)], atol=1e-9)
    x, y = np.asarray(a.dataobj), np.asarray(b.dataobj)
    # the untrained model is cubic, through slice k at its own row 6k (output 6k + 2, half a row before the
    # slab's centre); the part above the clip is interpolated at the output slices' places
    outlier = np.zeros(x.shape, bool)
    outlier[5, 6, :, 1] = True  # (the outlier's column: what its slices take of it)
    np.testing.assert_array_equal(y[:, :, 2::6][~outlier], x[~outlier])
    assert y.min() >= x.min() and 3900 < y.max() <= x.max() == 4000  # nothing brighter invented
    assert y[5, 6, 14, 1] == y.max()  # the brightest output voxel is one of the two nearest the outlier


def test_the_output_counts_what_the_acquired_slices_count(tmp_path):
    """A structure in the first three of four slices (the base of a ventricle lies in the first), through the
    shipped model: the output's slices tile the acquired slabs, so the structure's volume over them is the
    stack's own. (With output slice 0 on acquired slice 0, the first slab lost 2.5 of its 6 rows: 16 rows held
    the structure instead of 18.)"""
    data = np.zeros((16, 14, 4), np.float32)
    data[3:13, 3:11, :3] = 100.0
    data[0, 0, 3] = 1.0  # (a background that is not all zero)
    image = nib.Nifti1Image(data, np.diag([1.5, 1.5, 9.0, 1.0]))
    image.header.set_zooms((1.5, 1.5, 9.0))
    nib.save(image, str(tmp_path / "stack.nii"))
    across = ThroughPlane(load_predictor(ROOT / "saved_models" / "throughplane_x6"))
    out = nib.load(str(upscale_file(tmp_path / "stack.nii", tmp_path / "out.nii", through_plane=across, quiet=True)))
    acquired = (data > 50).sum() * 1.5 * 1.5 * 9.0
    assert (out.get_fdata() > 50).sum() * 1.5 * 1.5 * 1.5 == pytest.approx(acquired, rel=0.01)


def test_a_non_integer_ratio_uses_the_nearest_g_without_resampling(models, tmp_path):
    src = _scan(tmp_path / "scan.nii.gz", shape=(16, 16, 3), zooms=(1.5, 1.5, 8.5))  # 5.67 pixels
    choice = choose_model((1.5, 1.5, 8.5), [models])
    assert choice.g == 6
    dst = upscale_file(src, tmp_path / "out.nii", through_plane=ThroughPlane(load_predictor(choice.path)), quiet=True)
    b = nib.load(str(dst))
    assert b.shape == (16, 16, 18)
    assert b.header.get_zooms()[2] == pytest.approx(8.5 / 6)  # slices 1.417 mm apart against 1.5 mm pixels


def test_through_plane_then_in_plane(models, tmp_path):
    src = _scan(tmp_path / "scan.nii.gz", shape=(12, 10, 3), zooms=(1.5, 1.5, 9.0))
    across = ThroughPlane(load_predictor(models / "throughplane_x6"))
    dst = upscale_file(
        src, tmp_path / "iso.nii.gz", load_predictor(models / "inplane"), through_plane=across, quiet=True
    )
    b = nib.load(str(dst))
    assert b.shape == (36, 30, 18)
    np.testing.assert_allclose(b.header.get_zooms(), (0.5, 0.5, 1.5), rtol=1e-6)
    shifted = np.diag([1 / 3, 1 / 3, 1 / 6, 1.0])
    shifted[2, 3] = -2.5 / 6  # pixel 3i on pixel i in-plane; across the slices, the first slab's first row
    np.testing.assert_allclose(b.affine, nib.load(str(src)).affine @ shifted, atol=1e-9)
    x, y = np.asarray(nib.load(str(src)).dataobj), np.asarray(b.dataobj)
    outlier = np.zeros(x.shape, bool)
    outlier[5, 6, :] = True  # (its column: the part above the clip is interpolated at the output slices' places)
    # both untrained models interpolate through the samples: in-plane at 3i, across the slices at 6k + 2
    np.testing.assert_array_equal(y[::3, ::3, 2::6][~outlier], x[~outlier])


def _cli(*args):
    return run_cli("upscale", *args, cwd=ROOT)


@pytest.mark.slow
def test_cli_through_plane_and_its_errors(models, tmp_path, monkeypatch):
    src = _scan(tmp_path / "scan.nii.gz", shape=(16, 14, 3), zooms=(1.5, 1.5, 9.0))
    monkeypatch.setenv("HEART_SR_MODELS", str(models))
    result = _cli(src, tmp_path / "out.nii.gz", "--through-plane", "--quiet")
    assert result.returncode == 0, result.stderr
    assert "throughplane_x6" in result.stdout and "1.5 mm apart" in result.stdout
    assert nib.load(str(tmp_path / "out.nii.gz")).shape == (16, 14, 18)
    wrong = _cli(src, tmp_path / "bad.nii.gz", "--through-plane-model", models / "inplane")
    assert wrong.returncode == 2 and "not a through-plane model" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.nii.gz").exists()
    lone = _cli(src, tmp_path / "bad.nii.gz", "--in-plane")
    assert lone.returncode == 2 and "--in-plane goes with --through-plane" in lone.stderr
    flat = tmp_path / "flat.nii.gz"
    nib.save(nib.Nifti1Image(np.ones((8, 8), np.float32), np.eye(4)), str(flat))
    assert _cli(flat, tmp_path / "bad.nii.gz", "--through-plane").returncode == 2
    inverse = _cli(src, tmp_path / "bad.nii.gz", "--model", models / "throughplane_x6")
    assert inverse.returncode == 2 and "give it as --through-plane-model" in inverse.stderr


@pytest.mark.slow
def test_a_served_through_plane_model(models, tmp_path, tf_serving):
    """--through-plane-server: g learnt from one probe request, the same volume as the local model."""
    src = _scan(tmp_path / "scan.nii.gz", shape=(16, 14, 3), zooms=(1.5, 1.5, 9.0))
    url, requests = tf_serving(models / "throughplane_x6" / "1", "throughplane_x6")
    served = _cli(src, tmp_path / "served.nii.gz", "--through-plane-server", url, "--quiet")
    assert served.returncode == 0, served.stderr
    assert "g = 6; TF Serving" in served.stdout
    assert np.asarray(requests[0][1]["inputs"]["lr_image"]).shape == (1, 4, 4, 1)  # the probe
    model = ("--through-plane-model", models / "throughplane_x6", "--backend", "tensorflow", "--precision", "float32")
    local = _cli(src, tmp_path / "local.nii.gz", *model, "--quiet")
    assert local.returncode == 0, local.stderr
    a, b = (nib.load(str(tmp_path / f"{n}.nii.gz")) for n in ("served", "local"))
    np.testing.assert_array_equal(a.affine, b.affine)
    np.testing.assert_allclose(a.get_fdata(), b.get_fdata(), atol=1)  # int16 scan: rounding apart
    in_plane_url, _ = tf_serving(models / "inplane" / "1", "inplane")
    wrong = _cli(src, tmp_path / "bad.nii.gz", "--through-plane-server", in_plane_url)
    assert wrong.returncode == 2 and "not a through-plane model" in wrong.stderr
    assert len(wrong.stderr.strip().splitlines()) == 1 and not (tmp_path / "bad.nii.gz").exists()
    mixed = _cli(src, tmp_path / "bad.nii.gz", "--through-plane", "--server", url)
    assert mixed.returncode == 2 and "--server serves the in-plane model" in mixed.stderr


def test_init_from_another_factor_relays_the_head(tmp_path):
    """A g = 4 generator can start from a g = 6 export: every weight but the head is copied, and each of the head's
    4 sub-row offsets takes the g = 6 offset nearest in relative position (0, 1.5, 3, 4.5 -> rows 0, 2, 3, 5)."""
    from heart_sr_tf.training.runs import initialise_generator

    source = rrdb_generator((6, 1), blocks=1, features=8, growth=4)
    rng = np.random.default_rng(1)
    for w in source.weights:
        w.assign(rng.normal(size=w.shape).astype(np.float32))
    export_generator(source, tmp_path, "throughplane_x6", degradation=Degradation("through_plane", 6))
    target = rrdb_generator((4, 1), blocks=1, features=8, growth=4)
    described = initialise_generator(tmp_path / "throughplane_x6", target, (4, 1))
    assert "head re-laid for (4, 1)" in described
    by_path = {w.path: w.numpy() for w in source.weights}
    for w in target.weights:
        if w.path.startswith("conv_up/"):
            old = by_path[w.path].reshape(*w.shape[:-1], 6, 8)
            np.testing.assert_array_equal(w.numpy().reshape(*w.shape[:-1], 4, 8), old[..., [0, 2, 3, 5], :])
        else:
            np.testing.assert_array_equal(w.numpy(), by_path[w.path])
    with pytest.raises(HeartSRError, match="not this architecture"):  # without the target factors: same only
        initialise_generator(tmp_path / "throughplane_x6", rrdb_generator((4, 1), blocks=1, features=8, growth=4))
    with pytest.raises(HeartSRError, match="not this architecture"):  # another width is still refused
        initialise_generator(
            tmp_path / "throughplane_x6", rrdb_generator((4, 1), blocks=1, features=12, growth=4), (4, 1)
        )
    with pytest.raises(HeartSRError, match="not this architecture"):  # and so is another kind of factor
        initialise_generator(
            tmp_path / "throughplane_x6", rrdb_generator((5, 5), blocks=1, features=8, growth=4), (5, 5)
        )


def test_the_acquired_slices_timing_is_not_given_to_the_made_slices(models, tmp_path):
    """A header's slice timing (dim_info's slice axis, slice_code, slice_start/end, slice_duration) describes the
    acquired slices: across slices it is cleared, not left saying slice_end 3 of 24 made slices; in-plane, where
    the slices stay, it is kept."""
    src = _scan(tmp_path / "scan.nii.gz")
    image = nib.load(str(src))
    header = image.header.copy()
    header.set_dim_info(freq=0, phase=1, slice=2)
    header["slice_code"], header["slice_start"], header["slice_end"], header["slice_duration"] = 1, 0, 3, 0.05
    nib.save(nib.Nifti1Image(np.asarray(image.dataobj), image.affine, header), str(src))
    across = upscale_file(
        src,
        tmp_path / "across.nii.gz",
        through_plane=ThroughPlane(load_predictor(models / "throughplane_x6")),
        quiet=True,
    )
    within = upscale_file(src, tmp_path / "within.nii.gz", load_predictor(models / "inplane"), quiet=True)
    made, kept = nib.load(str(across)).header, nib.load(str(within)).header
    assert [int(made[k]) for k in ("slice_code", "slice_start", "slice_end")] == [0, 0, 0]
    assert float(made["slice_duration"]) == 0.0 and made.get_dim_info() == (0, 1, 2)
    assert [int(kept[k]) for k in ("slice_code", "slice_start", "slice_end")] == [1, 0, 3]
    assert float(kept["slice_duration"]) == pytest.approx(0.05)
    assert kept.get_slice_times() == pytest.approx([0.0, 0.05, 0.1, 0.15])


def _metadata_only(shipped: str, tmp_path: Path) -> Path:
    """A shipped export's version folder with its metadata and graph but no weights: it cannot load."""
    versions = [p for p in (ROOT / "saved_models" / shipped).iterdir() if p.name.isdigit()]
    source = max(versions, key=lambda p: int(p.name))
    copy = tmp_path / shipped / source.name  # (the latest version: the one a base path names)
    shutil.copytree(source, copy, ignore=shutil.ignore_patterns("variables", "openvino"))
    return copy


def test_a_model_given_for_the_other_direction_is_refused_before_it_loads(tmp_path):
    """A through-plane model as --model, or an in-plane one as --through-plane-model, is refused from its metadata
    before any model loads (it had loaded first: 12 s in OpenVINO), and by a cohort before any scan is listed (each
    scan failed with that line)."""
    across, inplane = _metadata_only("throughplane_x4", tmp_path), _metadata_only("rrdb_kspace", tmp_path)
    (tmp_path / "in").mkdir()
    scan = _scan(tmp_path / "in" / "scan.nii.gz", shape=(16, 14, 3), zooms=(1.5, 1.5, 9.0))
    commands = [("upscale", scan, tmp_path / "out.nii.gz")]
    if importlib.util.find_spec("distributed") is not None:  # (cohort runs on Dask: the cohort extra)
        commands.append(("cohort", scan, "--out-dir", tmp_path / "co"))
    for args, line in (
        (("--model", across.parent), f"{across}: a through-plane model; give it as --through-plane-model"),
        (("--through-plane-model", inplane.parent), f"{inplane}: not a through-plane model (trained for kspace)"),
    ):
        for command in commands:
            result = run_cli(*command, *args, "--quiet")
            assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
            assert result.stderr.startswith(f"error: {line}"), result.stderr
            assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in", "rrdb_kspace", "throughplane_x4"]
