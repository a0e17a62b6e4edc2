"""The memory this process can have now: what the system has available, or less where a control group limits it
(a container's, a SLURM job's, a Kubernetes pod's). A result that cannot fit is refused before the work starts,
instead of the kernel killing the run part-way with no line of ours."""

from __future__ import annotations

from pathlib import Path

UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def available_memory(proc: Path = Path("/proc"), cgroups: Path = Path("/sys/fs/cgroup")) -> int | None:
    """Bytes: the least of Linux's MemAvailable and the headroom of every memory control group this process is
    in (its own and each parent's limit, less what the group uses that cannot be reclaimed); None where
    neither is known (not Linux)."""
    both = (_meminfo_available(proc / "meminfo"), cgroup_headroom(proc / "self" / "cgroup", cgroups))
    known = [v for v in both if v is not None]
    return min(known) if known else None


def _meminfo_available(meminfo: Path) -> int | None:
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cgroup_headroom(self_cgroup: Path, cgroups: Path) -> int | None:
    """The memory left under the tightest limit of this process's control groups (v2: ``memory.max`` and
    ``memory.current``; v1: ``memory.limit_in_bytes`` and ``memory.usage_in_bytes``), the reclaimable page
    cache (``inactive_file``) not counted as used; None when no group sets a limit or none can be read."""
    try:
        lines = self_cgroup.read_text().splitlines()
    except OSError:
        return None
    paths = {}
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) == 3:
            paths[parts[1]] = parts[2]
    if (cgroups / "cgroup.controllers").is_file() and "" in paths:  # v2, one unified hierarchy
        return _tightest(cgroups, paths[""], "memory.max", "memory.current")
    for controllers, path in paths.items():  # v1: the memory controller's own hierarchy
        if "memory" in controllers.split(","):
            return _tightest(cgroups / "memory", path, "memory.limit_in_bytes", "memory.usage_in_bytes")
    return None


def _tightest(base: Path, path: str, limit_name: str, usage_name: str) -> int | None:
    """The least headroom from the process's group up to ``base``. Inside a container the group's path, as the
    host names it, may not exist under the container's mount: the mount's own root is then the group."""
    group = base / path.strip("/")
    if not group.is_dir():
        group = base
    headrooms = []
    for folder in [group, *group.parents]:
        limit, usage = _number(folder / limit_name), _number(folder / usage_name)
        if limit is not None and usage is not None and limit < UNLIMITED:
            headrooms.append(max(limit - usage + _inactive_file(folder / "memory.stat"), 0))
        if folder == base:
            break
    return min(headrooms) if headrooms else None


def _number(file: Path) -> int | None:
    try:
        text = file.read_text().strip()
    except OSError:
        return None
    if text == "max":  # v2: no limit
        return UNLIMITED
    try:
        return int(text)
    except ValueError:
        return None


def _inactive_file(stat: Path) -> int:
    """The group's page cache the kernel can drop before it kills (counted in its usage); 0 when unknown."""
    try:
        fields = dict(line.split(" ", 1) for line in stat.read_text().splitlines() if " " in line)
        return int(fields.get("total_inactive_file", fields.get("inactive_file", 0)))  # v1's total_: with children
    except (OSError, ValueError):
        return 0
