"""Inference speed of an exported generator on this machine: every backend and precision side by side, then
``upscale`` end to end.

    python benchmarks/inference.py [--model rrdb_kspace] [--slices 160] [--skip-cine]

1. Model throughput on batches of 16 LR grids of 86x86 (-> 258x258), each backend and precision in this one
   run, with its ratio to TensorFlow float32 and its largest difference from TensorFlow float32's output.
   Real ACDC slices are used when $HEART_SR_ACDC_DIR is set (random images otherwise).
2. ``python cli.py upscale`` of a cine of 300 slices of 86x86 (10 slices x 30 frames, made from patient090's
   real cine when $HEART_SR_ACDC_DIR is set), written as 258x258: the whole command in a fresh process, and the
   same in this process split into read, model and write; with the gzip levels compared.

OpenVINO compiles the model once per input shape (the default); "float32 dynamic" is the single dynamic-shape
model it replaced, timed in the same run.

Goals, as ratios in this one run (issue #25), next to the CPU model printed first: the default path at least 4x
TensorFlow float32 on a CPU with AMX, 2x with AVX512_BF16 and no AMX; ``upscale`` end to end at most 1.25x its
model time.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def lr_batch(batch: int):
    """``[batch, 86, 86, 1]``: real k-space-degraded ACDC slices when the data is at hand."""
    import numpy as np

    acdc = os.environ.get("HEART_SR_ACDC_DIR")
    if acdc:
        import cv2
        import nibabel as nib

        from heart_sr_tf.data.degradation import Degradation
        from heart_sr_tf.data.intensity import normalise

        out = []
        for path in sorted((Path(acdc) / "training").glob("patient0*/patient0*_frame01.nii.gz"))[:4]:
            volume = normalise(np.asarray(nib.load(str(path)).dataobj, np.float32))
            for z in range(volume.shape[2]):
                hr = cv2.resize(volume[:, :, z], (258, 258), interpolation=cv2.INTER_CUBIC).clip(0, 1)
                out.append(Degradation("kspace", 3).pair_np(hr)[0])
        return np.stack(out[:batch])[..., None].astype(np.float32), "real ACDC slices, k-space degraded"
    return np.random.default_rng(0).random((batch, 86, 86, 1)).astype(np.float32), "random images"


def throughput(args) -> None:
    import numpy as np

    from heart_sr_tf.inference.hardware import resolve_backend
    from heart_sr_tf.inference.predictor import effective_precision, load_predictor

    lr, what = lr_batch(args.batch_size)
    paths = [("tensorflow", "float32"), ("tensorflow", "bfloat16")]
    if importlib.util.find_spec("openvino") is not None:
        paths += [("openvino", "float32"), ("openvino", "bfloat16")]
        from heart_sr_tf.export.layout import resolve_model_dir
        from heart_sr_tf.inference.openvino_backend import INT8_KIND, cached_ir

        if cached_ir(resolve_model_dir(load_predictor_path(args.model)), INT8_KIND) is not None:
            paths.append(("openvino", "int8"))
        else:
            print(f"(no int8 twin of {args.model} yet: `python cli.py quantize {args.model} --acdc-dir DIR` adds it)")
    default = (resolve_backend("auto"), effective_precision(args.model, "auto", "auto"))  # (a checked int8 twin too)
    from heart_sr_tf.hardware import cpu_model

    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores")
    print(f"model {args.model}; batches of {len(lr)} x 86x86 -> 258x258 ({what})")
    print(f"default path of `upscale` (--backend auto --precision auto) here: {default[0]}, {default[1]}")
    print(f"{'backend':<11} {'precision':<15} {'slices/s':>9} {'vs TF fp32':>10} {'max |diff|':>11}")
    reference = base = None
    if ("openvino", "float32") in paths:  # the dynamic-shape model that the per-shape compiled ones replaced
        paths.insert(paths.index(("openvino", "float32")), ("openvino", "float32 dynamic"))
    for backend, precision in paths:
        predictor = dynamic_predictor(args.model, precision.split()[0]) if " " in precision else None
        predictor = predictor or load_predictor(args.model, backend, precision)
        out = predictor(lr)  # warm up (and the reference output)
        start, done = time.perf_counter(), 0
        while done < args.slices:
            predictor(lr)
            done += len(lr)
        rate = done / (time.perf_counter() - start)
        if reference is None:
            reference, base = out, rate
        mark = "  <- default" if (backend, precision) == default else ""
        diff = float(np.abs(out - reference).max())
        print(f"{backend:<11} {precision:<15} {rate:>9.1f} {rate / base:>9.2f}x {diff:>11.4f}{mark}")
    rate, out = serving_bfloat16(args, lr)
    diff = float(np.abs(out - reference).max())
    note = "  (the SavedModel of export --precision bfloat16, as TF Serving runs it)"
    print(f"{'TF Serving':<11} {'bfloat16':<15} {rate:>9.1f} {rate / base:>9.2f}x {diff:>11.4f}{note}")


def dynamic_predictor(model: str, precision: str):
    """The OpenVINO predictor with one dynamic-shape compiled model instead of one per input shape."""
    import copy

    from heart_sr_tf.export.layout import resolve_model_dir
    from heart_sr_tf.inference.openvino_backend import openvino_fn
    from heart_sr_tf.inference.predictor import load_predictor

    predictor = copy.copy(load_predictor(model, "openvino", precision))
    predictor.fn = openvino_fn(resolve_model_dir(load_predictor_path(model)), precision, static=False)[0]
    return predictor


def load_predictor_path(model: str):
    from heart_sr_tf.export.discovery import find_model

    return find_model(Path(model))


def serving_bfloat16(args, lr):
    """What TF Serving runs for `export --precision bfloat16`: that SavedModel's serving_default, plain."""
    import numpy as np
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, str(ROOT / "cli.py"), "export", args.model, "--precision", "bfloat16"]
        subprocess.run(command + ["--out", tmp, "--name", "bf16"], check=True, capture_output=True)
        signature = tf.saved_model.load(str(Path(tmp) / "bf16" / "1")).signatures["serving_default"]
        x = tf.constant(lr)
        out = signature(lr_image=x)["sr_image"].numpy()
        start, done = time.perf_counter(), 0
        while done < args.slices:
            signature(lr_image=x)["sr_image"].numpy()
            done += len(lr)
        return done / (time.perf_counter() - start), np.clip(out, 0, 1)


def make_cine(folder: Path) -> Path:
    """300 slices of 86x86: 10 slices x 30 frames, uint8 like ACDC's cine."""
    import nibabel as nib
    import numpy as np

    acdc = os.environ.get("HEART_SR_ACDC_DIR")
    cine = Path(acdc) / "training" / "patient090" / "patient090_4d.nii.gz" if acdc else None
    if cine is not None and cine.exists():
        import cv2

        source = np.asarray(nib.load(str(cine)).dataobj, np.float32)  # 154x224x7x12
        frames = [source[:, :, z % source.shape[2], t % source.shape[3]] for t in range(30) for z in range(10)]
        small = [cv2.resize(f, (86, 86), interpolation=cv2.INTER_AREA) for f in frames]
        data = np.stack(small, axis=2).reshape(86, 86, 30, 10).transpose(0, 1, 3, 2)
    else:
        data = np.random.default_rng(0).random((86, 86, 10, 30)) * 255
    image = nib.Nifti1Image(np.clip(data, 0, 255).astype(np.uint8), np.diag([-1.0, -1.0, 1.0, 1.0]))
    image.header.set_zooms((1.5, 1.5, 10.0, 30.0))
    path = folder / "cine_300.nii.gz"
    nib.save(image, str(path))
    return path


def end_to_end(args) -> None:
    import nibabel as nib

    with tempfile.TemporaryDirectory() as tmp:
        cine = make_cine(Path(tmp))
        out = Path(tmp) / "out.nii.gz"
        command = [sys.executable, str(ROOT / "cli.py"), "upscale", str(cine), str(out), "--model", args.model]
        subprocess.run(command + ["--quiet"], check=True, capture_output=True)  # first run: caches, if any
        start = time.perf_counter()  # the timed run replaces that output (the tool refuses to, unasked)
        result = subprocess.run(command + ["--quiet", "--overwrite"], check=True, capture_output=True, text=True)
        seconds = time.perf_counter() - start
        shape = nib.load(str(out)).shape
        source = nib.load(str(cine)).shape
        print(f"\n`upscale` of a 300-slice cine {source} -> {shape}, the whole command: {seconds:.2f} s")
        print("  " + result.stdout.strip().splitlines()[0][:160])

        from heart_sr_tf.inference.predictor import load_predictor
        from heart_sr_tf.volumes.upscale import upscale_file

        start = time.perf_counter()
        predictor = load_predictor(args.model, "auto", "auto")
        loading = time.perf_counter() - start
        timings: dict = {}
        upscale_file(cine, Path(tmp) / "again.nii.gz", predictor, quiet=True, timings=timings)
        print(
            f"  in one process: load model {loading:.2f} s, read {timings['read']:.2f} s, "
            f"model {timings['model']:.2f} s ({300 / timings['model']:.1f} slices/s), write {timings['write']:.2f} s"
        )
        print(
            f"  the whole command / the model's time in it: {seconds / timings['model']:.2f}x "
            f"(goal: at most 1.25x; in one process {sum(timings.values()) / timings['model']:.2f}x)"
        )
        data = nib.load(str(out))
        for level in (1, 6, 9):
            nib.openers.Opener.default_compresslevel = level
            start = time.perf_counter()
            nib.save(nib.Nifti1Image(data.get_fdata(dtype="float32").astype("uint8"), data.affine), str(out))
            print(f"  gzip level {level}: write {time.perf_counter() - start:.2f} s, {out.stat().st_size / 1e6:.1f} MB")
        nib.openers.Opener.default_compresslevel = 1


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="rrdb_kspace")
    parser.add_argument("--slices", type=int, default=160, help="slices timed per path")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--skip-cine", action="store_true")
    args = parser.parse_args()
    from heart_sr_tf.startup import import_tensorflow_quietly

    import_tensorflow_quietly()  # no TensorFlow start-up lines among the figures
    throughput(args)
    if not args.skip_cine:
        end_to_end(args)


if __name__ == "__main__":
    main()
