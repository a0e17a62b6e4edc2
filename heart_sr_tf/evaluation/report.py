"""Plain-text tables for the terminal, and the CSV tables beside them."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

from heart_sr_tf.errors import DataError
from heart_sr_tf.folder_lock import holder
from heart_sr_tf.path_text import PATH_TEXT

LABELS = {"ssim": "SSIM (7x7)", "ssim_gauss": "SSIM (11x11 gauss)", "psnr": "PSNR (dB)", "nrmse": "NRMSE"}


def _cell(value) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    if isinstance(value, float):
        return f"{value:.2f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def format_table(columns: dict[str, dict[str, float]], rows: list[str]) -> str:
    """Metrics as rows, methods as columns."""
    header = ["metric", *columns]
    body = [[LABELS.get(r, r), *(_cell(columns[c].get(r)) for c in columns)] for r in rows]
    widths = [max(len(line[i]) for line in [header, *body]) for i in range(len(header))]
    fmt = "  ".join(f"{{:{'<' if i == 0 else '>'}{w}}}" for i, w in enumerate(widths))
    lines = [fmt.format(*header), fmt.format(*("-" * w for w in widths))]
    lines += [fmt.format(*line) for line in body]
    return "\n".join(lines)


def write_csv(path: Path, rows: list[dict]) -> None:
    """``rows`` as a CSV table with the first row's keys as its header (an empty file for no rows)."""
    with Path(path).open("w", newline="", **PATH_TEXT) as f:
        if rows:
            writer = csv.DictWriter(f, fieldnames=list(rows[0]))
            writer.writeheader()
            writer.writerows(rows)


def read_output(folder: Path, files: tuple[str, ...], what: str) -> dict:
    """The metadata of an output folder that must hold ``files`` (the first one its JSON): one error line naming
    the folder or file otherwise. ``what`` says which command's output it should be."""
    folder = Path(folder)
    writing = holder(folder, "evaluate")
    if writing is not None:  # its files are being removed and written: a mixture of two evaluations, or half of one
        raise DataError(folder, f"an evaluation is writing it ({writing}); read it once that evaluation is over")
    missing = [name for name in files if not (folder / name).is_file()]
    if missing:
        raise DataError(folder, f"not an {what} output: no {', '.join(missing)}")
    try:
        return json.loads((folder / files[0]).read_text())
    except json.JSONDecodeError as exc:
        raise DataError(folder / files[0], f"not JSON: {exc}") from None
