"""Where the tool keeps what it makes once and reuses: prepared datasets, phantoms, OpenVINO conversions of a
read-only model (``$HEART_SR_CACHE``, else ``~/.cache/heart-sr-tf``)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    return Path(os.environ.get("HEART_SR_CACHE", Path.home() / ".cache" / "heart-sr-tf"))
