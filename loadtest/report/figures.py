"""The derived figures: gateway CPU per call-second, RSS and PSS per call, concurrency, loss; pure functions over
what a run collected, so merged reports recompute them the same way."""

from __future__ import annotations

from typing import Any

MEMORY_KINDS = ("rss", "pss")  # resident set size; proportional set size (shared pages divided among sharers)
STEADY_SHARE = 0.95  # rows with at least this share of the peak concurrency count as steady state
MIN_STEADY_ROWS = 2


def call_seconds(spans: list[tuple[float, float]], start: float | None = None, end: float | None = None) -> float:
    """Answered call time, optionally clipped to [start, end] (seconds on the spans' clock)."""
    total = 0.0
    for begin, finish in spans:
        if start is not None:
            begin = max(begin, start)
        if end is not None:
            finish = min(finish, end)
        total += max(0.0, finish - begin)
    return total


def steady_window(rows: list[dict[str, Any]]) -> tuple[int, int] | None:
    """Row indexes (a, b) bounding the longest stretch at (near) peak concurrency, its ramp-up and
    ramp-down rows trimmed: the state a capacity figure should describe. None when too short."""
    peak = max((row["active"] for row in rows), default=0)
    if not peak:
        return None
    best: tuple[int, int] | None = None
    start = None
    for i, row in enumerate([*rows, {"active": -1}]):
        if row["active"] >= STEADY_SHARE * peak:
            start = i if start is None else start
        elif start is not None:
            a, b = start + 1, i - 2  # trim the first and last row: they straddle ramp-up and hang-ups
            if b - a >= MIN_STEADY_ROWS and (best is None or b - a > best[1] - best[0]):
                best = (a, b)
            start = None
    return best


def gateway_figures(rows: list[dict[str, Any]], spans: list[tuple[float, float]], idle: dict[str, int | None],
                    total_cpu: float | None, pid: int, processes: int) -> dict[str, Any] | None:
    """`rows` carry the gateway's cumulative CPU seconds, RSS and PSS at each second of the run (from t=0);
    `idle`: its RSS and PSS before the first call."""
    measured = [row for row in rows if "gateway_cpu_seconds" in row]
    if total_cpu is None or not measured:
        return None
    seconds = call_seconds(spans)
    peak = max(row["active"] for row in rows)
    figures: dict[str, Any] = {
        "pid": pid, "processes": processes, "cpu_seconds": round(total_cpu, 3), "call_seconds": round(seconds, 2),
        "cpu_ms_per_call_second": round(1000 * total_cpu / seconds, 4) if seconds else None,
        "cpu_ms_per_call_second_steady": None, "steady_window_s": None,
        "peak_calls": peak,
    }
    window = steady_window(measured)
    if window:
        first, last = measured[window[0]], measured[window[1]]
        steady_seconds = call_seconds(spans, first["t"], last["t"])
        if steady_seconds:
            cpu = last["gateway_cpu_seconds"] - first["gateway_cpu_seconds"]
            figures["cpu_ms_per_call_second_steady"] = round(1000 * cpu / steady_seconds, 4)
            figures["steady_window_s"] = [first["t"], last["t"]]
    for kind in MEMORY_KINDS:
        at_peak = [row[f"gateway_{kind}_bytes"] for row in measured
                   if row["active"] == peak and f"gateway_{kind}_bytes" in row]
        figures[f"{kind}_idle_bytes"] = idle[kind]
        figures[f"{kind}_peak_bytes"] = max(at_peak) if at_peak else None
        figures[f"{kind}_per_call_bytes"] = per_call_bytes(figures[f"{kind}_peak_bytes"], idle[kind], peak)
    return figures


def per_call_bytes(peak_bytes: int | None, idle_bytes: int | None, peak_calls: int) -> int | None:
    """(memory at peak concurrency - memory before the first call) / calls at peak: includes one-time warm-up."""
    if peak_bytes is None or idle_bytes is None or not peak_calls:
        return None
    return round((peak_bytes - idle_bytes) / peak_calls)


def loss(frames: dict[str, int], media: dict[str, Any] | None, expects_echo: bool) -> tuple[float | None, str]:
    """(loss ratio, how it was measured). Markers give exact per-frame loss; without them (G.711 or a
    resampling route) the gateway's concealment fills gaps, so counts understate loss."""
    if expects_echo and frames["marked"]:
        considered = frames["sent"] - frames["cut_at_hangup"]
        return (round(frames["lost"] / considered, 6) if considered else None), "marker"
    if expects_echo and frames["sent"]:
        return round(max(0, frames["sent"] - frames["received"]) / frames["sent"], 6), "count"
    if media and media["packets"]:
        return round(media["lost"] / (media["packets"] + media["lost"]), 6), "media_upstream"
    return None, "none"
