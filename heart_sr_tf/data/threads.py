"""Ordered work on a few threads, for loops whose items spend their time where Python lets go of the GIL (zlib,
OpenCV, most of NumPy): reading and encoding the scans ``prepare`` stores."""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor


def default_workers() -> int:
    """One thread per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


def ordered_map(fn: Callable, items: Iterable, workers: int | None = None, ahead: int = 4) -> Iterator:
    """``fn(item)`` for every item, in the items' order, on ``workers`` threads, at most ``ahead`` results computed
    before the consumer asks for them (memory stays bounded). An exception from ``fn`` is raised where its item's
    result would have been yielded."""
    workers = workers or default_workers()
    items = iter(items)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        pending = deque(pool.submit(fn, item) for _, item in zip(range(max(ahead, workers)), items, strict=False))
        while pending:
            result = pending.popleft().result()
            for item in items:  # refill one
                pending.append(pool.submit(fn, item))
                break
            yield result
