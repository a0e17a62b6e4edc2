"""``evaluate``: score a run or an exported model on a split, next to its degradation's baselines."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from heart_sr_tf.commands.data import resolve_data
from heart_sr_tf.commands.echo import Echo
from heart_sr_tf.errors import HeartSRError
from heart_sr_tf.metrics import gain_text


def default_out(model: Path, split: str, is_run: bool, step: int | None = None) -> Path:
    """RUN/evaluation/SPLIT for a run (SPLIT-step-N for a chosen checkpoint), ./evaluation/NAME/SPLIT for an exported
    model."""
    if is_run:
        return Path(model) / "evaluation" / (split if step is None else f"{split}-step-{step}")
    return Path("evaluation") / Path(model).name / split


def evaluate_model(
    model, acdc_dir, data_dir, split, roi, degradation, data_consistency, out, limit, n_figures,
    backend, precision, quiet, echo: Echo, warn: Echo, clinical: bool = False, segmenter=(), cine_dirs=(),
    patients=None, self_ensemble: bool = False, acquisition_ladder: bool = False, scans: str | None = None,
    step: int | None = None, series=None,
):  # fmt: skip
    from heart_sr_tf.data.pipeline import num_slices
    from heart_sr_tf.evaluation.acquisition_ladder import ladder_factors
    from heart_sr_tf.evaluation.evaluate import evaluate as run_evaluate
    from heart_sr_tf.evaluation.evaluate import figures, write_outputs
    from heart_sr_tf.evaluation.out_folder import held, record_outputs
    from heart_sr_tf.inference.predictor import load_predictor

    if acquisition_ladder and not clinical:
        raise HeartSRError("--acquisition-ladder: goes with --clinical (it places the model's clinical figures)")
    if segmenter and not clinical:
        raise HeartSRError("--segmenter: goes with --clinical (it segments the frames --clinical measures)")
    if patients is not None and not cine_dirs:
        raise HeartSRError("--patients: goes with --cine-dir (it picks the whole cines to score)")
    given = {
        "--acdc-dir": acdc_dir,
        "--data-dir": data_dir,
        "--cine-dir": cine_dirs,
        "--acquisition-ladder": acquisition_ladder,
    }
    if series is not None and scans is None:
        raise HeartSRError(f"{series.options()}: picks series among --scans")
    if scans is not None and any(given.values()):
        raise HeartSRError(f"--scans: scores the scans given; drop {', '.join(k for k, v in given.items() if v)}")
    if scans is not None and len(segmenter) > 1:
        raise HeartSRError("--segmenter: --scans --clinical measures through one segmenter; give one")
    segmenters = _segmenters(segmenter) if clinical else []  # loaded first: a bad segmenter fails before any work
    predictor = load_predictor(model, backend, precision, step)
    if step is not None:
        echo(f"checkpoint: {predictor.info['checkpoint']} (--step {step})")
    if data_consistency:
        predictor = predictor.with_consistency()
    if self_ensemble:  # after data consistency, as an export applies them
        predictor = predictor.with_self_ensemble()
    chosen = predictor.degradation
    if degradation is not None and "through_plane" in (chosen.kind, degradation):
        raise HeartSRError("--degradation: cannot move a model between in-plane and through-plane")
    if degradation is not None and degradation != chosen.kind:
        warn(
            f"warning: {predictor.source} was trained on {chosen.kind}, evaluating on {degradation} as asked; "
            "models do not transfer between degradations"
        )
        chosen = dataclasses.replace(chosen, kind=degradation)
    ladder = ladder_factors(chosen) if acquisition_ladder else ()  # a non-k-space model refused before any work
    out = out or default_out(model, split if scans is None else "scans", predictor.run is not None, step)
    with held(out):  # a folder of someone else's files: refused before any work, never written into
        if scans is not None:
            segmenter = segmenters[0] if segmenters else None
            _on_scans(predictor, scans, chosen, limit, out, quiet, echo, warn, segmenter, series)
            return
        run = predictor.run
        if run is not None and acdc_dir is None and data_dir is None:
            data_dir = run.data_dir
        data = resolve_data(acdc_dir, data_dir, warn=warn)
        if run is not None:
            run.check_scored_on(data)
        if segmenters or cine_dirs:
            from heart_sr_tf.data.prepare import dataset_source

            source, seed = dataset_source(data)  # labels and cines come from an ACDC source: refused here, before
            if segmenters:  # any scoring; and the clinical figures need labelled patients in the split
                from heart_sr_tf.evaluation.clinical import labelled_patients

                labelled_patients(source, split, seed, limit)
        if cine_dirs:
            if clinical or data_consistency:
                raise HeartSRError(
                    "--cine-dir: scores image quality on whole cines; drop --clinical / --data-consistency"
                )
            result = _on_cines(predictor, data, split, cine_dirs, patients, chosen, quiet)
            n_figures = 0
        else:
            rois = ("full", "heart") if roi == "both" else (roi,)
            if roi == "both" and num_slices(data, "heart", split) == 0 < num_slices(data, "full", split):
                rois = ("full",)  # a lab's scans, or ACDC patients without labels: no heart boxes
                echo(f"{data}: no heart boxes in the {split} split (no labels there); full slices only")
            for name in rois:
                if num_slices(data, name, split) == 0:
                    if not any(num_slices(data, name, other) for other in ("train", "validation", "test")):
                        why = " (no labels: no heart boxes); --roi full" if name == "heart" else ""
                        raise HeartSRError(f"{data}: no split holds {name} slices{why}")
                    raise HeartSRError(f"{data}: the {split} split holds no {name} slices; choose another --split")
            result = run_evaluate(predictor, data, split, rois, limit=limit, quiet=quiet, degradation=chosen)
        if run is not None:
            result.losses = run.losses_at(predictor.info["checkpoint"])  # (up to the step scored)
        files = write_outputs(result, out)

        def recorded(path: Path) -> None:  # each figure named in the marker before it is written
            record_outputs(out, [path])

        pictures = (
            figures(predictor, data, split, out / "figures", n_figures, degradation=chosen, before_write=recorded)
            if n_figures
            else []
        )
        echo(
            f"{predictor.source} ({predictor.backend}, {predictor.precision}) on {split} ({data}); "
            "per-slice metrics on [0, 1], data range 1, averaged"
        )
        echo(f"degradation: {chosen.describe()}")
        _echo_tables(result, chosen, echo)
        if segmenters:
            files += _clinical(predictor, segmenters, data, split, chosen, limit, quiet, out, echo, ladder)
        drawn = f" and {len(pictures)} figure(s) in {out / 'figures'}" if pictures else ""
        echo(f"\nwrote {', '.join(str(f) for f in files)}{drawn}")


def _echo_tables(result, degradation, echo: Echo) -> None:
    """Per roi: the model next to the degradation's baselines (and a run's last losses), then its gain over each."""
    from heart_sr_tf.evaluation.evaluate import METRICS, NAMES
    from heart_sr_tf.evaluation.report import format_table

    units = {"cine": "frames: every frame of each slice's cine", "scans": "slices: every slice of every frame"}
    for name, methods in result.summary().items():
        columns = {NAMES[m]: methods[m] for m in ("model", *degradation.baselines) if m in methods}
        first = next(iter(methods.values()))
        echo(f"\n{name} ({first['slices']} {units.get(name, 'slices')})")
        if "model" in columns:  # the run's last training losses belong to the model alone, not to the baselines
            columns["model"] = {
                **columns["model"],
                "discriminator loss": result.losses.get("d_loss"),
                "generator loss": result.losses.get("g_loss"),
            }
        rows = [*METRICS] + (["discriminator loss", "generator loss"] if result.losses else [])
        echo(format_table(columns, rows))
        for baseline in degradation.baselines:
            echo(gain_text(methods["model"], methods[baseline], NAMES[baseline]))


def _on_scans(
    predictor, scans: str, degradation, limit, out, quiet, echo: Echo, warn: Echo, segmenter=None, series=None
) -> None:
    """``--scans``: the model on a lab's own scans, next to the degradation's baselines (no ACDC, no labels); with
    a ``segmenter`` (``--clinical``), also their segmentations and measurements against full resolution's."""
    from heart_sr_tf.cohort.jobs import find_scans
    from heart_sr_tf.cohort.series_filter import SeriesFilter
    from heart_sr_tf.evaluation.evaluate import Evaluation, write_outputs
    from heart_sr_tf.evaluation.out_folder import record_outputs
    from heart_sr_tf.evaluation.scans import NDIMS, check_scans, coarse_scans, evaluate_scans
    from heart_sr_tf.evaluation.scans_clinical import (
        SCANS_CLINICAL_FILES,
        scans_clinical,
        scans_clinical_markdown,
        write_scans_clinical,
    )

    if segmenter is not None and degradation.kind == "through_plane":
        raise HeartSRError("--clinical: measures in-plane models (a through-plane model changes the slice count)")
    chosen = series or SeriesFilter()
    notes: list[str] = []
    found = find_scans(scans, quiet, chosen, notes)
    for line in chosen.lines():
        warn(line)
    for line in notes:
        warn(f"note: {line}")
    checked = check_scans(found, NDIMS if segmenter is None else (3, 4), segmenter is not None)
    for line in checked.left_out:
        warn(f"left out: {line}")
    for line in checked.notes:
        warn(f"note: {line}")
    coarse = coarse_scans(checked, degradation)
    for line in coarse:
        warn(f"warning: {line}")
    measured = checked.first(limit if segmenter is not None else None)  # --clinical: --limit counts scans
    if segmenter is None:
        result = evaluate_scans(predictor, checked, degradation, limit, quiet)
        clinical = None
    else:  # one pass: the image metrics (whole slices, and heart boxes from full resolution's segmentation) too
        clinical = scans_clinical(predictor, segmenter, measured, degradation, quiet)
        result = Evaluation(split="scans", source=predictor.source, degradation=degradation, rows=clinical.images)
    result.left_out = checked.left_out
    result.warnings = coarse
    files = write_outputs(result, out)
    echo(
        f"{predictor.source} ({predictor.backend}, {predictor.precision}) on {len(measured.paths)} scan(s) from "
        f"{scans}{f' ({len(checked.left_out)} left out)' if checked.left_out else ''}; "
        "per-slice metrics on [0, 1], data range 1, averaged, on the 256x256 protocol grid"
    )
    echo(f"degradation: {degradation.describe()}")
    _echo_tables(result, degradation, echo)
    if clinical is not None:
        summary = clinical.summary()
        echo("\n" + scans_clinical_markdown(clinical, summary))
        record_outputs(out, [out / name for name in SCANS_CLINICAL_FILES])  # (before any is written)
        files += write_scans_clinical(clinical, out, summary)
    echo(f"\nwrote {', '.join(str(f) for f in files)}")


def _on_cines(predictor, data, split, cine_dirs, patients, degradation, quiet):
    """The model on whole cines: of ``patients``, else of the cine patients a temporal model held out for
    ``split`` (its config's ``cine_test`` / ``cine_validation``), else of the prepared data's ``split``."""
    from heart_sr_tf.data.cine import cine_patients
    from heart_sr_tf.data.prepare import dataset_source, split_assignment
    from heart_sr_tf.evaluation.cine import evaluate_cines

    source, _ = dataset_source(data)
    for folder in cine_dirs:
        if not Path(folder).is_dir():
            raise HeartSRError(f"--cine-dir: {folder} is not a folder")
    roots = [Path(source), *map(Path, cine_dirs)]
    if patients is None:
        held = _held_out_cines(predictor, split)
        if held:
            patients = held
        else:
            assignment = split_assignment(data)
            patients = [p.id for p in cine_patients(roots) if assignment.get(p.id) == split]
    if not patients:
        where = ", ".join(map(str, roots))
        raise HeartSRError(f"no cine patient of the {split} split under {where}; name them with --patients")
    label = f"{split} cines: {', '.join(sorted(patients))}"
    return evaluate_cines(predictor, roots, patients, degradation, quiet, label=label)


def _held_out_cines(predictor, split: str) -> list[str]:
    """The cine patients a temporal model's config held out for ``split`` (none for other models)."""
    import tomllib

    key = {"test": "cine_test", "validation": "cine_validation"}.get(split)
    if key is None:
        return []
    if predictor.run is not None:
        return list(getattr(predictor.run.config.data, key, []))
    text = predictor.info.get("config")
    return list(tomllib.loads(text).get("data", {}).get(key, [])) if text else []


def _segmenters(paths) -> list:
    """The segmenters for --clinical (the shipped one by default), each named once."""
    from heart_sr_tf.inference.segmenter import Segmenter

    segmenters = [Segmenter(path) for path in (paths or ("segmenter",))]
    folders = [s.folder.resolve() for s in segmenters]
    for folder in folders:
        if folders.count(folder) > 1:
            raise HeartSRError(f"--segmenter: {folder} is given twice")
    labels = [segmenter_label(s.folder) for s in segmenters[1:]]
    for label in labels:
        if labels.count(label) > 1:
            raise HeartSRError(
                f"--segmenter: two segmenters would both write OUT/clinical_{label}; "
                "give them folders of different names"
            )
    return segmenters


def segmenter_label(folder: Path) -> str:
    """``segmenter_audit_v1`` for ``.../segmenter_audit/1``: the sub-folder of an evaluation's extra segmenter."""
    folder = Path(folder)
    return f"{folder.parent.name}_v{folder.name}" if folder.name.isdigit() else folder.name


def _clinical(predictor, segmenters, data, split, degradation, limit, quiet, out, echo, ladder=()) -> list[Path]:
    """The split's patients segmented at full resolution, through the baselines and through the model: the first
    segmenter's results in OUT, each other's in OUT/clinical_LABEL, and a table across them in summary.md."""
    from heart_sr_tf.data.prepare import dataset_source
    from heart_sr_tf.evaluation.clinical import CLINICAL_FILES, clinical_evaluation, clinical_markdown, write_clinical
    from heart_sr_tf.evaluation.clinical_panel import panel_markdown
    from heart_sr_tf.evaluation.out_folder import record_outputs

    source, seed = dataset_source(data)
    if degradation.kind == "through_plane":
        raise HeartSRError("--clinical: measures in-plane models (a through-plane model changes the slice count)")
    results = clinical_evaluation(
        predictor, segmenters, source, split, seed, degradation, limit=limit, quiet=quiet, ladder=ladder
    )
    summaries = [result.summary() for result in results]  # once each: the intervals resample patients
    echo("\n" + clinical_markdown(results[0], summaries[0]))
    folders = [out] + [out / f"clinical_{segmenter_label(s.folder)}" for s in segmenters[1:]]
    record_outputs(out, [folder / name for folder in folders for name in (*CLINICAL_FILES, "summary.md")])
    files = write_clinical(results[0], out, summaries[0])  # (named in the marker before any is written)
    for folder, result, summary in zip(folders[1:], results[1:], summaries[1:], strict=True):
        files += [*write_clinical(result, folder, summary), folder / "summary.md"]
    if len(results) > 1:
        panel = panel_markdown(results, summaries)
        echo("\n" + panel)
        markdown = out / "summary.md"
        markdown.write_text(markdown.read_text() + "\n" + panel)
    return files
