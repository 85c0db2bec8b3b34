import math

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from loadtest.bench.gateway_metrics import UPSTREAM, bucket_quantile, histograms


def exposition(observations: dict[str, list[float]]) -> str:
    """What a gateway's /metrics says after these observations, per worker label, written by prometheus-client."""
    registry = CollectorRegistry()
    histogram = Histogram(UPSTREAM, "test", ["worker"], buckets=(0.0001, 0.001, 0.01), registry=registry)
    for worker, values in observations.items():
        for value in values:
            histogram.labels(worker).observe(value)
    return generate_latest(registry).decode()


def test_buckets_are_summed_over_label_sets_and_the_quantile_is_a_bucket_bound():
    found = histograms(exposition({"0": [0.00005] * 98, "1": [0.0005, 0.005]}))[UPSTREAM]
    assert found[math.inf] == 100
    assert found[0.0001] == 98
    assert bucket_quantile(found, 0.98) == 0.0001
    assert bucket_quantile(found, 0.99) == 0.001
    assert bucket_quantile(found, 0.999) == 0.01


def test_no_observations_no_quantile():
    assert bucket_quantile(histograms(exposition({"0": []}))[UPSTREAM], 0.99) is None
    assert bucket_quantile({}, 0.99) is None
