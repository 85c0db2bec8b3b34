"""PNG plots of a report: the latency distribution, and calls / CPU / latency over time."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from loadtest.shared.histogram import Histogram, bucket_bounds

LATENCY_PNG = "latency.png"
TIMELINE_PNG = "timeline.png"


def write_plots(report: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")  # files only, no display
    import matplotlib.pyplot as plt

    written = []
    series = {name: report["latency_ms"][key] for key, name in
              (("round_trip", "round trip"), ("upstream", "upstream"), ("setup", "call setup"))}
    series = {name: s for name, s in series.items() if s and s["count"]}
    if series:
        fig, (hist_ax, pct_ax) = plt.subplots(1, 2, figsize=(12, 4.5))
        for name, summary in series.items():
            histogram = Histogram.from_json(summary["histogram"])
            xs, ys = [], []
            for index, n in summary["histogram"]["buckets"]:
                low, high = bucket_bounds(index)
                xs.append((low + high) / 2000)
                ys.append(n / histogram.count / ((high - low) / 1000))  # density per ms
            hist_ax.step(xs, ys, where="mid", label=name)
            pcts = [50, 75, 90, 95, 99, 99.5, 99.9, 99.99]
            pct_ax.plot([1 / (1 - p / 100) for p in pcts], [histogram.percentile(p) / 1000 for p in pcts],
                        marker="o", label=name)
        hist_ax.set(xscale="log", yscale="log", xlabel="latency (ms)", ylabel="density (1/ms)",
                    title="latency distribution")
        pct_ax.set(xscale="log", xlabel="percentile", ylabel="latency (ms)", title="latency by percentile")
        pct_ax.set_xticks([2, 10, 100, 1000, 10000], ["p50", "p90", "p99", "p99.9", "p99.99"])
        for ax in (hist_ax, pct_ax):
            ax.grid(True, which="both", alpha=0.3)
            ax.legend()
        fig.tight_layout()
        fig.savefig(out_dir / LATENCY_PNG, dpi=100)
        plt.close(fig)
        written.append(LATENCY_PNG)
    rows = report["timeline"]
    if rows:
        t = [row["t"] for row in rows]
        fig, (calls_ax, rtt_ax) = plt.subplots(2, 1, figsize=(12, 7), sharex=True)
        calls_ax.plot(t, [row["active"] for row in rows], label="active calls", color="tab:blue")
        calls_ax.set(ylabel="active calls", title="calls and gateway CPU over time")
        if any("gateway_cpu_pct" in row for row in rows):
            cpu_ax = calls_ax.twinx()
            cpu_rows = [row for row in rows if "gateway_cpu_pct" in row]
            cpu_ax.plot([row["t"] for row in cpu_rows], [row["gateway_cpu_pct"] for row in cpu_rows],
                        color="tab:red", label="gateway CPU %")
            cpu_ax.set_ylabel("gateway CPU (% of one core)")
            cpu_ax.legend(loc="upper right")
        calls_ax.legend(loc="upper left")
        for key, label in (("rtt_p50_ms", "round trip p50"), ("rtt_p99_ms", "round trip p99")):
            points = [(row["t"], row[key]) for row in rows if row.get(key) is not None]
            if points:  # merged reports have no per-second percentiles
                rtt_ax.plot(*zip(*points, strict=True), label=label)
                rtt_ax.legend(loc="upper left")
        rtt_ax.set(xlabel="seconds", ylabel="ms (per second)")
        rtt_ax.grid(True, alpha=0.3)
        fig.tight_layout()
        fig.savefig(out_dir / TIMELINE_PNG, dpi=100)
        plt.close(fig)
        written.append(TIMELINE_PNG)
    return written
