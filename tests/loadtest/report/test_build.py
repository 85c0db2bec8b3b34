"""report.json from a synthetic run (no sockets): the contract keys and the derived figures."""

import json

import pytest

from loadtest.report.build import build_report
from loadtest.report.output import read_report, write_outputs
from tests.loadtest.report.synthetic import synthetic_run


def test_report_has_the_contract_keys_and_derived_figures(tmp_path):
    report = build_report(synthetic_run("a", 10, [1000] * 90, lost=10))
    assert {"attempted", "answered", "failed"} <= set(report["calls"])
    assert {"sent", "received"} <= set(report["frames"])
    assert report["loss_ratio"] == pytest.approx(0.1)
    assert report["loss_method"] == "marker"
    assert report["latency_ms"]["round_trip"]["p50"] == pytest.approx(1.0, rel=0.02)
    assert report["latency_ms"]["upstream"]["p99"] == pytest.approx(0.3, rel=0.02)
    assert {"round_trip", "upstream"} <= set(report["jitter_ms"])
    gateway = report["gateway"]
    assert gateway["cpu_seconds"] == pytest.approx(1.0)
    assert gateway["call_seconds"] == pytest.approx(100.0)
    assert gateway["cpu_ms_per_call_second"] == pytest.approx(10.0)  # 1 CPU s over 10 calls x 10 s
    assert gateway["cpu_ms_per_call_second_steady"] == pytest.approx(10.0)
    assert gateway["rss_per_call_bytes"] == 40 * 1024
    assert gateway["pss_per_call_bytes"] == 30 * 1024
    json.dumps(report)  # all plain JSON
    write_outputs(report, tmp_path, plots=False)
    assert read_report(tmp_path) == json.loads(json.dumps(report))
    assert "10 ms CPU per call-second" in (tmp_path / "report.md").read_text()
    assert "**30 KiB per call**" in (tmp_path / "report.md").read_text()  # PSS beside RSS
