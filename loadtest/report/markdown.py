"""report.md: the report for people, from report.json."""

from __future__ import annotations

from typing import Any


def render(report: dict[str, Any], plots: list[str], hlogs: list[str]) -> str:
    return "".join((
        _heading(report),
        _calls(report["calls"]),
        _frames(report),
        _latencies(report),
        _gateway(report["gateway"]),
        _media(report["media"]),
        _failover(report.get("failover")),
        _machine(report.get("machine")),
        _generator(report["generator"]),
        _thresholds(report),
        _notes(report),
        _links(plots, hlogs),
    ))


def _heading(report: dict[str, Any]) -> str:
    scenario = report["scenario"]
    text = f"# Load test {', '.join(report['runs'])}\n\n"
    text += (f"{report['started_at']}, {report['wall_seconds']} s: `{scenario['url']}`, "
             f"{scenario['calls']} long calls (ramp {scenario['ramp']}/s) + churn {scenario['churn_rate']}/s, "
             f"rate {scenario['rate']}, {scenario['duration']} s, {report['generator']['procs']} generator "
             f"process(es), media `{scenario['media']}`.\n\n")
    if report["interrupted"]:
        text += "**Interrupted**: the figures cover the run until then; calls cut short count as interrupted.\n\n"
    return text


def _calls(calls: dict[str, Any]) -> str:
    text = "| calls | attempted | answered | completed | failed | interrupted | max concurrent | call-seconds |\n"
    text += "|---|---|---|---|---|---|---|---|\n"
    text += (f"| | {calls['attempted']} | {calls['answered']} | {calls['completed']} | {calls['failed']} | "
             f"{calls['interrupted']} | {calls['max_concurrent']} | {calls['call_seconds']} |\n\n")
    if calls["failed_by_reason"]:
        text += "Failures: " + ", ".join(f"{k} {v}" for k, v in sorted(calls["failed_by_reason"].items())) + "\n\n"
    text += "Hangups by: " + (", ".join(f"{k} {v}" for k, v in sorted(calls["hangup_by"].items())) or "none")
    return text + "\n\n"


def _frames(report: dict[str, Any]) -> str:
    frames = report["frames"]
    text = "| frames | sent | received | marked | lost | duplicate | reordered | cut at hangup | loss ratio |\n"
    text += "|---|---|---|---|---|---|---|---|---|\n"
    text += (f"| | {frames['sent']} | {frames['received']} | {frames['marked']} | {frames['lost']} | "
             f"{frames['duplicate']} | {frames['reordered']} | {frames['cut_at_hangup']} | "
             f"{_value(report['loss_ratio'])} ({report['loss_method']}) |\n\n")
    return text


def _latencies(report: dict[str, Any]) -> str:
    text = "| latency (ms) | p50 | p90 | p99 | p99.9 | max | samples |\n|---|---|---|---|---|---|---|\n"
    text += _latency_rows("call setup (connect → answer)", report["latency_ms"]["setup"])
    text += _latency_rows("round trip (send → echo back)", report["latency_ms"]["round_trip"])
    text += _latency_rows("upstream (send → RTP at media)", report["latency_ms"]["upstream"])
    text += _latency_rows("jitter per call, round trip", report["jitter_ms"]["round_trip"])
    text += _latency_rows("jitter per stream, upstream", report["jitter_ms"]["upstream"])
    text += _latency_rows("longest gap between frames received, per call", report.get("receive_gap_ms"))
    return text


def _latency_rows(name: str, summary: dict[str, Any] | None) -> str:
    if not summary or not summary["count"]:
        return f"| {name} | n/a | | | | | |\n"
    cells = " | ".join(_value(summary[key]) for key in ("p50", "p90", "p99", "p999", "max"))
    return f"| {name} | {cells} | {summary['count']} |\n"


def _gateway(gateway: dict[str, Any] | None) -> str:
    if not gateway:
        return ""
    text = (f"\nGateway (pid {gateway['pid']}, {gateway['processes']} process(es)): "
            f"{_value(gateway['cpu_seconds'])} CPU s over {gateway['call_seconds']} call-seconds = "
            f"**{_value(gateway['cpu_ms_per_call_second'])} ms CPU per call-second**")
    if gateway["steady_window_s"]:
        start, end = gateway["steady_window_s"]
        text += f" ({_value(gateway['cpu_ms_per_call_second_steady'])} ms in the steady state, {start}-{end} s)"
    for kind in ("pss", "rss"):
        text += (f"; {kind.upper()} idle {_value(_mib(gateway.get(f'{kind}_idle_bytes')), ' MiB')}, "
                 f"at {gateway['peak_calls']} calls {_value(_mib(gateway.get(f'{kind}_peak_bytes')), ' MiB')} = "
                 f"**{_value(_kib(gateway.get(f'{kind}_per_call_bytes')), ' KiB per call')}**")
    return text + " (PSS divides the pages forked processes share among them; RSS counts them in each).\n"


def _media(media: dict[str, Any] | None) -> str:
    if not media:
        return ""
    return (f"\nMedia simulator `{media['kind']}`: {media['streams']} streams ({media['streams_with_cname']} "
            f"with CNAME, {media['streams_ended_by_bye']} ended by BYE), {media['packets']} packets, lost "
            f"{media['lost']}, gaps {media['gaps']}, duplicates {media['duplicates']}, reordered "
            f"{media['reordered']}, timestamp errors {media['timestamp_errors']}; BYE sent "
            f"{media['byes_sent']}.\n")


def _failover(failover: dict[str, Any] | None) -> str:
    if not failover:
        return ""
    text = f"\nFailover on route `{failover['route']}`: "
    if failover["target"]:
        text += (f"target {failover['target']} stopped at {_value(failover['stopped_at_s'], ' s')}, restarted at "
                 f"{_value(failover['restarted_at_s'], ' s')}; ")
    text += f"**{_value(failover['failovers'])} calls moved** to another target"
    by_target = failover["failovers_by_target"] or {}
    moved_off = ", ".join(f"{target} {_value(count)}" for target, count in sorted(by_target.items()) if count)
    return text + (f" (off {moved_off})" if moved_off else "") + ".\n"


def _machine(machine: dict[str, Any] | None) -> str:
    if not machine:
        return ""
    return f"\nMachine: {machine['busy_cores']} of {machine['cores']} cores busy on average (everything on it).\n"


def _generator(generator: dict[str, Any]) -> str:
    return (f"\nGenerator: {generator['cpu_seconds']} CPU s; timer late p99 "
            f"{_value(generator['tick_lag_ms']['p99'])} ms, max {_value(generator['tick_lag_ms']['max'])} ms.\n")


def _thresholds(report: dict[str, Any]) -> str:
    verdicts = report["thresholds"]
    held = sum(verdict["held"] for verdict in verdicts)
    text = f"\nThresholds: {held} of {len(verdicts)} held.\n\n| threshold | limit | value | |\n|---|---|---|---|\n"
    for verdict in verdicts:
        value = "not measured" if verdict["value"] is None else _value(verdict["value"])
        text += (f"| `{verdict['name']}` | {verdict['bound']} {_value(verdict['limit'])} | {value} | "
                 f"{'held' if verdict['held'] else '**failed**'} |\n")
    return text


def _notes(report: dict[str, Any]) -> str:
    return "".join(f"\n> {note}\n" for note in [*report["warnings"], *report["notes"]])


def _links(plots: list[str], hlogs: list[str]) -> str:
    text = ""
    if hlogs:
        text += "\nHdrHistogram logs (µs): " + ", ".join(f"[{name}]({name})" for name in hlogs) + "\n"
    return text + "".join(f"\n![{plot}]({plot})\n" for plot in plots)


def _value(value: Any, unit: str = "") -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float):
        value = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{value}{unit}"


def _mib(value: int | None) -> float | None:
    return None if value is None else round(value / 2**20, 1)


def _kib(value: int | None) -> float | None:
    return None if value is None else round(value / 1024, 1)
