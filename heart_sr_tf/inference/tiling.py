"""Inference in bounded memory: slices grouped into calls of at most ``budget`` LR pixels, and slices too large
for one call cut into overlapping tiles.

A generator's activations grow with the pixels of a call (a 1024x1024 LR slice needs about 4.3 GB in float32),
so every call here holds at most ``budget`` LR pixels, whatever the slice size and the number of slices: the
batch adapts to the slice (or tile) size. A slice of more than ``budget`` pixels is cut into cores of at most
``tile`` LR pixels, each run with ``margin`` pixels of real context on every side that is not the slice's own
border (where the model sees exactly what it sees on the whole slice). Only each core's output is kept, so
tiles meet without seams; with a margin covering the network's effective receptive field the result equals
whole-slice inference (tested to 1e-3).
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np

from heart_sr_tf.errors import HeartSRError

MARGIN = 32  # LR pixels of context around a core (the test checks the result against whole slices)


BUDGET = 16 * 96 * 96  # LR pixels per call: 16 slices of 96x96, about 1 GB of float32 activations at x3


def core_side(budget: int, margin: int) -> int:
    """The side of the largest tile core whose window (core and margins) fits one call of ``budget`` pixels: for
    the defaults 320 + 2 x 32, so the margins add 1.4x the work on a 1024x1024 slice (cores of 128 added 2.1x)."""
    return max(16, int(budget**0.5) - 2 * margin)


def cores(length: int, tile: int, margin: int) -> list[tuple[int, int, int, int]]:
    """``(window_start, window_stop, core_start, core_stop)`` along one axis: equal cores of at most ``tile``
    covering ``[0, length)``, each inside a window with ``margin`` of context (clipped at the border)."""
    if length <= tile + 2 * margin:
        return [(0, length, 0, length)]
    count = -(-length // tile)
    edges = np.linspace(0, length, count + 1).round().astype(int)
    return [(max(0, a - margin), min(length, b + margin), a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def tiled_apply(
    fn, lr: np.ndarray, factors=(3, 3), tile: int | None = None, margin: int = MARGIN, budget: int = BUDGET
):
    """``fn`` (``[n, h, w, ..., 1] -> [n, sy*h, sx*w, ..., 1]``) over ``lr [B, h, w, 1]``, or volumes
    ``[B, h, w, D, 1]`` tiled in-plane only (each tile keeps its whole depth), in calls of at most ``budget`` LR
    pixels (a single tile may exceed it only when ``tile + 2*margin`` squared times D does). ``tile``, the core's
    side, is by default the largest whose window fits the budget."""
    sy, sx = factors
    tile = tile or core_side(budget, margin)
    batch, height, width = lr.shape[:3]
    rest = tuple(lr.shape[3:])
    depth = int(np.prod(rest[:-1], dtype=int))
    out = np.zeros((batch, sy * height, sx * width, *rest), np.float32)
    if height * width * depth <= budget:  # whole slices, several per call
        rows, cols = [(0, height, 0, height)], [(0, width, 0, width)]
    else:
        rows, cols = cores(height, tile, margin), cores(width, tile, margin)
    groups: dict[tuple[int, int], list] = defaultdict(list)  # window shape -> [(slice, row plan, column plan)]
    for b in range(batch):
        for r in rows:
            for c in cols:
                groups[(r[1] - r[0], c[1] - c[0])].append((b, r, c))
    for (h, w), items in groups.items():
        per_call = max(1, budget // (h * w * depth))
        for start in range(0, len(items), per_call):
            chunk = items[start : start + per_call]
            windows = np.stack([lr[b, r[0] : r[1], c[0] : c[1]] for b, r, c in chunk])
            result = np.asarray(fn(windows), dtype=np.float32)
            expected = (len(chunk), sy * h, sx * w, *rest)
            if result.shape != expected:
                raise HeartSRError(
                    f"the model turned {list(windows.shape)} into {list(result.shape)}, not {list(expected)}: "
                    f"it does not upscale by {sy}x{sx}"
                )
            for (b, r, c), sr in zip(chunk, result, strict=True):
                top, left = sy * (r[2] - r[0]), sx * (c[2] - c[0])
                core = sr[top : top + sy * (r[3] - r[2]), left : left + sx * (c[3] - c[2])]
                out[b, sy * r[2] : sy * r[3], sx * c[2] : sx * c[3]] = core
    return out
