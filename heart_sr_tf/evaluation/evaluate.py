"""The paper's section-6 evaluation, done soundly: per-slice metrics on [0, 1] with data range 1, averaged,
for the model and the degradation's baselines on the same slices:

- decimation: ``bicubic`` (from the LR samples at their true HR positions) and ``blocky`` (the paper's input,
  each LR sample repeated over its 3x3 block);
- k-space: ``zero_fill`` (the scanner's own interpolation) and ``bicubic``; the HR is cropped to a multiple of
  the scale (256 -> 255), as the degradation does.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from heart_sr_tf.data.degradation import BASELINE_NAMES, Degradation
from heart_sr_tf.data.pipeline import slice_dataset, to_unit
from heart_sr_tf.evaluation.out_folder import clear_earlier, record_outputs, start_marker
from heart_sr_tf.evaluation.report import write_csv
from heart_sr_tf.metrics import gain, image_metrics
from heart_sr_tf.path_text import PATH_TEXT
from heart_sr_tf.progress import progress_bar

METHODS = ("model", *BASELINE_NAMES)
NAMES = {"model": "model", **BASELINE_NAMES}
METRICS = ("ssim", "ssim_gauss", "psnr", "nrmse")


@dataclass
class Evaluation:
    split: str
    source: str
    degradation: Degradation = field(default_factory=Degradation)
    rows: list[dict] = field(default_factory=list)  # one per (roi, method, slice)
    losses: dict[str, float] = field(default_factory=dict)
    left_out: list[str] = field(default_factory=list)  # the scans not scored, each with its problem (--scans)
    warnings: list[str] = field(default_factory=list)  # scans scored, with a caveat (--scans: too coarse)

    def summary(self) -> dict[str, dict[str, dict[str, float]]]:
        """roi -> method -> metric -> mean over slices."""
        out: dict = {}
        for roi in sorted({r["roi"] for r in self.rows}):
            out[roi] = {}
            for method in METHODS:
                rows = [r for r in self.rows if r["roi"] == roi and r["method"] == method]
                if rows:
                    out[roi][method] = {m: float(np.mean([r[m] for r in rows])) for m in METRICS}
                    out[roi][method]["slices"] = len(rows)
        return out

    def per_patient(self) -> list[dict]:
        groups: dict = {}
        for r in self.rows:
            groups.setdefault((r["roi"], r["patient"], r["method"]), []).append(r)
        return [
            {
                "roi": roi,
                "patient": p,
                "method": m,
                "slices": len(rs),
                **{k: float(np.mean([r[k] for r in rs])) for k in METRICS},
            }
            for (roi, p, m), rs in sorted(groups.items())
        ]


def iterate_slices(data_dir: Path, roi: str, split: str, limit: int | None = None):
    """``(meta, hr [H, W])`` for the stored slices of a split, in stored order."""
    ds = slice_dataset(data_dir, roi, split)
    if limit:
        ds = ds.take(limit)
    for ex in ds:
        meta = {"patient": ex["patient"].numpy().decode(), "slice": int(ex["slice"]), "frame": int(ex["frame"])}
        yield meta, to_unit(ex["hr"]).numpy()[..., 0]


def predict_slice(
    predictor, hr: np.ndarray, degradation: Degradation, rng: np.random.Generator | None = None
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(lr, hr, outputs)``: the degraded slice, its HR (cropped as the degradation does) and every method's image."""
    lr, hr = degradation.pair_np(hr, rng)
    model = predictor(lr[None, ..., None].astype(np.float32))[0, : hr.shape[0], : hr.shape[1], 0]
    return lr, hr, {"model": model, **degradation.baseline_images(lr, hr.shape)}


def evaluate(
    predictor,
    data_dir: Path,
    split: str = "test",
    rois=("full", "heart"),
    limit=None,
    quiet=False,
    degradation: Degradation | None = None,
):
    """Score the model and its degradation's baselines on every slice of ``split`` (at most ``limit`` per roi).

    ``degradation`` defaults to the one the model was trained on; noise, if any, is drawn from a fixed seed.
    """
    from heart_sr_tf.data.pipeline import num_slices

    degradation = degradation or predictor.degradation
    result = Evaluation(split=split, source=predictor.source, degradation=degradation)
    rng = np.random.default_rng(0)
    for roi in rois:
        total = min(num_slices(data_dir, roi, split), limit or 10**9)
        with progress_bar(total, f"evaluate {roi}", "slice", disable=quiet) as bar:
            for meta, hr in iterate_slices(data_dir, roi, split, limit):
                _, hr, outputs = predict_slice(predictor, hr, degradation, rng)
                for method, image in outputs.items():
                    result.rows.append({"roi": roi, "method": method, **meta, **image_metrics(image, hr)})
                bar.update(1)
    return result


def write_outputs(evaluation: Evaluation, out: Path) -> list[Path]:
    """summary.json, summary.csv, per_patient.csv and per_slice.csv under ``out`` (checked by :func:`check_out`),
    with the marker that lets evaluate write there again; an earlier evaluation's outputs there are removed first
    (:func:`clear_earlier`). The marker names them before they are written; what the command writes next is named
    by :func:`record_outputs` too."""
    clear_earlier(out)
    start_marker(out)
    summary = evaluation.summary()
    files = [out / "summary.json", out / "summary.csv", out / "per_patient.csv", out / "per_slice.csv"]
    files.append(out / "summary.md")
    record_outputs(out, files)  # (named before they are written: an interrupted run's are its own too)
    notes = "".join(f"\n- left out: {line}" for line in evaluation.left_out)
    notes += "".join(f"\n- warning: {line}" for line in evaluation.warnings)
    files[4].write_text(
        markdown_summary(summary, evaluation.degradation) + (f"\n{notes}\n" if notes else ""), **PATH_TEXT
    )
    payload = {
        "split": evaluation.split,
        "source": evaluation.source,
        "protocol": "per-slice metrics on [0, 1] with data_range 1, averaged",
        "degradation": evaluation.degradation.metadata(),
        "summary": summary,
        "losses": evaluation.losses,
        **({"left_out": evaluation.left_out} if evaluation.left_out else {}),
        **({"warnings": evaluation.warnings} if evaluation.warnings else {}),
    }
    files[0].write_text(json.dumps(payload, indent=2))
    write_csv(files[1], [{"roi": r, "method": m, **v} for r, ms in summary.items() for m, v in ms.items()])
    write_csv(files[2], evaluation.per_patient())
    write_csv(files[3], evaluation.rows)
    return files


def markdown_summary(summary: dict, degradation: Degradation) -> str:
    """The summary as Markdown tables (one per roi), for model cards."""
    lines = [f"Degradation: {degradation.describe()}.", ""]
    for roi, methods in summary.items():
        n = next(iter(methods.values()))["slices"]
        lines += [f"**{roi}** ({n} slices)", "", "| method | PSNR (dB) | SSIM (7x7) | SSIM (11x11 gauss) | NRMSE |"]
        lines.append("|---|---|---|---|---|")
        for method, v in methods.items():
            lines.append(
                f"| {NAMES[method]} | {v['psnr']:.2f} | {v['ssim']:.4f} | {v['ssim_gauss']:.4f} | {v['nrmse']:.4f} |"
            )
        for baseline in degradation.baselines:
            if "model" in methods and baseline in methods:
                dp, ds = gain(methods["model"], methods[baseline])
                lines.append(f"| model - {NAMES[baseline]} | {dp:+.2f} | {ds:+.4f} | | |")
        lines.append("")
    return "\n".join(lines)


def figures(
    predictor,
    data_dir: Path,
    split: str,
    out: Path,
    count: int = 4,
    roi: str = "full",
    degradation: Degradation | None = None,
    before_write=None,
) -> list[Path]:
    """PNG figures like the paper's Figure 1: baselines | prediction | HR | |error| (x4), for a few slices;
    ``before_write(path)`` is called before each is written (to record it as evaluate's own)."""
    degradation = degradation or predictor.degradation
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    slices = list(iterate_slices(data_dir, roi, split))
    if not slices:
        return []
    picks = [slices[i] for i in np.linspace(0, len(slices) - 1, count).astype(int)]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for meta, hr in picks:
        _, hr, outputs = predict_slice(predictor, hr, degradation)
        sr = outputs["model"]
        first = degradation.baselines[0]
        panels = [(NAMES[name], outputs[name]) for name in reversed(degradation.baselines)]
        panels += [
            ("prediction", sr),
            ("HR", hr),
            ("|prediction - HR| x4", np.clip(4 * np.abs(sr - hr), 0, 1)),
        ]
        fig, axes = plt.subplots(1, len(panels), figsize=(3 * len(panels), 3.3))
        for ax, (title, image) in zip(axes, panels):
            ax.imshow(image, cmap="gray", vmin=0, vmax=1)
            ax.set_title(title, fontsize=9)
            ax.axis("off")
        m, b = image_metrics(sr, hr), image_metrics(outputs[first], hr)
        fig.suptitle(
            f"{meta['patient']} frame {meta['frame']} slice {meta['slice']} ({roi}, {degradation.kind}): model "
            f"{m['psnr']:.2f} dB SSIM {m['ssim']:.3f} | {NAMES[first]} {b['psnr']:.2f} dB SSIM {b['ssim']:.3f}",
            fontsize=9,
        )
        fig.tight_layout()
        path = out / f"{roi}_{meta['patient']}_f{meta['frame']:02d}_s{meta['slice']:02d}.png"
        if before_write is not None:
            before_write(path)
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths
