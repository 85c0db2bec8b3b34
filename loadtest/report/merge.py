"""Several runs' reports merged into one (generators started together on several machines): counts summed,
latency percentiles recomputed from the stored histograms (so a merge is exact), timelines aligned on
wall-clock seconds."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Any

from loadtest.report import figures
from loadtest.report.build import SCHEMA, derive
from loadtest.shared.histogram import Histogram

MEDIA_COUNTS = ("streams", "streams_with_cname", "streams_ended_by_bye", "packets", "bytes", "lost", "gaps",
                "duplicates", "reordered", "timestamp_errors", "talked", "echoed", "malformed", "rtcp_packets",
                "byes_received", "byes_sent")
CALL_COUNTS = ("attempted", "answered", "failed", "completed", "interrupted", "call_seconds")
TALLIES = ("failed_by_reason", "hangup_by", "close_codes")
ROW_SUMS = ("active", "attempted", "answered", "failed", "frames_sent", "frames_received", "frames_lost")
GATEWAY_KEYS = ("gateway_cpu_pct", "gateway_cpu_seconds", "gateway_rss_mib", "gateway_rss_bytes", "gateway_pss_mib",
                "gateway_pss_bytes")


def merge_reports(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report from several generators' reports of the same test (started together, e.g. --start-at)."""
    for report in reports:
        if report.get("schema") != SCHEMA:
            raise ValueError(f"not a {SCHEMA} report: {report.get('schema')!r}")
    timeline = _merge_timelines([r["timeline"] for r in reports])
    calls = _merge_calls([r["calls"] for r in reports], timeline)
    media = _merge_media([r["media"] for r in reports if r["media"]])
    merged = {
        "schema": SCHEMA,
        "runs": [run for r in reports for run in r["runs"]],
        "scenario": reports[0]["scenario"],
        "started_at": min(r["started_at"] for r in reports),
        "wall_seconds": max(r["wall_seconds"] for r in reports),
        "interrupted": any(r.get("interrupted") for r in reports),  # (reports before it was counted lack it)
        "calls": calls,
        "frames": {key: sum(r["frames"][key] for r in reports) for key in reports[0]["frames"]},
        "heartbeats": sum(r["heartbeats"] for r in reports),
        "media_hangup_missed": sum(r["media_hangup_missed"] for r in reports),
        "latency_ms": {
            "setup": _merged_summary(r["latency_ms"]["setup"] for r in reports),
            "round_trip": _merged_summary(r["latency_ms"]["round_trip"] for r in reports),
            "upstream": media["upstream_ms"] if media else None,
        },
        "jitter_ms": {
            "round_trip": _merged_summary(r["jitter_ms"]["round_trip"] for r in reports),
            "upstream": media["upstream_jitter_ms"] if media else None,
        },
        "receive_gap_ms": _merged_summary(r.get("receive_gap_ms") for r in reports),
        # One outage of the gateway's targets, seen by each run that read its metrics: the first one's view.
        "failover": next((r["failover"] for r in reports if r.get("failover")), None),
        "gateway": _merge_gateway([r["gateway"] for r in reports if r["gateway"]], calls),
        "media": media,
        "generator": _merge_generators([r["generator"] for r in reports]),
        "machines": [r["machine"] for r in reports],
        "timeline": timeline,
        "notes": [f"{r['runs'][0]}: {note}" for r in reports for note in r["notes"]],
    }
    expects_echo = merged["scenario"].get("media") not in ("sink", "talker")
    derive(merged, expects_echo)
    return merged


def _merge_timelines(timelines: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Rows aligned on wall-clock seconds (generators on several machines share no monotonic clock).

    A report has a row a second and a last, partial one that may fall in the same second as the one before:
    each report gives a second its latest row, so nothing counts twice. A report without a row of its own at
    a second counts as it stood at its latest row before (none before it started); once it ended, with its
    totals but no active calls. Seconds that no report covers get no row: the plots break their lines there."""
    by_report = [{round(row["unix"]): row for row in rows} for rows in timelines if rows]  # the latest row wins
    ends = [max(rows) for rows in by_report]
    latest: list[dict[str, Any] | None] = [None] * len(by_report)
    seconds = sorted(set().union(*by_report))
    merged_rows = []
    for second in seconds:
        merged = {"unix": second, **dict.fromkeys(ROW_SUMS, 0)}
        for i, rows in enumerate(by_report):
            own = rows.get(second)
            row = latest[i] = own or latest[i]
            if row is None:
                continue
            for key in ROW_SUMS:
                merged[key] += row[key]
            if second > ends[i]:
                merged["active"] -= row["active"]  # that run is over
            for key in GATEWAY_KEYS:
                if own and key in own:
                    merged[key] = own[key]
        merged_rows.append(merged)
    start = seconds[0] if seconds else 0
    return [{"t": float(row["unix"] - start), **row} for row in merged_rows]


def _merge_calls(sections: list[dict[str, Any]], timeline: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts and tallies summed; the peak of concurrent calls read from the merged timeline, where the runs'
    calls add up second by second."""
    calls: dict[str, Any] = {key: sum(s.get(key, 0) for s in sections) for key in CALL_COUNTS}
    calls["call_seconds"] = round(calls["call_seconds"], 2)
    for key in TALLIES:
        calls[key] = dict(sum((Counter(s[key]) for s in sections), Counter()))
    calls["max_concurrent"] = max((row["active"] for row in timeline), default=0)
    return calls


def _merge_media(sections: list[dict[str, Any]]) -> dict[str, Any] | None:
    if not sections:
        return None
    merged: dict[str, Any] = {key: sum(s[key] for s in sections) for key in MEDIA_COUNTS}
    merged["kind"] = sections[0]["kind"]
    merged["port"] = sections[0]["port"]
    merged["upstream_ms"] = _merged_summary(s["upstream_ms"] for s in sections)
    merged["upstream_jitter_ms"] = _merged_summary(s["upstream_jitter_ms"] for s in sections)
    merged["unclean_streams"] = [stream for s in sections for stream in s["unclean_streams"]][:20]
    return merged


def _merge_gateway(sections: list[dict[str, Any]], calls: dict[str, Any]) -> dict[str, Any] | None:
    """The gateway seen by the generator(s) on its machine, over every generator's call-seconds."""
    if not sections:
        return None
    section = max(sections, key=lambda s: s["cpu_seconds"])  # the one whose window covered the most
    merged = {**section, "call_seconds": calls["call_seconds"], "cpu_ms_per_call_second_steady": None,
              "steady_window_s": None, "peak_calls": calls["max_concurrent"]}
    if calls["call_seconds"]:
        merged["cpu_ms_per_call_second"] = round(1000 * section["cpu_seconds"] / calls["call_seconds"], 4)
    for kind in figures.MEMORY_KINDS:
        merged[f"{kind}_per_call_bytes"] = figures.per_call_bytes(
            section.get(f"{kind}_peak_bytes"), section.get(f"{kind}_idle_bytes"), calls["max_concurrent"])
    return merged


def _merge_generators(sections: list[dict[str, Any]]) -> dict[str, Any]:
    return {"procs": sum(s["procs"] for s in sections),
            "cpu_seconds": round(sum(s["cpu_seconds"] for s in sections), 2),
            "tick_lag_ms": _merged_summary(s["tick_lag_ms"] for s in sections)}


def _merged_summary(summaries: Iterable[dict[str, Any] | None]) -> dict[str, Any]:
    """The percentiles of several summaries, from their stored histograms (exact, unlike averaging percentiles)."""
    merged = Histogram()
    for summary in summaries:
        if summary:
            merged.merge(Histogram.from_json(summary["histogram"]))
    return merged.summary_ms()
