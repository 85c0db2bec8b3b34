"""`python -m loadtest bench`: the gateway against the naive baseline and the native floor (the same bridge in
C, compiled when the bench starts), same load, same run, in alternation.

All three bridge to one media echo that the bench runs in its own process (not the gateway's embedded echo):
the echo's CPU then stays out of the gateway's figure, the baseline gets the very same downstream, and the
echo measures the upstream latency of every marked frame. Each round starts each side afresh (idle RSS
first), drives the same scenario, and stops it; the table shows the median over rounds and the ratios.
With `--profile DIR`, one more gateway round runs under py-spy, left out of the figures.
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from loadtest.bench.gateway_metrics import gateway_own_figures
from loadtest.bench.pinning import pin_harness, pinned
from loadtest.bench.profile import Profiler
from loadtest.bench.subjects import Subject, build_native, gateway, naive, native
from loadtest.media.process import media_process
from loadtest.report.build import build_report
from loadtest.report.output import write_outputs
from loadtest.runner.run import run_load
from loadtest.shared.procs import Child
from loadtest.shared.scenario import Scenario

READY_TIMEOUT = 30.0
PROFILE_MAX_SECONDS = 10.0
# (label, report path, scale): the figures compared, lower is better for all of them.
METRICS = (
    ("gateway CPU ms per call-second", ("gateway", "cpu_ms_per_call_second"), 1.0),
    ("  same, steady state only", ("gateway", "cpu_ms_per_call_second_steady"), 1.0),
    ("RSS per call (KiB)", ("gateway", "rss_per_call_bytes"), 1 / 1024),
    ("  PSS per call (KiB): pages shared between processes counted once", ("gateway", "pss_per_call_bytes"), 1 / 1024),
    ("round trip p50 (ms)", ("latency_ms", "round_trip", "p50"), 1.0),
    ("round trip p99 (ms)", ("latency_ms", "round_trip", "p99"), 1.0),
    ("round trip max (ms)", ("latency_ms", "round_trip", "max"), 1.0),
    ("upstream p50 (ms)", ("latency_ms", "upstream", "p50"), 1.0),
    ("upstream p99 (ms)", ("latency_ms", "upstream", "p99"), 1.0),
    ("  gateway's own part: callback to sendto, p99 at most (ms)", ("gateway_own", "upstream_p99_ms_at_most"), 1.0),
    ("  same, p99.9 at most (ms)", ("gateway_own", "upstream_p999_ms_at_most"), 1.0),
    ("  gateway event loop lag p99 at most (ms)", ("gateway_own", "loop_lag_p99_ms_at_most"), 1.0),
    ("loss ratio", ("loss_ratio",), 1.0),
    ("failed calls", ("calls", "failed"), 1.0),
)


def _get(report: dict[str, Any], path: tuple[str, ...]) -> float | None:
    value: Any = report
    for key in path:
        if value is None:
            return None
        value = value.get(key)
    return value


def _median(reports: list[dict[str, Any]], path: tuple[str, ...], scale: float) -> float | None:
    values = [v for r in reports if (v := _get(r, path)) is not None]
    return statistics.median(values) * scale if values else None


def run_bench(args: argparse.Namespace) -> int:
    out = Path(args.out) if args.out else None
    if args.subject_cpus:
        pin_harness(args.subject_cpus)
    media = Child(media_process, "echo", [("127.0.0.1", 0)])
    (echo_port,) = media.expect("ready", READY_TIMEOUT)[1]
    ramp_seconds = args.calls / args.ramp if args.ramp else 0.0
    reports: dict[str, list[dict[str, Any]]] = {"gateway": [], "naive": [], "native": []}
    hot: list[tuple[str, float, float]] = []
    print(f"bench: {args.calls} calls at {args.rate} Hz, {args.seconds:g} s each round after a "
          f"{ramp_seconds:g} s ramp, {args.rounds} rounds, media echo on 127.0.0.1:{echo_port}", flush=True)
    build = tempfile.TemporaryDirectory(prefix="loadtest-native-")
    try:
        makers = (functools.partial(gateway, workers=args.workers), naive,
                  functools.partial(native, executable=build_native(Path(build.name))))
        for round_index in range(args.rounds):
            for make in makers:
                subject = _start(make(echo_port), args)
                try:
                    report = _one_round(args, subject, echo_port, ramp_seconds, media)
                finally:
                    subject.stop()
                reports[subject.name].append(report)
                if out:
                    write_outputs(report, out / f"round{round_index + 1}-{subject.name}", plots=False)
                print(_round_line(round_index, subject.name, report), flush=True)
        if args.profile:
            hot = _profiled_round(args, echo_port, ramp_seconds, media)
    finally:
        build.cleanup()
        media.conn.send(("stop",))
        media.stop()
    table = render_table(args, reports)
    print(table)
    if hot:
        print(render_hot_spots(hot))
    if out:
        out.mkdir(parents=True, exist_ok=True)
        (out / "bench.md").write_text(table + ("\n" + render_hot_spots(hot) if hot else ""))
        (out / "bench.json").write_text(json.dumps({"args": vars(args), "reports": reports}, indent=1) + "\n")
    return 0


def _start(subject: Subject, args: argparse.Namespace) -> Subject:
    if args.subject_cpus:
        subject.command = pinned(subject.command, args.subject_cpus)
    return subject.start()


def _one_round(args: argparse.Namespace, subject: Subject, echo_port: int, ramp_seconds: float,
               media: Child) -> dict[str, Any]:
    scenario = Scenario(
        name=f"bench-{subject.name}", url=subject.url, calls=args.calls, ramp=args.ramp, rate=args.rate,
        duration=ramp_seconds + args.seconds, media="echo", media_listen=f"127.0.0.1:{echo_port}",
        procs=args.procs, gateway_pid=subject.pid,
    )
    report = build_report(run_load(scenario, progress=None, media=media))
    if subject.metrics_url:
        report["gateway_own"] = gateway_own_figures(subject.metrics_url)
    return report


def _profiled_round(args: argparse.Namespace, echo_port: int, ramp_seconds: float,
                    media: Child) -> list[tuple[str, float, float]]:
    """One more gateway round under py-spy, left out of the figures: sampling costs CPU on a small machine."""
    subject = _start(gateway(echo_port, args.workers), args)
    try:
        profiler = Profiler(subject.pid, Path(args.profile), ramp_seconds + 1,
                            min(PROFILE_MAX_SECONDS, args.seconds - 1))
        _one_round(args, subject, echo_port, ramp_seconds, media)
        return profiler.finish()
    finally:
        subject.stop()


def _round_line(index: int, name: str, report: dict[str, Any]) -> str:
    gateway_figures = report["gateway"] or {}
    rtt = report["latency_ms"]["round_trip"]
    return (f"round {index + 1} {name:8s} calls {report['calls']['answered']}/{report['calls']['attempted']} "
            f"cpu {gateway_figures.get('cpu_ms_per_call_second')} ms/call-s, rtt p50 {rtt['p50']} p99 {rtt['p99']} "
            f"ms, loss {report['loss_ratio']}, machine busy {report['machine']['busy_cores']} cores, "
            f"warnings {len(report['warnings'])}")


def _cell(value: float | None) -> str:
    if value is None:
        return "n/a"
    return f"{value:.4g}"


def render_table(args: argparse.Namespace, reports: dict[str, list[dict[str, Any]]]) -> str:
    workers = f", gateway workers {args.workers}" if args.workers != 1 else ""
    cpus = f", subjects on CPUs {','.join(map(str, sorted(args.subject_cpus)))}" if args.subject_cpus else ""
    lines = [f"\n{args.calls} calls, {args.rate} Hz{workers}{cpus}, {args.rounds} rounds (medians)\n",
             "| figure | gateway | naive | native | naive ÷ gateway | gateway ÷ native |", "|---|---|---|---|---|---|"]
    for label, path, scale in METRICS:
        ours, naive_figure, native_figure = (_median(reports[name], path, scale)
                                             for name in ("gateway", "naive", "native"))
        lines.append(f"| {label} | {_cell(ours)} | {_cell(naive_figure)} | {_cell(native_figure)} | "
                     f"{_ratio(naive_figure, ours)} | {_ratio(ours, native_figure)} |")
    warnings = {w for side in reports.values() for r in side for w in r["warnings"]}
    lines.extend(f"\n> {w}" for w in sorted(warnings))
    return "\n".join(lines) + "\n"


def _ratio(numerator: float | None, denominator: float | None) -> str:
    return f"{numerator / denominator:.2f}x" if numerator is not None and denominator else "n/a"


def render_hot_spots(hot: list[tuple[str, float, float]]) -> str:
    lines = ["Gateway hot spots (py-spy, all gateway processes; % of samples)\n",
             "| function | self % | inclusive % |", "|---|---|---|"]
    lines.extend(f"| `{frame}` | {own} | {inclusive} |" for frame, own, inclusive in hot)
    return "\n".join(lines) + "\n"
