"""Patient-disjoint train / validation / test splits, stratified by ACDC group."""

from __future__ import annotations

import numpy as np


def split_patients(
    patients: list[tuple[str, str, str | None]],
    seed: int = 0,
    fractions: tuple[float, float] = (0.15, 0.15),
) -> dict[str, str]:
    """Assign each patient to one split. Deterministic for a given ``seed``.

    ``patients`` holds ``(id, group, source_split)``. Patients from ACDC's ``testing/`` folder
    form the test split; then only a validation fraction is drawn from the rest. Otherwise
    ``fractions`` gives the (validation, test) shares. Each group is shuffled, the groups are
    interleaved, and the test and validation patients are taken from the front of that order,
    so every split gets a share of every group.
    """
    val_share, test_share = fractions
    assignment = {pid: "test" for pid, _, source in patients if source == "testing"}
    pool = sorted((pid, group) for pid, group, source in patients if source != "testing")
    if assignment:
        test_share = 0.0
    rng = np.random.default_rng(seed)
    by_group: dict[str, list[str]] = {}
    for pid, group in pool:
        by_group.setdefault(group, []).append(pid)
    queues = []
    for group in sorted(by_group):
        ids = list(by_group[group])
        rng.shuffle(ids)
        queues.append(ids)
    order = [q[i] for i in range(max(map(len, queues), default=0)) for q in queues if i < len(q)]
    n = len(order)
    n_test = _count(n, test_share)
    n_val = _count(n - n_test, val_share * n / max(n - n_test, 1))
    for k, pid in enumerate(order):
        assignment[pid] = "test" if k < n_test else "validation" if k < n_test + n_val else "train"
    return assignment


def _count(n: int, share: float) -> int:
    """Patients for a split of ``share``: at least one when there is a share and patients to spare."""
    if share <= 0 or n < 2:
        return 0
    return min(max(1, round(n * share)), n - 1)
