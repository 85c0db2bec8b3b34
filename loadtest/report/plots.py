"""PNG plots of a report: the latency distribution, and calls, gateway CPU, round trip and gateway memory over
time. Each carries the run's title, URL and start time; linear axes start at zero; the gateway's panels
appear only when it was measured (`--gateway-pid`); lines break where no row covers a stretch of time (a
gap between merged runs) rather than drawing across it."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

from loadtest.shared.histogram import Histogram, bucket_bounds

LATENCY_PNG = "latency.png"
TIMELINE_PNG = "timeline.png"
GAP_SECONDS = 1.5  # rows come a second apart: further apart than this, the line breaks
PERCENTILES = (50, 75, 90, 95, 99, 99.5, 99.9, 99.99)


def write_plots(report: dict[str, Any], out_dir: Path) -> list[str]:
    plt = _pyplot()
    written = []
    for name, figure in ((LATENCY_PNG, latency_figure(report)), (TIMELINE_PNG, timeline_figure(report))):
        if figure is not None:
            figure.savefig(out_dir / name, dpi=100)
            plt.close(figure)
            written.append(name)
    return written


def title(report: dict[str, Any]) -> str:
    scenario = report["scenario"]
    return f"{scenario['name']} ({', '.join(report['runs'])}): {scenario['url']}, {report['started_at']}"


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    return plt


def latency_figure(report: dict[str, Any]) -> Any:
    """Distribution (log-log: latencies span decades) and percentile spectrum; None without samples."""
    series = {name: report["latency_ms"][key] for key, name in
              (("round_trip", "round trip"), ("upstream", "upstream"), ("setup", "call setup"))}
    series = {name: s for name, s in series.items() if s and s["count"]}
    if not series:
        return None
    fig, (hist_ax, pct_ax) = _pyplot().subplots(1, 2, figsize=(12, 4.8))
    for name, summary in series.items():
        histogram = Histogram.from_json(summary["histogram"])
        xs, ys = [], []
        for index, n in summary["histogram"]["buckets"]:
            low, high = bucket_bounds(index)
            xs.append((low + high) / 2000)
            ys.append(n / histogram.count / ((high - low) / 1000))  # density per ms
        hist_ax.step(xs, ys, where="mid", label=name)
        pct_ax.plot([1 / (1 - p / 100) for p in PERCENTILES], [histogram.percentile(p) / 1000 for p in PERCENTILES],
                    marker="o", label=name)
    hist_ax.set(xscale="log", yscale="log", xlabel="latency (ms)", ylabel="density (1/ms)",
                title="latency distribution")
    pct_ax.set(xscale="log", xlabel="percentile", ylabel="latency (ms)", title="latency by percentile")
    pct_ax.set_ylim(bottom=0)
    pct_ax.set_xticks([2, 10, 100, 1000, 10000], ["p50", "p90", "p99", "p99.9", "p99.99"])
    for ax in (hist_ax, pct_ax):
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    fig.suptitle(title(report))
    fig.tight_layout()
    return fig


def timeline_figure(report: dict[str, Any]) -> Any:
    """Calls (and gateway CPU), round trip, gateway memory, per second; None without rows. Panels without
    data are left out: the gateway's without --gateway-pid, the round trip's in a merge (per-second
    percentiles do not merge)."""
    rows = report["timeline"]
    if not rows:
        return None
    measured = any("gateway_cpu_pct" in row for row in rows)
    has_rtt = any(row.get("rtt_p50_ms") is not None for row in rows)
    panels = 1 + has_rtt + measured
    fig, axes = _pyplot().subplots(panels, 1, figsize=(12, 1 + 3 * panels), sharex=True, squeeze=False)
    axes = list(axes[:, 0])
    calls_ax = axes[0]
    _line(calls_ax, rows, "active", "active calls", color="tab:blue")
    calls_ax.set(ylabel="active calls", title="calls and gateway CPU" if measured else "calls")
    calls_ax.legend(loc="upper left")
    if has_rtt:
        rtt_ax = axes[1]
        for key, label in (("rtt_p50_ms", "round trip p50"), ("rtt_p99_ms", "round trip p99")):
            _line(rtt_ax, rows, key, label)
        rtt_ax.set(ylabel="ms (per second)", title="round trip")
        rtt_ax.legend(loc="upper left")
    if measured:
        cpu_ax = calls_ax.twinx()
        _line(cpu_ax, rows, "gateway_cpu_pct", "gateway CPU %", color="tab:red")
        cpu_ax.set(ylabel="gateway CPU (% of one core)")
        cpu_ax.set_ylim(bottom=0)
        cpu_ax.legend(loc="upper right")
        memory_ax = axes[-1]
        _line(memory_ax, rows, "gateway_pss_mib", "PSS (shared pages divided)")
        _line(memory_ax, rows, "gateway_rss_mib", "RSS (summed over processes)")
        memory_ax.set(ylabel="gateway memory (MiB)", title="gateway memory")
        memory_ax.legend(loc="upper left")
    for ax in axes:
        ax.set_ylim(bottom=0)
        ax.grid(True, alpha=0.3)
    axes[-1].set(xlabel="seconds")
    fig.suptitle(title(report))
    fig.tight_layout()
    return fig


def _line(ax: Any, rows: list[dict[str, Any]], key: str, label: str, **style: Any) -> None:
    """The rows that have `key`, with a break (NaN) where consecutive ones are further apart than a gap."""
    ts: list[float] = []
    values: list[float] = []
    for row in rows:
        if row.get(key) is None:
            continue
        if ts and row["t"] - ts[-1] > GAP_SECONDS:
            ts.append((ts[-1] + row["t"]) / 2)
            values.append(math.nan)
        ts.append(row["t"])
        values.append(row[key])
    if ts:
        ax.plot(ts, values, label=label, **style)
