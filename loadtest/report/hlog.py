"""A report's latency histograms in the HdrHistogram log format (`.hlog`), so that HdrHistogram's own tools
(HistogramLogProcessor, HistogramLogAnalyzer, the `hdrh` reader) read them: one file per histogram in
`DIR/hlog/`, one interval covering the whole run (absolute timestamps), values in microseconds.

The report's own histogram is log-linear (3.1 % buckets); each bucket's count goes into the HdrHistogram at the
bucket's midpoint, with the exact minimum and maximum kept, so percentiles read back within that resolution.
The encoding (compressed V2 payload) is the `hdrhistogram` package's."""

from __future__ import annotations

import calendar
import time
from pathlib import Path
from typing import Any

from loadtest.shared.histogram import MAX_VALUE, Histogram, bucket_bounds

HLOG_DIR = "hlog"
SIGNIFICANT_DIGITS = 3
MAX_IN_MS = 1000  # the log line's max column: µs values / 1000
SERIES = {  # file name -> where the histogram is in report.json
    "setup": ("latency_ms", "setup"),
    "round_trip": ("latency_ms", "round_trip"),
    "upstream": ("latency_ms", "upstream"),
    "jitter_round_trip": ("jitter_ms", "round_trip"),
    "jitter_upstream": ("jitter_ms", "upstream"),
    "generator_tick_lag": ("generator", "tick_lag_ms"),
}


def to_hdr(histogram: Histogram) -> Any:
    """The same samples as an `hdrh` HdrHistogram (µs)."""
    from hdrh.histogram import HdrHistogram

    hdr = HdrHistogram(1, MAX_VALUE, SIGNIFICANT_DIGITS)
    for index, count in enumerate(histogram.counts):
        if not count:
            continue
        low, high = bucket_bounds(index)
        for extreme in (histogram.min, histogram.max):  # exact in the report: keep them exact
            if low <= extreme < high and count:
                hdr.record_value(extreme)
                count -= 1
        if count:
            hdr.record_value(min(max((low + high - 1) // 2, histogram.min), histogram.max), count)
    return hdr


def write_hlogs(report: dict[str, Any], out_dir: Path) -> list[str]:
    """The files written, relative to `out_dir`."""
    from hdrh.log import HistogramLogWriter

    start = calendar.timegm(time.strptime(report["started_at"], "%Y-%m-%dT%H:%M:%SZ"))
    end = start + report["wall_seconds"]
    written = []
    for name, (section, key) in SERIES.items():
        summary = (report.get(section) or {}).get(key)
        if not summary or not summary["count"]:
            continue
        hdr = to_hdr(Histogram.from_json(summary["histogram"]))
        path = out_dir / HLOG_DIR / f"{name}.hlog"
        path.parent.mkdir(exist_ok=True)
        with path.open("w") as file:
            writer = HistogramLogWriter(file)
            writer.output_log_format_version()
            writer.output_comment(f"[{name} of loadtest run(s) {', '.join(report['runs'])}, in microseconds]")
            writer.output_legend()
            writer.output_interval_histogram(hdr, start, end, MAX_IN_MS)
        written.append(str(path.relative_to(out_dir)))
    return written
