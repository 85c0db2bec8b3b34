"""The HdrHistogram log export reads back, with HdrHistogram's own log reader, as the report's figures."""

import random

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader

from loadtest.report.build import build_report
from loadtest.report.hlog import SIGNIFICANT_DIGITS, write_hlogs
from loadtest.report.output import write_outputs
from loadtest.shared.histogram import MAX_VALUE, Histogram
from tests.loadtest.report.synthetic import synthetic_run


def read_back(path) -> HdrHistogram:
    reader = HistogramLogReader(str(path), HdrHistogram(1, MAX_VALUE, SIGNIFICANT_DIGITS))
    histogram = reader.get_next_interval_histogram()
    assert reader.get_next_interval_histogram() is None  # one interval: the whole run
    return histogram


def test_round_trip_latencies_read_back_with_their_percentiles_count_and_extremes(tmp_path):
    rng = random.Random(5)
    rtts = [int(rng.lognormvariate(7.5, 0.8)) for _ in range(5000)]
    report = build_report(synthetic_run("a", 10, rtts, lost=0))
    written = write_hlogs(report, tmp_path)
    assert "hlog/round_trip.hlog" in written and "hlog/setup.hlog" in written
    hdr = read_back(tmp_path / "hlog" / "round_trip.hlog")
    ours = Histogram.from_json(report["latency_ms"]["round_trip"]["histogram"])
    assert hdr.get_total_count() == ours.count == len(rtts)
    assert hdr.get_max_value() == pytest.approx(max(rtts), rel=0.001)  # kept exact (to HDR's 3 digits)
    assert hdr.get_min_value() == pytest.approx(min(rtts), rel=0.001)
    for pct in (50, 90, 99, 99.9):
        assert hdr.get_value_at_percentile(pct) == pytest.approx(ours.percentile(pct), rel=0.035)
    start = hdr.get_start_time_stamp() / 1000
    assert start == pytest.approx(1_700_000_000.0, abs=1)  # absolute timestamps: when the run was
    assert hdr.get_end_time_stamp() / 1000 - start == pytest.approx(report["wall_seconds"])


def test_every_report_directory_gets_its_logs_and_report_md_links_them(tmp_path):
    write_outputs(build_report(synthetic_run("a", 10, [1000] * 100, lost=0)), tmp_path, plots=False)
    assert (tmp_path / "hlog" / "round_trip.hlog").read_text().startswith("#[Histogram log format version")
    assert "(hlog/round_trip.hlog)" in (tmp_path / "report.md").read_text()
