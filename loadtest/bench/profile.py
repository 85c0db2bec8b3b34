"""Samples the gateway under load with py-spy (all its processes) and ranks the hot spots."""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
from collections import Counter
from pathlib import Path

SAMPLE_RATE = 200  # Hz


class Profiler:
    """Starts `py-spy record` after `delay` seconds (once the load is steady) for `seconds`."""

    def __init__(self, pid: int, out_dir: Path, delay: float, seconds: float) -> None:
        beside_python = Path(sys.executable).with_name("py-spy")  # a venv's scripts are not always on PATH
        self._py_spy = shutil.which("py-spy") or (str(beside_python) if beside_python.exists() else None)
        if self._py_spy is None:
            raise RuntimeError("--profile needs py-spy (pip install py-spy)")
        out_dir.mkdir(parents=True, exist_ok=True)
        self.raw = out_dir / "profile.txt"
        self.svg = out_dir / "profile.svg"
        self._args = ["--pid", str(pid), "--subprocesses", "--duration", str(max(1, round(seconds))),
                      "--rate", str(SAMPLE_RATE), "--nonblocking"]
        self._procs: list[subprocess.Popen[bytes]] = []
        self._timer = threading.Timer(delay, self._start)
        self._timer.start()

    def _start(self) -> None:
        for out, fmt in ((self.raw, "raw"), (self.svg, "flamegraph")):
            self._procs.append(subprocess.Popen(
                [self._py_spy, "record", "-o", str(out), "--format", fmt, *self._args],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    def finish(self) -> list[tuple[str, float, float]]:
        """Wait for py-spy; the top functions as (frame, self %, inclusive %)."""
        self._timer.join()
        for proc in self._procs:
            proc.wait()
        return hot_spots(self.raw.read_text()) if self.raw.exists() else []


def _function(frame: str) -> str:
    """`send (gateway/dataplane/media.py:114)` -> `send (gateway/dataplane/media.py)`: functions, not lines."""
    name, sep, where = frame.rpartition(" (")
    return f"{name} ({where.rpartition(':')[0]})" if sep and ":" in where else frame


def hot_spots(collapsed: str, top: int = 15) -> list[tuple[str, float, float]]:
    """From py-spy's collapsed stacks (`frame;frame;... count`): share of samples where a frame is the
    innermost one (self) and where it appears at all (inclusive), busiest first."""
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = [_function(frame) for frame in stack.split(";") if not frame.startswith("process ")]
        if not frames:
            continue
        samples = int(count)
        total += samples
        own[frames[-1]] += samples
        for frame in set(frames):
            inclusive[frame] += samples
    if not total:
        return []
    return [(frame, round(100 * n / total, 1), round(100 * inclusive[frame] / total, 1))
            for frame, n in own.most_common(top)]
