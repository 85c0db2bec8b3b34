"""The gateway's own view of a bench round, read from its `/metrics` at the end: how long a frame took from
the websocket callback to the RTP `sendto` (the issue's "upstream latency"; the harness's own upstream figure
also holds the load generator's and the echo's scheduling), and how late the worker's event loop ran."""

from __future__ import annotations

import math
from collections import defaultdict
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from loadtest.shared.exposition import scrape

UPSTREAM = "gateway_upstream_latency_seconds"
LOOP_LAG = "gateway_event_loop_lag_seconds"


def bucket_quantile(buckets: dict[float, float], q: float) -> float | None:
    """The upper bound of the histogram bucket that holds quantile `q` (cumulative counts by `le`): a bound
    the true value does not exceed, which is all a histogram can say; None without observations."""
    bounds = sorted(buckets)
    total = buckets[math.inf] if bounds else 0
    if not total:
        return None
    rank = q * total
    return next(le for le in bounds if buckets[le] >= rank)


def histograms(text: str) -> dict[str, dict[float, float]]:
    """Every histogram in a Prometheus exposition, its buckets summed over label sets."""
    found: dict[str, dict[float, float]] = defaultdict(lambda: defaultdict(float))
    for family in text_string_to_metric_families(text):
        if family.type != "histogram":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                found[family.name][float(sample.labels["le"])] += sample.value
    return found


def gateway_own_figures(metrics_url: str) -> dict[str, Any]:
    found = histograms(scrape(metrics_url))
    upstream, lag = found.get(UPSTREAM, {}), found.get(LOOP_LAG, {})

    def ms(buckets: dict[float, float], q: float) -> float | None:
        bound = bucket_quantile(buckets, q)
        return None if bound is None else bound * 1000

    return {
        "upstream_samples": int(upstream.get(math.inf, 0)),
        "upstream_p99_ms_at_most": ms(upstream, 0.99),
        "upstream_p999_ms_at_most": ms(upstream, 0.999),
        "loop_lag_p99_ms_at_most": ms(lag, 0.99),
    }
