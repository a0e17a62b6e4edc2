from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from dicom_series import Cine, write_cine
from gzip_header import recorded_name
from in_process import run_cli

from heart_sr_tf.data.scan import read_scan
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.inference.predictor import load_predictor
from heart_sr_tf.inference.remote import rest_predictor
from heart_sr_tf.volumes.upscale import upscale_file


def _check_geometry(src: Path, dst: Path):
    a, b = nib.load(str(src)), nib.load(str(dst))
    assert b.shape == (3 * a.shape[0], 3 * a.shape[1], *a.shape[2:])
    za, zb = a.header.get_zooms(), b.header.get_zooms()
    np.testing.assert_allclose(zb[:2], np.array(za[:2]) / 3, rtol=1e-6)
    np.testing.assert_allclose(zb[2:], za[2:], rtol=1e-6)
    np.testing.assert_allclose(b.affine[:3, 2:], a.affine[:3, 2:], atol=1e-6)  # slice axis and origin unchanged
    np.testing.assert_allclose(b.affine[:3, :2] * 3, a.affine[:3, :2], atol=1e-6)
    assert b.get_data_dtype() == a.get_data_dtype()
    x, y = np.asarray(a.dataobj, np.float32), np.asarray(b.dataobj, np.float32)
    assert y.min() >= x.min() - 1e-3 and y.max() <= x.max() + 1e-3  # back in the input's intensity range
    return x, y


def test_upscale_a_phantom_cine(phantom_root, tiny_export, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_4d.nii.gz"
    dst = upscale_file(src, tmp_path / "up.nii.gz", load_predictor(tiny_export), quiet=True)
    x, y = _check_geometry(src, dst)
    corr = np.corrcoef(y[::3, ::3].ravel(), x.ravel())[0, 1]
    assert corr > 0.9  # output voxel (3i, 3j) sits on input voxel (i, j)


def test_a_result_names_itself_not_its_temporary_file(phantom_root, tiny_export, tmp_path):
    """gzip records the name of the file it compressed, and ``gunzip -N`` restores it: a result recorded its
    temporary file's (``.heart-sr-<hash>.part-<pid>.nii``), a hidden file under another name."""
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    predictor = load_predictor(tiny_export)
    for name in ("up.nii.gz", "UP.NII.GZ"):
        assert recorded_name(upscale_file(src, tmp_path / name, predictor, quiet=True)) == name[: -len(".gz")]
    plain = upscale_file(src, tmp_path / "up.nii", predictor, quiet=True)  # uncompressed, as its name says
    assert plain.read_bytes()[344:348] == b"n+1\0"
    np.testing.assert_array_equal(nib.load(str(plain)).dataobj, nib.load(str(tmp_path / "up.nii.gz")).dataobj)


def test_refuses_to_overwrite_its_input(phantom_root, tiny_export, tmp_path):
    src = tmp_path / "scan.nii.gz"
    src.write_bytes((phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz").read_bytes())
    with pytest.raises(HeartSRError, match="refusing to overwrite"):
        upscale_file(src, src, load_predictor(tiny_export), quiet=True)
    result = run_cli("upscale", src, src, "--model", tiny_export)
    assert result.returncode == 2 and "refusing to overwrite" in result.stderr and "Traceback" not in result.stderr


def test_no_output_ever_replaces_the_input_scan_not_even_with_overwrite(phantom_root, tiny_export, tmp_path):
    """OUT as the input by another spelling, a link or a hard link is refused with --overwrite too. So is a side
    output named from OUT: `upscale a_labels.nii.gz a.nii.gz --measure --overwrite` wrote --measure's label map
    over the input scan. And a label map this tool wrote, upscaled in turn to the OUT it was measured from, was
    removed as that OUT's stale measurement once the result was written."""
    import os

    scan = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    src = tmp_path / "a_labels.nii.gz"
    src.write_bytes(scan.read_bytes())
    (tmp_path / "link.nii.gz").symlink_to(src.name)
    os.link(src, tmp_path / "hard.nii.gz")
    before = sorted(p.name for p in tmp_path.iterdir())
    for out, extra in [
        (tmp_path / "." / "a_labels.nii.gz", ()),
        (tmp_path / "link.nii.gz", ()),
        (tmp_path / "hard.nii.gz", ()),
        (tmp_path / "a.nii.gz", ("--measure",)),
    ]:
        result = run_cli("upscale", src, out, "--model", tiny_export, "--overwrite", "--quiet", *extra)
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        named = tmp_path / "a_labels.nii.gz" if extra else out
        why = " (--measure's label map goes there)" if extra else ""
        assert result.stderr.strip() == f"error: {named}: refusing to overwrite the input scan{why}"
        assert src.read_bytes() == scan.read_bytes() and sorted(p.name for p in tmp_path.iterdir()) == before
    image = nib.load(str(src))  # a label map of this tool's, as --measure writes beside OUT a.nii.gz
    image.header["descrip"] = b"heart-sr labels: 0 background, 1 RV, 2 myocardium, 3 LV (automatic)"
    nib.save(image, str(src))
    kept = src.read_bytes()
    result = run_cli("upscale", src, tmp_path / "a.nii.gz", "--model", tiny_export, "--quiet")
    assert result.returncode == 0, result.stderr
    assert src.read_bytes() == kept and "removed" not in result.stdout


def test_bad_input_scan_gives_one_line_and_no_output(tiny_export, tmp_path):
    src = tmp_path / "bad.nii.gz"
    nib.save(nib.Nifti1Image(np.full((10, 10, 2), np.nan, np.float32), np.eye(4)), str(src))
    result = run_cli("upscale", src, tmp_path / "out.nii.gz", "--model", tiny_export)
    assert result.returncode == 2 and f"{src}: " in result.stderr and "NaN" in result.stderr
    assert not list(tmp_path.glob("*out*"))


def test_real_cines(acdc_dir, tiny_export, tmp_path):
    predictor = load_predictor(tiny_export)
    whole = nib.load(str(acdc_dir / "training" / "patient090" / "patient090_4d.nii.gz"))
    src = tmp_path / "p090_first4.nii.gz"  # its first four frames, header and geometry as they are
    nib.save(nib.Nifti1Image(np.asarray(whole.dataobj)[..., :4], whole.affine, whole.header), str(src))
    _check_geometry(src, upscale_file(src, tmp_path / "p090.nii.gz", predictor, quiet=True))
    cropped = acdc_dir.parent / "acdc-cine-cropped" / "training" / "patient001" / "patient001_4d.nii.gz"
    if not cropped.exists():
        pytest.skip(f"{cropped} not found")
    _check_geometry(cropped, upscale_file(cropped, tmp_path / "c001.nii.gz", predictor, quiet=True))


def test_server_mode_sends_tf_serving_requests(phantom_root, tiny_export, tmp_path, tf_serving):
    url, requests = tf_serving(tiny_export, "tiny")
    src = phantom_root / "training" / "patient002" / "patient002_frame01.nii.gz"
    remote = upscale_file(src, tmp_path / "remote.nii.gz", rest_predictor(url), batch_size=4, quiet=True)
    local = upscale_file(src, tmp_path / "local.nii.gz", load_predictor(tiny_export), batch_size=4, quiet=True)
    probe, (path, body) = requests[0], requests[1]  # one small request learns the served model's scale
    assert np.asarray(probe[1]["inputs"]["lr_image"]).shape == (1, 4, 4, 1)
    assert path == "/v1/models/tiny:predict" and body["signature_name"] == "serving_default"
    assert np.asarray(body["inputs"]["lr_image"]).shape[1:] == (176, 208, 1)
    assert len(requests) == 3  # the probe, then 6 slices in batches of 4
    np.testing.assert_allclose(nib.load(str(remote)).get_fdata(), nib.load(str(local)).get_fdata(), atol=1)


def test_a_corrupt_model_gives_one_line(phantom_root, tmp_path):
    (tmp_path / "m" / "1").mkdir(parents=True)
    (tmp_path / "m" / "1" / "saved_model.pb").write_bytes(b"not a model")
    (tmp_path / "m" / "1" / "assets.extra").mkdir()  # metadata that is fine: the model itself is what is broken
    (tmp_path / "m" / "1" / "assets.extra" / "heart_sr_metadata.json").write_text(
        '{"scale": 3, "degradation": {"kind": "kspace", "scale": 3}}'
    )
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    result = run_cli("upscale", src, tmp_path / "o.nii.gz", "--model", tmp_path / "m")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {tmp_path / 'm' / '1'}: not a loadable" in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()


def test_a_model_copied_without_its_metadata_is_named_as_such(phantom_root, tiny_export, tmp_path):
    """A SavedModel copied without ``assets.extra`` (or written by other code): upscale said that its metadata "does
    not say 'degradation'", of a file that is not there, and export that it "cannot be rebuilt in bfloat16"."""
    import shutil

    bare = tmp_path / "bare" / "1"
    shutil.copytree(tiny_export, bare, ignore=shutil.ignore_patterns("assets.extra"))
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    result = run_cli("upscale", src, tmp_path / "o.nii.gz", "--model", bare)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert f"error: {bare}: no heart-sr metadata (assets.extra/heart_sr_metadata.json)" in result.stderr
    assert not (tmp_path / "o.nii.gz").exists()
    again = run_cli("export", bare, "--out", tmp_path / "exports")  # (it said: "cannot be rebuilt in bfloat16")
    assert again.returncode == 2 and f"error: {bare}: no heart-sr metadata" in again.stderr
    assert not (tmp_path / "exports").exists()
    start = run_cli("train", "srgan", "--init-from", bare, "--runs-dir", tmp_path / "runs", "--quiet")
    assert start.returncode == 2 and f"error: {bare}: no heart-sr metadata" in start.stderr
    assert "run:" not in start.stdout  # refused before a run was made and its data prepared


def _answering(reply, status: int = 200):
    """A loopback server whose every predict answer is ``reply(lr)`` (a JSON-able object, or the body's bytes), with
    HTTP ``status``."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = reply(np.asarray(body["inputs"]["lr_image"], np.float32))
            data = answer if isinstance(answer, bytes) else json.dumps(answer).encode()
            self.send_response(status)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}/v1/models/bad"


def _x3(lr):
    return np.repeat(np.repeat(lr, 3, axis=1), 3, axis=2)


@pytest.mark.parametrize(
    "reply, scale, message",
    [
        (lambda lr: {"outputs": np.where(lr.shape[1] == 4, _x3(lr), np.nan).tolist()}, 3, "NaN or infinite"),
        (lambda lr: {"outputs": [[1.0], [1.0, 2.0]]}, 3, "ragged or not numbers"),
        (lambda lr: {"outputs": "an image"}, 3, "ragged or not numbers"),
        (lambda lr: [1, 2, 3], 3, "has no outputs"),
        (lambda lr: {"outputs": lr[:, :2].tolist()}, 3, "not an in-plane model"),
        (lambda lr: {"outputs": _x3(lr).tolist()}, 2, "x3, not x2"),
    ],
)
def test_a_bad_server_is_one_error_and_writes_nothing(phantom_root, tmp_path, reply, scale, message):
    server, url = _answering(reply)
    src = phantom_root / "training" / "patient002" / "patient002_frame01.nii.gz"
    try:
        with pytest.raises(HeartSRError, match=message):
            upscale_file(src, tmp_path / "o.nii.gz", rest_predictor(url, scale), quiet=True)
    finally:
        server.shutdown()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "status, body, line",
    [  # a proxy's or web server's HTML error page; TF Serving's own JSON error, over two lines
        (501, b"<html>\n<head><title>Error response</title></head>\n<body><p>Message: Unsupported method</p>\n</body>"
         b"</html>\n", "server answered 501: Error response Message: Unsupported method"),
        (400, b'{"error": "Input to reshape is a tensor with 48 values,\\n but the requested shape has 96"}',
         "server answered 400: Input to reshape is a tensor with 48 values, but the requested shape has 96"),
    ],
)  # fmt: skip
def test_a_servers_error_page_is_one_line(phantom_root, tmp_path, status, body, line):
    """A server's error answer went into the error as it came: an HTML page over many lines. Now its text (TF
    Serving's ``error``, or a page's words) is one line."""
    server, url = _answering(lambda lr: body, status)
    src = phantom_root / "training" / "patient002" / "patient002_frame01.nii.gz"
    try:
        result = run_cli("upscale", src, tmp_path / "o.nii.gz", "--server", url, "--quiet")
    finally:
        server.shutdown()
    assert result.returncode == 2 and result.stderr.strip() == f"error: {url}:predict: {line}", result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_bad_server_on_the_command_line_is_one_line(phantom_root, tmp_path):
    server, url = _answering(lambda lr: {"outputs": np.full(_x3(lr).shape, np.nan).tolist()})
    src = phantom_root / "training" / "patient002" / "patient002_frame01.nii.gz"
    try:
        result = run_cli("upscale", src, tmp_path / "o.nii.gz", "--server", url, "--quiet")
    finally:
        server.shutdown()
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.returncode == 2 and "Traceback" not in result.stderr and len(errors) == 1, result.stderr
    assert "NaN or infinite" in errors[0] and sorted(p.name for p in tmp_path.iterdir()) == []
    for bad in (
        "http://models",
        "http://host:port/v1/models/m",
        "ftp://host/v1/models/m",
        "localhost:8501/v1/models/m",
        "http://[::1/v1/models/m",  # (a bracket left open: urllib's ValueError, a traceback)
    ):
        result = run_cli("upscale", src, tmp_path / "o.nii.gz", "--server", bad, "--quiet")  # (a URL without a path
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr  # once raised in http.client)
        assert f"error: {bad}: not a served model's URL (e.g. http://localhost:8501/v1/models/" in result.stderr


def test_a_folder_or_a_link_to_nothing_at_an_output_is_refused_before_any_work(phantom_root, tmp_path):
    """OUT a link to nothing raised FileNotFoundError (a traceback); a DICOM OUT folder that is one failed after the
    whole upscale ("cannot write (Not a directory)"); --measure replaced a link at OUT_labels.nii.gz without
    --overwrite, and with it met a folder there only after the work (IsADirectoryError, OUT already written)."""
    from heart_sr_tf.volumes.measure import check_measure_outputs
    from heart_sr_tf.volumes.upscale import refuse_any_output

    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    out = tmp_path / "linked.nii.gz"
    out.symlink_to(tmp_path / "gone" / "x.nii.gz")
    result = run_cli("upscale", src, out, "--quiet")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip() == (
        f"error: {out}: exists (a link to {tmp_path / 'gone' / 'x.nii.gz'}, which does not exist); pass --overwrite "
        "to replace it"
    )
    refuse_any_output(read_scan(src), out, overwrite=True)  # asked: the link is replaced, not followed
    folder = tmp_path / "series"
    folder.symlink_to(tmp_path / "gone")
    write_cine(tmp_path / "dicom", Cine(np.ones((8, 8, 2, 2), np.float32) * 100))
    with pytest.raises(HeartSRError, match=f"{folder}: a link to {tmp_path / 'gone'}, which does not exist"):
        refuse_any_output(read_scan(tmp_path / "dicom"), folder, overwrite=True, dicom_out=True)
    result_path = tmp_path / "sr.nii.gz"
    (tmp_path / "sr_labels.nii.gz").symlink_to(tmp_path / "gone.nii.gz")
    with pytest.raises(HeartSRError, match="sr_labels.nii.gz: exists .a link to .*; pass --overwrite"):
        check_measure_outputs(result_path, overwrite=False)
    check_measure_outputs(result_path, overwrite=True)
    (tmp_path / "sr_volumes.csv").mkdir()
    with pytest.raises(HeartSRError, match="sr_volumes.csv: is a folder, not a file"):
        check_measure_outputs(result_path, overwrite=True)
    result = run_cli("upscale", src, result_path, "--measure", "--overwrite", "--quiet")
    assert result.returncode == 2 and "sr_volumes.csv: is a folder, not a file" in result.stderr, result.stderr
    assert not result_path.exists()


def test_a_replaced_results_measurements_never_stay_beside_the_new_one(phantom_root, tiny_export, tmp_path):
    """`upscale IN OUT --measure`, then `upscale IN OUT --overwrite` with another model: OUT_labels.nii.gz and
    OUT_volumes.csv of the first result stayed beside the second, read as its measurements. Now this tool's own
    measurements of a replaced result are removed, with a line; a file of the same name that it did not write
    stays, and so does a SEG folder holding a file someone added."""
    from heart_sr_tf.volumes.dicom_writer import write_marker
    from heart_sr_tf.volumes.measure import remove_measurements

    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    out = tmp_path / "sr.nii.gz"
    measured = run_cli("upscale", src, out, "--model", tiny_export, "--measure", "--quiet")
    assert measured.returncode == 0, measured.stderr
    labels, volumes = tmp_path / "sr_labels.nii.gz", tmp_path / "sr_volumes.csv"
    assert labels.is_file() and volumes.is_file()
    again = run_cli("upscale", src, out, "--model", "rrdb", "--overwrite", "--quiet")
    assert again.returncode == 0, again.stderr
    assert f"removed {labels}, {volumes}: the measurements of the result {out} replaced" in again.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sr.nii.gz"]
    volumes.write_text("frame,LV_ml\n1,120\n")  # a table of the lab's own, by chance of that name
    assert run_cli("upscale", src, out, "--model", "rrdb", "--overwrite", "--quiet").returncode == 0
    assert volumes.read_text() == "frame,LV_ml\n1,120\n"
    dicom_out = tmp_path / "series"  # a DICOM OUT's SEG and report folders: removed when wholly the tool's
    for folder in (tmp_path / "series_seg", tmp_path / "series_sr"):
        folder.mkdir()
        (folder / "SEG0000.dcm").write_text("")
        write_marker(folder, "1.2.3")
    (tmp_path / "series_sr" / "reading.txt").write_text("a radiologist's note")
    assert remove_measurements(dicom_out) == [tmp_path / "series_seg"]
    assert (tmp_path / "series_sr" / "reading.txt").is_file()


def test_an_existing_output_is_kept_unless_overwrite(phantom_root, tmp_path):
    src = phantom_root / "training" / "patient001" / "patient001_frame01.nii.gz"
    out = tmp_path / "mine.nii.gz"
    out.write_bytes(b"a file the tool did not write")
    result = run_cli("upscale", src, out, "--quiet")
    assert result.returncode == 2 and "exists; pass --overwrite" in result.stderr, result.stderr
    assert out.read_bytes() == b"a file the tool did not write"
    result = run_cli("upscale", src, out, "--model", "throughplane_x6", "--quiet", "--overwrite")  # (a failed run)
    assert result.returncode == 2 and "a through-plane model; give it as --through-plane-model" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.nii.gz"]  # no 0-byte temporary file left


@pytest.mark.parametrize("codes", [(1, 0), (0, 4), (1, 2), (0, 0)])
def test_the_output_states_its_geometry_in_the_forms_the_input_states_it(tiny_export, tmp_path, codes):
    """Each of the qform and sform is kept as the input has it, scaled: input voxel (i, j) sits where output voxel
    (3i, 3j) does. A form the input leaves unset stays unset; nibabel set the sform of a qform-only (or formless)
    scan as "aligned", a space the scan never claimed."""
    qcode, scode = codes
    rotation = nib.eulerangles.euler2mat(0.3, -0.2, 0.1)
    affine = np.eye(4)
    affine[:3, :3] = rotation @ np.diag([1.4, 1.3, 8.0])
    affine[:3, 3] = [-100.0, 50.0, 20.0]
    image = nib.Nifti1Image(np.random.default_rng(0).integers(0, 400, (30, 26, 3, 2)).astype(np.int16), None)
    image.header.set_zooms((1.4, 1.3, 8.0, 30.0))
    image.set_qform(affine if qcode else None, qcode)
    image.set_sform(affine if scode else None, scode)
    nib.save(image, str(tmp_path / "in.nii.gz"))
    source = nib.load(str(tmp_path / "in.nii.gz"))
    assert (int(source.header["qform_code"]), int(source.header["sform_code"])) == codes
    out = upscale_file(tmp_path / "in.nii.gz", tmp_path / "out.nii.gz", load_predictor(tiny_export), quiet=True)
    result = nib.load(str(out))
    assert (int(result.header["qform_code"]), int(result.header["sform_code"])) == codes
    assert np.allclose(result.header.get_zooms(), (1.4 / 3, 1.3 / 3, 8.0, 30.0), atol=1e-5)
    voxels = np.array([[0, 0, 0, 1], [5, 7, 2, 1], [29, 25, 1, 1]], float).T
    scaled = voxels * np.array([[3], [3], [1], [1]])
    for method, code in (("qform", qcode), ("sform", scode)):
        if code:
            matrix = getattr(source, f"get_{method}")()
            assert np.allclose(getattr(result, f"get_{method}")() @ scaled, matrix @ voxels, atol=1e-3)
    if qcode or scode:  # what readers take; without either, the NIfTI standard's voxel sizes from the origin
        assert np.allclose(result.affine @ scaled, source.affine @ voxels, atol=1e-3)
