"""Runs one load test: spawns the generators (and the media simulator), starts them on one clock, samples the
gateway's process tree while they run, prints live progress, and gathers everything for the report."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import wait
from typing import Any

from loadtest.media.process import media_process
from loadtest.runner.outage import TargetOutage
from loadtest.runner.timeline import Timeline, progress_line
from loadtest.shared.procs import Child
from loadtest.shared.procstat import Usage, machine_busy_seconds
from loadtest.shared.scenario import CallPlan, Scenario, new_run_id, plan_calls
from loadtest.sinch.generator import generator_process
from loadtest.sinch.stats import LoadStats

READY_TIMEOUT = 60.0
START_DELAY_NS = 300_000_000  # time for the start message to reach every generator
OVERRUN_GRACE_S = 15.0  # past the generators' own hard end: they are stuck, stop them


@dataclass
class RunResult:
    scenario: Scenario
    run_id: str
    started_unix: float
    t0_ns: int  # CLOCK_MONOTONIC at the run's start: call spans are on this clock
    wall_seconds: float
    stats: LoadStats
    timeline: list[dict[str, Any]]
    samples: list[Usage]  # gateway process tree, in time order (first: idle, before the load)
    media: dict[str, Any] | None
    machine_busy_cores: float  # average busy cores of the whole machine (everything on it) during the run
    notes: list[str] = field(default_factory=list)
    interrupted: bool = False  # stopped early by SIGINT or SIGTERM: calls still up were cut short, not failed
    failover: dict[str, Any] | None = None  # a media target's outage and the gateway's failovers (TargetOutage)


def _print_now(line: str) -> None:
    print(line, flush=True)  # live even when stdout is a pipe


def run_load(scenario: Scenario, start_at_unix: float | None = None,
             progress: Callable[[str], None] | None = _print_now, media: Child | None = None) -> RunResult:
    """Drive the scenario to its end. `media`: an already running media simulator child (the benchmark
    keeps one across rounds); otherwise one is started here when the scenario asks for it."""
    plans = plan_calls(scenario)
    run_id = new_run_id()
    own_media = media is None and scenario.media != "none"
    if own_media:
        media = Child(media_process, scenario.media, scenario.media_addresses)
        media.expect("ready", READY_TIMEOUT)
    generators = [Child(generator_process, scenario, plans[i::scenario.procs], run_id, i)
                  for i in range(scenario.procs)]
    try:
        for child in generators:
            child.expect("ready", READY_TIMEOUT)
        if media is not None and not own_media:
            media.conn.send(("reset",))
            media.expect("reset", READY_TIMEOUT)
        return _drive(scenario, plans, run_id, generators, media, start_at_unix, progress)
    finally:
        for child in generators:
            child.stop()
        if own_media and media is not None:
            media.conn.send(("stop",))
            media.stop()


class _StopRequests:
    """SIGINT (Ctrl-C) or SIGTERM during a run asks it to stop early and still report. The handler only notes
    the request, so no KeyboardInterrupt lands in the middle of reading a generator's pipe (the wait it
    interrupts resumes, PEP 475, for at most a timeline row); a second request stops at once."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.requested: str | None = None  # the signal's name

    def __enter__(self) -> _StopRequests:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in self.SIGNALS}
        return self

    def __exit__(self, *exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, frame: object) -> None:
        if self.requested is not None:
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name


def _drive(scenario: Scenario, plans: list[CallPlan], run_id: str, generators: list[Child], media: Child | None,
           start_at_unix: float | None, progress: Callable[[str], None] | None) -> RunResult:
    delay = START_DELAY_NS if start_at_unix is None else max(START_DELAY_NS, int((start_at_unix - time.time()) * 1e9))
    t0 = time.monotonic_ns() + delay
    outage = TargetOutage(scenario, media, t0, READY_TIMEOUT)
    timeline = Timeline(t0, len(generators), scenario.gateway_pid)
    timeline.sample_gateway()  # idle: before any call
    started_unix = time.time() + delay / 1e9
    busy_before, busy_since = machine_busy_seconds(), time.monotonic_ns()
    for child in generators:
        child.conn.send(("start", t0))
    last_end = max((plan.start + plan.seconds for plan in plans), default=0.0)
    overrun = t0 + int((last_end + scenario.drain + scenario.connect_timeout + OVERRUN_GRACE_S) * 1e9)
    results: dict[int, LoadStats] = {}
    notes: list[str] = []
    with _StopRequests() as stop:
        _gather(generators, results, timeline, outage, overrun, stop, notes,
                _Progress(progress, t0, scenario.progress_interval, last_end + scenario.drain))
    end = time.monotonic_ns()
    busy_cores = (machine_busy_seconds() - busy_before) / ((end - busy_since) / 1e9)
    timeline.add_row(end)
    stats = LoadStats()
    for result in results.values():
        stats.merge(result)
    media_summary = None
    if media is not None:
        media.conn.send(("stats",))
        media_summary = media.expect("stats", READY_TIMEOUT)[1]
    return RunResult(scenario, run_id, started_unix, t0, (end - t0) / 1e9, stats, timeline.rows, timeline.samples,
                     media_summary, round(busy_cores, 2), notes, interrupted=stop.requested is not None,
                     failover=outage.summary(notes))


class _Progress:
    """Prints every `interval` seconds of the run a line drawn from the newest timeline row, with the time
    elapsed of `total_seconds` (the planned end of the last call)."""

    def __init__(self, printer: Callable[[str], None] | None, t0: int, interval: float,
                 total_seconds: float) -> None:
        self.printer = printer
        self.interval_ns = int(interval * 1e9)
        self.next_ns = t0 + self.interval_ns
        self.total_seconds = total_seconds

    def row_added(self, row: dict[str, Any], now: int) -> None:
        if self.printer and now >= self.next_ns:
            self.next_ns += self.interval_ns
            self.printer(progress_line(row, self.total_seconds))


def _gather(generators: list[Child], results: dict[int, LoadStats], timeline: Timeline, outage: TargetOutage,
            overrun: int, stop: _StopRequests, notes: list[str], progress: _Progress) -> None:
    """Collect every generator's progress and final stats, adding a timeline row a second and taking the
    media target down and up on time."""
    stop_sent = False
    while len(results) < len(generators):
        now = time.monotonic_ns()
        outage.run_due(now)
        if now >= timeline.next_row:
            progress.row_added(timeline.add_row(now), now)
        if now >= overrun:
            notes.append("generators overran their deadline and were stopped")
            return
        if stop.requested and not stop_sent:
            stop_sent = True
            notes.append(f"interrupted ({stop.requested}): calls still up were cut short")
            for i, child in enumerate(generators):
                if i not in results:
                    child.conn.send(("stop",))
        conns = {child.conn: i for i, child in enumerate(generators) if i not in results}
        wake = min(timeline.next_row, outage.next_ns or timeline.next_row)
        for conn in wait(list(conns), timeout=max(0.0, (wake - now) / 1e9)):
            index = conns[conn]
            try:
                kind, payload = conn.recv()
            except EOFError:
                results[index] = LoadStats()
                notes.append(f"generator {index} died")
                continue
            if kind == "progress":
                timeline.latest[index] = payload
            else:
                results[index] = LoadStats.from_dict(payload)
