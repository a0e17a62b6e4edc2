"""TensorFlow Serving's layout of exported models, read without TensorFlow: ``<base>/<name>/<version>/`` with
``saved_model.pb``, and our metadata in ``assets.extra/heart_sr_metadata.json`` (ignored by TF Serving)."""

from __future__ import annotations

import json
from pathlib import Path

from heart_sr_tf.errors import HeartSRError

METADATA_FILE = "heart_sr_metadata.json"


def versions(base: Path) -> list[int]:
    """The integer versions present under a model base path."""
    base = Path(base)
    return sorted(int(p.name) for p in base.iterdir() if p.is_dir() and p.name.isdigit()) if base.is_dir() else []


def read_metadata(path: Path) -> dict:
    """The export's metadata, {} when it has none; one error line when the file is unreadable or not JSON."""
    file = Path(path) / "assets.extra" / METADATA_FILE
    if not file.is_file():
        return {}
    try:
        meta = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HeartSRError(f"{file}: unreadable metadata ({type(exc).__name__}: {str(exc)[:120]})") from None
    if not isinstance(meta, dict):
        raise HeartSRError(f"{file}: the metadata is not a JSON object")
    return meta


OURS = "trained on ACDC"  # what every measurement through one of our segmenters says of it
YOURS = "of your own"  # ... and through a SavedModel without heart-sr metadata, taken on its signature


def require_segmenter(folder: Path, meta: dict) -> None:
    """One error line unless the export at ``folder`` (metadata ``meta``) is a segmenter, saying what it is. A
    SavedModel without heart-sr metadata (a lab's own segmenter) passes: its signature is checked when it loads."""
    if meta.get("kind") == "segmenter" or not meta:
        return
    if "degradation" in meta:
        raise HeartSRError(f"{folder}: a super-resolution model, not a segmenter (--segmenter takes e.g. segmenter)")
    raise HeartSRError(f"{folder}: not an exported segmenter (its metadata says kind {meta.get('kind')!r})")


def training_data(meta: dict) -> dict | None:
    """The ``[data]`` table of the training config an export's metadata carries; None when it carries no readable
    config (an export written by other code)."""
    import tomllib

    try:
        data = tomllib.loads(meta["config"]).get("data", {})
    except (KeyError, TypeError, tomllib.TOMLDecodeError):
        return None
    return data if isinstance(data, dict) else None


def resolve_model_dir(path: Path) -> Path:
    """A SavedModel folder as given, or the highest version under a model base path."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    found = versions(path)
    if found:
        highest = path / str(found[-1])
        if not (highest / "saved_model.pb").is_file():
            raise HeartSRError(f"{highest}: the highest version holds no saved_model.pb (an unfinished export?)")
        return highest
    raise HeartSRError(f"{path}: neither a SavedModel nor a model base path holding numbered versions")
