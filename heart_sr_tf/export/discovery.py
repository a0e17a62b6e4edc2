"""Finding a model by name: the shipped models wherever the tool is installed and run from."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from heart_sr_tf.errors import HeartSRError

SHIPPED_ENV = "HEART_SR_MODELS"


def shipped_model_dirs() -> list[Path]:
    """Where the shipped models are looked for: $HEART_SR_MODELS, ./saved_models, the checkout's saved_models
    (an editable install), and ``<prefix>/share/heart-sr-tf/saved_models`` (a regular ``pip install .``)."""
    given = os.environ.get(SHIPPED_ENV, "").strip()
    if given and not Path(given).is_dir():  # a mistyped folder would fall back, unsaid, on the shipped models
        raise HeartSRError(f"{SHIPPED_ENV}={given}: no such folder (it says where your models are)")
    dirs = [Path(given)] if given else []
    dirs += [Path.cwd() / "saved_models", Path(__file__).resolve().parents[2] / "saved_models"]
    return dirs + [Path(sys.prefix) / "share" / "heart-sr-tf" / "saved_models"]


def find_model(path: Path) -> Path:
    """``path`` as given when it exists; else a shipped model of that name (``rrdb_kspace`` or
    ``saved_models/rrdb_kspace``), wherever the tool is installed and run from."""
    path = Path(path)
    if path.exists():
        return path
    parts = path.parts
    if len(parts) == 1 or (len(parts) == 2 and parts[0] == "saved_models"):
        for folder in shipped_model_dirs():
            if (folder / parts[-1]).is_dir():
                return folder / parts[-1]
    where = f"${SHIPPED_ENV}, " if os.environ.get(SHIPPED_ENV, "").strip() else ""
    raise HeartSRError(
        f"{path}: no such run or model (shipped models are looked for in {where}./saved_models, the checkout "
        f"and {shipped_model_dirs()[-1]})"
    )
