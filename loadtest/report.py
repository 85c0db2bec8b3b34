"""report.json: the contract other tools read. Built from one run, or merged from several runs' reports
(counts summed, latency percentiles recomputed from the stored histograms, so a merge is exact)."""

from __future__ import annotations

import os
import time
from collections import Counter
from typing import Any

import msgspec

from loadtest import figures
from loadtest.histogram import Histogram
from loadtest.runner import RunResult

SCHEMA = "loadtest-report/1"
TICK_LAG_OVERLOAD_MS = 5.0  # the generator's timer p99 later than this: its own delay is in the latencies
MEDIA_COUNTS = ("streams", "streams_with_cname", "streams_ended_by_bye", "packets", "bytes", "lost", "gaps",
                "duplicates", "reordered", "timestamp_errors", "talked", "echoed", "malformed", "rtcp_packets",
                "byes_received", "byes_sent")
CALL_COUNTS = ("attempted", "answered", "failed", "completed", "call_seconds")
TALLIES = ("failed_by_reason", "hangup_by", "close_codes")
ROW_SUMS = ("active", "attempted", "answered", "failed", "frames_sent", "frames_received", "frames_lost")


def build_report(result: RunResult) -> dict[str, Any]:
    stats = result.stats
    scenario = result.scenario
    spans = [((a - result.t0_ns) / 1e9, (b - result.t0_ns) / 1e9) for a, b in stats.call_spans]
    frames = {
        "sent": stats.frames_sent, "received": stats.frames_received, "marked": stats.frames_marked,
        "unmarked": stats.frames_unmarked, "lost": stats.frames_lost, "duplicate": stats.frames_duplicate,
        "reordered": stats.frames_reordered, "crossed": stats.frames_crossed,
        "cut_at_hangup": stats.frames_cut_at_hangup, "skipped": stats.frames_skipped,
    }
    samples = result.samples
    gateway = figures.gateway_figures(
        result.timeline, spans, samples[0].rss_bytes if samples else None,
        samples[-1].cpu_seconds - samples[0].cpu_seconds if len(samples) >= 2 else None,
        scenario.gateway_pid, samples[-1].processes if samples else 0,
    )
    report = {
        "schema": SCHEMA,
        "runs": [result.run_id],
        "scenario": msgspec.to_builtins(scenario),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started_unix)),
        "wall_seconds": round(result.wall_seconds, 2),
        "calls": {
            "attempted": stats.calls_attempted, "answered": stats.calls_answered, "failed": stats.calls_failed,
            "completed": stats.calls_completed, "max_concurrent": max((r["active"] for r in result.timeline),
                                                                       default=0),
            "call_seconds": round(figures.call_seconds(spans), 2), "failed_by_reason": dict(stats.failed_by_reason),
            "hangup_by": dict(stats.hangup_by), "close_codes": dict(stats.close_codes),
        },
        "frames": frames,
        "heartbeats": stats.heartbeats,
        "media_hangup_missed": stats.media_hangup_missed,
        "latency_ms": {"setup": stats.setup.summary_ms(), "round_trip": stats.round_trip.summary_ms(),
                       "upstream": result.media["upstream_ms"] if result.media else None},
        "jitter_ms": {"round_trip": stats.jitter.summary_ms(),
                      "upstream": result.media["upstream_jitter_ms"] if result.media else None},
        "gateway": gateway,
        "media": result.media,
        "generator": {"procs": scenario.procs, "cpu_seconds": round(stats.cpu_seconds, 2),
                      "tick_lag_ms": stats.tick_lag.summary_ms()},
        "machine": {"cores": os.cpu_count(), "busy_cores": result.machine_busy_cores},
        "timeline": result.timeline,
        "notes": list(result.notes),
    }
    _derive(report, scenario.expects_echo)
    return report


def _derive(report: dict[str, Any], expects_echo: bool) -> None:
    """Loss and the warnings that qualify the figures: computed the same way for one run and for a merge."""
    report["loss_ratio"], report["loss_method"] = figures.loss(report["frames"], report["media"], expects_echo)
    report["warnings"] = notes = []
    lag_p99 = report["generator"]["tick_lag_ms"]["p99"]
    report["generator"]["overloaded"] = bool(lag_p99 and lag_p99 > TICK_LAG_OVERLOAD_MS) or bool(
        report["frames"]["skipped"])
    if report["generator"]["overloaded"]:
        notes.append(f"load generator overloaded (timer p99 late by {lag_p99} ms, {report['frames']['skipped']} "
                     "frames skipped): latencies include its own delay; use more --procs or another machine")
    if expects_echo and report["frames"]["sent"] and not report["frames"]["marked"]:
        notes.append("no marked frame came back: the route changes the audio (G.711 or resampling), so "
                     "round-trip latency is not measured and loss is counted from frame counts, which the "
                     "gateway's loss concealment fills in")
    if report["frames"]["crossed"]:
        notes.append(f"{report['frames']['crossed']} frames carried another call's marker: audio crossed calls")
    if report["media_hangup_missed"]:
        notes.append(f"{report['media_hangup_missed']} calls waited in vain for the media side's hangup")


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several generators' reports of the same test (started together, e.g. --start-at)."""
    for report in reports:
        if report.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} report: {report.get('schema')!r}")
    calls: dict[str, Any] = {key: sum(r["calls"][key] for r in reports) for key in CALL_COUNTS}
    calls["call_seconds"] = round(calls["call_seconds"], 2)
    for key in TALLIES:
        calls[key] = dict(sum((Counter(r["calls"][key]) for r in reports), Counter()))
    timeline = _merge_timelines([r["timeline"] for r in reports])
    calls["max_concurrent"] = max((row["active"] for row in timeline), default=0)
    media = _merge_media([r["media"] for r in reports if r["media"]])
    lag = _merged_histogram(r["generator"]["tick_lag_ms"] for r in reports)
    merged = {
        "schema": SCHEMA,
        "runs": [run for r in reports for run in r["runs"]],
        "scenario": reports[0]["scenario"],
        "started_at": min(r["started_at"] for r in reports),
        "wall_seconds": max(r["wall_seconds"] for r in reports),
        "calls": calls,
        "frames": {key: sum(r["frames"][key] for r in reports) for key in reports[0]["frames"]},
        "heartbeats": sum(r["heartbeats"] for r in reports),
        "media_hangup_missed": sum(r["media_hangup_missed"] for r in reports),
        "latency_ms": {
            "setup": _merged_histogram(r["latency_ms"]["setup"] for r in reports).summary_ms(),
            "round_trip": _merged_histogram(r["latency_ms"]["round_trip"] for r in reports).summary_ms(),
            "upstream": media["upstream_ms"] if media else None,
        },
        "jitter_ms": {
            "round_trip": _merged_histogram(r["jitter_ms"]["round_trip"] for r in reports).summary_ms(),
            "upstream": media["upstream_jitter_ms"] if media else None,
        },
        "gateway": _merge_gateway([r["gateway"] for r in reports if r["gateway"]], calls),
        "media": media,
        "generator": {"procs": sum(r["generator"]["procs"] for r in reports),
                      "cpu_seconds": round(sum(r["generator"]["cpu_seconds"] for r in reports), 2),
                      "tick_lag_ms": lag.summary_ms()},
        "machines": [r["machine"] for r in reports],
        "timeline": timeline,
        "notes": [f"{r['runs'][0]}: {note}" for r in reports for note in r["notes"]],
    }
    expects_echo = merged["scenario"].get("media") not in ("sink", "talker")
    _derive(merged, expects_echo)
    return merged


def _merged_histogram(summaries: Any) -> Histogram:
    merged = Histogram()
    for summary in summaries:
        if summary:
            merged.merge(Histogram.from_json(summary["histogram"]))
    return merged


def _merge_timelines(timelines: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows aligned on wall-clock seconds (generators on several machines share no monotonic clock)."""
    by_second: dict[int, dict[str, Any]] = {}
    for rows in timelines:
        for row in rows:
            second = round(row["unix"])
            merged = by_second.setdefault(second, {"unix": second, **dict.fromkeys(ROW_SUMS, 0)})
            for key in ROW_SUMS:
                merged[key] += row[key]
            for key in ("gateway_cpu_pct", "gateway_rss_mib", "gateway_cpu_seconds", "gateway_rss_bytes"):
                if key in row:
                    merged[key] = row[key]
    start = min(by_second, default=0)
    return [{"t": float(second - start), **by_second[second]} for second in sorted(by_second)]


def _merge_gateway(sections: list[dict[str, Any]], calls: dict[str, Any]) -> dict[str, Any] | None:
    """The gateway seen by the generator(s) on its machine, over every generator's call-seconds."""
    if not sections:
        return None
    section = max(sections, key=lambda s: s["cpu_seconds"])  # the one whose window covered the most
    merged = {**section, "call_seconds": calls["call_seconds"], "cpu_ms_per_call_second_steady": None,
              "steady_window_s": None, "peak_calls": calls["max_concurrent"]}
    if calls["call_seconds"]:
        merged["cpu_ms_per_call_second"] = round(1000 * section["cpu_seconds"] / calls["call_seconds"], 4)
    if section["rss_idle_bytes"] is not None and section["rss_peak_bytes"] and calls["max_concurrent"]:
        merged["rss_per_call_bytes"] = round((section["rss_peak_bytes"] - section["rss_idle_bytes"])
                                             / calls["max_concurrent"])
    return merged


def _merge_media(sections: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not sections:
        return None
    merged: dict[str, Any] = {key: sum(s[key] for s in sections) for key in MEDIA_COUNTS}
    merged["kind"] = sections[0]["kind"]
    merged["port"] = sections[0]["port"]
    merged["upstream_ms"] = _merged_histogram(s["upstream_ms"] for s in sections).summary_ms()
    merged["upstream_jitter_ms"] = _merged_histogram(s["upstream_jitter_ms"] for s in sections).summary_ms()
    merged["unclean_streams"] = [stream for s in sections for stream in s["unclean_streams"]][:20]
    return merged
