"""The gateway's own counters, read from its Prometheus `/metrics` (the control process's aggregate over all
workers): what the harness cannot see from outside, such as calls moved between media targets."""

from __future__ import annotations

import urllib.request
from collections import defaultdict

from prometheus_client.parser import text_string_to_metric_families

SCRAPE_TIMEOUT = 5.0


def scrape(metrics_url: str) -> str:
    with urllib.request.urlopen(metrics_url, timeout=SCRAPE_TIMEOUT) as response:
        return response.read().decode()


def counter_by(text: str, name: str, label: str, **only: str) -> dict[str, float]:
    """A counter's totals (`name` without `_total`) summed by one label, over the samples whose other labels
    have the values in `only`."""
    found: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name == name + "_total" and all(sample.labels.get(k) == v for k, v in only.items()):
                found[sample.labels[label]] += sample.value
    return dict(found)
