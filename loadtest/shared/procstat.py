"""CPU and memory of a process tree from /proc: the gateway's pid and all its descendants (a prefork gateway
has workers under a supervisor). CPU = utime + stime of every live process, plus cutime + cstime (the
children each one has already reaped), so a worker that exits keeps counting once its parent reaps it.

Memory both as RSS and as PSS (proportional set size, /proc/PID/smaps_rollup): forked workers share the
pages they inherited, which RSS counts once per process and PSS divides among the sharers, so the PSS of a
tree sums to the memory it really holds."""

from __future__ import annotations

import os
import time
from typing import NamedTuple

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


class Usage(NamedTuple):
    at_ns: int  # CLOCK_MONOTONIC
    cpu_seconds: float
    rss_bytes: int
    processes: int
    pss_bytes: int | None = None  # None: smaps_rollup not readable (kernel < 4.14, or not permitted)


def _stat_fields(pid: int) -> list[str] | None:
    try:
        with open(f"/proc/{pid}/stat") as file:
            text = file.read()
    except OSError:  # gone
        return None
    return text.rpartition(")")[2].split()  # the command name may contain spaces and parentheses


def process_tree(root: int) -> list[int]:
    """`root` and its descendants, by parent pid over all of /proc."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat_fields(int(entry))) is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


def tree_usage(root: int) -> Usage | None:
    """None when the root process is gone."""
    if _stat_fields(root) is None:
        return None
    ticks = rss_pages = count = 0
    pss: int | None = 0
    for pid in process_tree(root):
        fields = _stat_fields(pid)
        if fields is None:
            continue
        ticks += int(fields[11]) + int(fields[12]) + int(fields[13]) + int(fields[14])
        rss_pages += int(fields[21])
        count += 1
        own_pss = pss_bytes(pid)
        pss = None if pss is None or own_pss is None else pss + own_pss
    return Usage(time.monotonic_ns(), ticks / CLOCK_TICKS, rss_pages * PAGE, count, pss)


def pss_bytes(pid: int) -> int | None:
    """The process's proportional set size; None when it cannot be read."""
    try:
        with open(f"/proc/{pid}/smaps_rollup") as file:
            for line in file:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024  # in kB
    except OSError:
        return None
    return None


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (/proc/stat: all but idle and iowait), to tell how much
    of the machine something else used during a run on a shared machine."""
    with open("/proc/stat") as file:
        fields = [int(value) for value in file.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / CLOCK_TICKS
