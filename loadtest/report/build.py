"""report.json: the contract other tools read, built from one run; `derive` adds what a merge recomputes the
same way (loss, warnings, the thresholds' verdicts)."""

from __future__ import annotations

import os
import time
from typing import Any

import msgspec

from loadtest.report import figures
from loadtest.runner.run import RunResult
from loadtest.shared.thresholds import Thresholds, judge
from loadtest.sinch.stats import LoadStats

SCHEMA = "loadtest-report/1"
TICK_LAG_OVERLOAD_MS = 5.0  # the generator's timer p99 later than this: its own delay is in the latencies


def build_report(result: RunResult) -> dict[str, Any]:
    stats = result.stats
    scenario = result.scenario
    spans = [((a - result.t0_ns) / 1e9, (b - result.t0_ns) / 1e9) for a, b in stats.call_spans]
    report = {
        "schema": SCHEMA,
        "runs": [result.run_id],
        "scenario": msgspec.to_builtins(scenario),
        "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(result.started_unix)),
        "wall_seconds": round(result.wall_seconds, 2),
        "interrupted": result.interrupted,
        "calls": _calls(stats, result.timeline, spans),
        "frames": _frames(stats),
        "heartbeats": stats.heartbeats,
        "media_hangup_missed": stats.media_hangup_missed,
        "latency_ms": {"setup": stats.setup.summary_ms(), "round_trip": stats.round_trip.summary_ms(),
                       "upstream": result.media["upstream_ms"] if result.media else None},
        "jitter_ms": {"round_trip": stats.jitter.summary_ms(),
                      "upstream": result.media["upstream_jitter_ms"] if result.media else None},
        "receive_gap_ms": stats.receive_gap.summary_ms(),
        "failover": result.failover,
        "gateway": _gateway(result, spans),
        "media": result.media,
        "generator": {"procs": scenario.procs, "cpu_seconds": round(stats.cpu_seconds, 2),
                      "tick_lag_ms": stats.tick_lag.summary_ms()},
        "machine": {"cores": os.cpu_count(), "busy_cores": result.machine_busy_cores},
        "timeline": result.timeline,
        "notes": list(result.notes),
    }
    derive(report, scenario.expects_echo)
    return report


def _calls(stats: LoadStats, timeline: list[dict[str, Any]], spans: list[tuple[float, float]]) -> dict[str, Any]:
    return {
        "attempted": stats.calls_attempted, "answered": stats.calls_answered, "failed": stats.calls_failed,
        "completed": stats.calls_completed, "interrupted": stats.calls_interrupted,
        "max_concurrent": max((r["active"] for r in timeline), default=0),
        "call_seconds": round(figures.call_seconds(spans), 2), "failed_by_reason": dict(stats.failed_by_reason),
        "hangup_by": dict(stats.hangup_by), "close_codes": dict(stats.close_codes),
    }


def _frames(stats: LoadStats) -> dict[str, int]:
    return {
        "sent": stats.frames_sent, "received": stats.frames_received, "marked": stats.frames_marked,
        "unmarked": stats.frames_unmarked, "lost": stats.frames_lost, "duplicate": stats.frames_duplicate,
        "reordered": stats.frames_reordered, "crossed": stats.frames_crossed,
        "cut_at_hangup": stats.frames_cut_at_hangup, "skipped": stats.frames_skipped,
    }


def _gateway(result: RunResult, spans: list[tuple[float, float]]) -> dict[str, Any] | None:
    """The gateway's CPU and memory figures from the samples taken of it (None: it was not measured)."""
    samples = result.samples
    return figures.gateway_figures(
        result.timeline, spans, {"rss": samples[0].rss_bytes if samples else None,
                                 "pss": samples[0].pss_bytes if samples else None},
        samples[-1].cpu_seconds - samples[0].cpu_seconds if len(samples) >= 2 else None,
        result.scenario.gateway_pid, samples[-1].processes if samples else 0,
    )


def derive(report: dict[str, Any], expects_echo: bool) -> None:
    """Loss, the warnings that qualify the figures and the thresholds' verdicts: computed the same way for one
    run and for a merge."""
    report["loss_ratio"], report["loss_method"] = figures.loss(report["frames"], report["media"], expects_echo)
    limits = msgspec.convert(report["scenario"].get("thresholds") or {}, Thresholds)
    report["thresholds"] = judge(limits, report)
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
