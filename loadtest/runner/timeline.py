"""The run's timeline: one row a second from the generators' progress messages and the gateway's /proc
samples, and the live progress line drawn from it."""

from __future__ import annotations

import time
from typing import Any

from loadtest.shared.histogram import Histogram, since
from loadtest.shared.procstat import Usage, tree_usage

ROW_NS = 1_000_000_000  # one timeline row per second
ROW_LAG_NS = 200_000_000  # rows come this long after the generators' per-second progress, to include it
BAR_WIDTH = 20


class Timeline:
    """Per-second rows from the generators' progress messages and the gateway samples."""

    def __init__(self, t0: int, procs: int, gateway_pid: int) -> None:
        self.t0 = t0
        self.gateway_pid = gateway_pid
        self.latest: list[dict[str, Any] | None] = [None] * procs
        self.rows: list[dict[str, Any]] = []
        self.samples: list[Usage] = []
        self._last_rtt = Histogram()
        self.next_row = t0 + ROW_NS + ROW_LAG_NS

    def sample_gateway(self) -> None:
        if self.gateway_pid and (usage := tree_usage(self.gateway_pid)) is not None:
            self.samples.append(usage)

    def add_row(self, now: int) -> dict[str, Any]:
        self.next_row += ROW_NS
        self.sample_gateway()
        snaps = [snap for snap in self.latest if snap is not None]
        total = {key: sum(snap[key] for snap in snaps) for key in
                 ("active", "attempted", "answered", "failed", "frames_sent", "frames_received", "frames_lost")}
        rtt = Histogram()
        for snap in snaps:
            rtt.merge(Histogram.from_json(snap["round_trip"]))
        interval = since(rtt, self._last_rtt)
        self._last_rtt = rtt
        row: dict[str, Any] = {"t": round((now - self.t0) / 1e9, 2), "unix": round(time.time(), 2), **total,
                               "rtt_p50_ms": _ms(interval.percentile(50)), "rtt_p99_ms": _ms(interval.percentile(99))}
        if len(self.samples) >= 2 and self.samples[-1].at_ns > self.samples[-2].at_ns:
            last, before = self.samples[-1], self.samples[-2]
            row["gateway_cpu_pct"] = round(100 * (last.cpu_seconds - before.cpu_seconds)
                                           / ((last.at_ns - before.at_ns) / 1e9), 1)
            row["gateway_rss_mib"] = round(last.rss_bytes / 2**20, 1)
            row["gateway_cpu_seconds"] = round(last.cpu_seconds - self.samples[0].cpu_seconds, 2)
            row["gateway_rss_bytes"] = last.rss_bytes
            if last.pss_bytes is not None:
                row["gateway_pss_mib"] = round(last.pss_bytes / 2**20, 1)
                row["gateway_pss_bytes"] = last.pss_bytes
        self.rows.append(row)
        return row


def _ms(value_us: float | None) -> float | None:
    return None if value_us is None else round(value_us / 1000, 2)


def progress_line(row: dict[str, Any], total_seconds: float) -> str:
    """Elapsed of the planned total with a bar, then the live figures of the last second."""
    share = min(1.0, row["t"] / total_seconds) if total_seconds > 0 else 1.0
    filled = round(share * BAR_WIDTH)
    line = (f"[{row['t']:6.1f}/{total_seconds:.1f} s {'#' * filled}{'.' * (BAR_WIDTH - filled)} {share:4.0%}] "
            f"calls active {row['active']} answered {row['answered']}/{row['attempted']} failed {row['failed']} | "
            f"frames tx {row['frames_sent']} rx {row['frames_received']} lost {row['frames_lost']} | "
            f"rtt p50 {row['rtt_p50_ms']} p99 {row['rtt_p99_ms']} ms")
    if "gateway_cpu_pct" in row:
        line += f" | gateway cpu {row['gateway_cpu_pct']}% rss {row['gateway_rss_mib']} MiB"
        if "gateway_pss_mib" in row:
            line += f" pss {row['gateway_pss_mib']} MiB"
    return line
