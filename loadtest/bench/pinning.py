"""CPU pinning for the bench (`--subject-cpus`): each subject on its own CPUs, the load generator and the media
echo on the others. On a small machine the scheduler otherwise moves the subject and its load between the same
few cores, and a subject's figure changes by a tenth from round to round with where it happened to run."""

from __future__ import annotations

import argparse
import os


def cpu_list(text: str) -> frozenset[int]:
    """`1`, `2-3` or `0,2`: CPUs this process may use, leaving at least one for the load generator."""
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            first, dash, last = part.partition("-")
            cpus.update(range(int(first), int(last if dash else first) + 1))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a CPU list such as 1, 2-3 or 0,2") from None
    available = os.sched_getaffinity(0)
    if not cpus or not cpus < available:
        raise argparse.ArgumentTypeError(
            f"{text!r}: the subjects need CPUs among {sorted(available)} and the load generator at least one other")
    return frozenset(cpus)


def pin_harness(subject_cpus: frozenset[int]) -> None:
    """This process, and what it starts from now on (the echo, the load generators), off the subjects' CPUs."""
    os.sched_setaffinity(0, os.sched_getaffinity(0) - subject_cpus)


def pinned(command: list[str], cpus: frozenset[int]) -> list[str]:
    """`command` run on `cpus` with its children (util-linux's taskset execs it: the pid stays the subject's)."""
    return ["taskset", "--cpu-list", ",".join(map(str, sorted(cpus))), *command]
