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
    file = Path(path) / "assets.extra" / METADATA_FILE
    return json.loads(file.read_text()) if file.is_file() else {}


def resolve_model_dir(path: Path) -> Path:
    """A SavedModel folder as given, or the highest version under a model base path."""
    path = Path(path)
    if (path / "saved_model.pb").is_file():
        return path
    found = versions(path)
    if found:
        return path / str(found[-1])
    raise HeartSRError(f"{path}: neither a SavedModel nor a model base path holding numbered versions")
