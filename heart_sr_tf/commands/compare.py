"""``compare-clinical`` and ``compare-images``: two models' evaluations of the same frames or slices, patient by
patient."""

from __future__ import annotations

from pathlib import Path

from heart_sr_tf.commands.echo import Echo


def compare_clinical(first: Path, second: Path, echo: Echo) -> None:
    from heart_sr_tf.evaluation.clinical_compare import compare, comparison_markdown, read_clinical

    a, b = read_clinical(first), read_clinical(second)
    echo(comparison_markdown(a, b, compare(a, b)))


def compare_images(first: Path, second: Path, echo: Echo) -> None:
    from heart_sr_tf.evaluation.image_compare import compare, comparison_markdown, read_evaluation

    a, b = read_evaluation(first), read_evaluation(second)
    echo(comparison_markdown(a, b, compare(a, b)))
