"""The CPUs the gateway may use, for `workers = 0`: the CPUs its affinity allows (taskset, cpusets), cut to its
cgroup's CPU quota (a container's CPU limit: Kubernetes' resources.limits.cpu, docker run --cpus).

os.cpu_count() sees the host's cores: a gateway limited to 2 CPUs on a 64-core node would start 64 workers that
share 2 CPUs of quota, and CFS throttling (the whole cgroup stalled until the next period once the quota is
spent) would hold every call's audio. The quota is rounded down (at least 1): a worker beyond it only adds
throttling.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
PROC_CGROUP = Path("/proc/self/cgroup")


def usable_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> int:
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    quota = cgroup_cpu_quota(root, proc_cgroup)
    return cpus if quota is None else max(1, min(cpus, math.floor(quota)))


def cgroup_cpu_quota(root: Path = CGROUP_ROOT, proc_cgroup: Path = PROC_CGROUP) -> float | None:
    """CPUs per period the process's cgroup and its ancestors allow, the least of them; None without a quota.
    cgroup v2: `cpu.max` ("QUOTA PERIOD", QUOTA "max" for none; kernel docs, cgroup-v2 "CPU Interface Files");
    v1: `cpu.cfs_quota_us` (-1 for none) over `cpu.cfs_period_us`."""
    try:
        memberships = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in memberships:
        hierarchy, controllers, path = line.split(":", 2)
        if hierarchy == "0" and not controllers:
            quotas += [_v2_quota(folder) for folder in _with_ancestors(root, path)]
        elif "cpu" in controllers.split(","):
            quotas += [_v1_quota(folder) for folder in _with_ancestors(root / controllers, path)]
    found = [quota for quota in quotas if quota is not None]
    return min(found) if found else None


def _with_ancestors(mount: Path, path: str) -> list[Path]:
    parts = [part for part in path.split("/") if part]
    return [mount.joinpath(*parts[:depth]) for depth in range(len(parts), -1, -1)]


def _v2_quota(folder: Path) -> float | None:
    try:
        quota, period = (folder / "cpu.max").read_text().split()
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(folder: Path) -> float | None:
    try:
        quota = int((folder / "cpu.cfs_quota_us").read_text())
        period = int((folder / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota < 0 else quota / period
