"""Scoring on whole held-out cines: every frame of every slice, per frame, then averaged, next to the
degradation's baselines on the same frames. A temporal model sees each frame's neighbours at the depth it trained
on; a 2D model sees the frames one by one, so both are scored on exactly the same images."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from heart_sr_tf.data.cine import cine_slices, degraded_cines
from heart_sr_tf.data.degradation import Degradation
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.evaluation.evaluate import Evaluation
from heart_sr_tf.metrics import image_metrics
from heart_sr_tf.progress import progress_bar


def evaluate_cines(
    predictor,
    roots: Iterable[Path],
    patient_ids: Iterable[str],
    degradation: Degradation | None = None,
    quiet: bool = False,
    label: str = "cine",
) -> Evaluation:
    """``roots``: the folders holding the cines, the full-size ACDC folder first (crops are put on its grid)."""
    roots = [Path(r) for r in roots]
    patient_ids = sorted(set(patient_ids))
    degradation = degradation or predictor.degradation
    cines = list(cine_slices(roots, roots[:1], patient_ids))
    missing = sorted(set(patient_ids) - {c.patient for c in cines})
    if missing:
        raise HeartSRError(f"no cine found for {', '.join(missing)} under {', '.join(map(str, roots))}")
    result = Evaluation(split=label, source=predictor.source, degradation=degradation)
    total = sum(c.images.shape[2] for c in cines)
    with progress_bar(total, "evaluate cines", "frame", disable=quiet) as bar:
        for cine, lr, hr in degraded_cines(cines, degradation):
            sr = predictor.frames(lr)[: hr.shape[0], : hr.shape[1]]
            for t in range(hr.shape[2]):
                outputs = {"model": sr[:, :, t], **degradation.baseline_images(lr[:, :, t], hr.shape[:2])}
                meta = {"patient": cine.patient, "slice": cine.slice, "frame": t + 1}
                for method, image in outputs.items():
                    result.rows.append({"roi": "cine", "method": method, **meta, **image_metrics(image, hr[:, :, t])})
                bar.update(1)
    return result
