"""The failover scenario against the real gateway: a route of two media targets (the harness's own echo
simulators), the first stopped mid-run and started again; the report counts the gateway's failovers and shows
that no call ended early and the callers kept receiving frames (loadtest/scenarios/failover.toml)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess
from tests.loadtest.test_measurement import HARNESS_TIMEOUT, free_pair_port

SCENARIO = Path(__file__).parents[2] / "loadtest" / "scenarios" / "failover.toml"
CALLS = 4  # round robin: two on each target
KILL_AT, RESTART_AT = 1.5, 3.0


def test_a_target_killed_mid_run_moves_its_calls_and_none_drops(tmp_path):
    ports = [free_pair_port(), free_pair_port()]
    targets = [f"127.0.0.1:{port}" for port in ports]
    gateway = GatewayProcess("--route", f"pool=rtp://{','.join(targets)}", "--target-probe-interval", "0.2").start()
    try:
        run = subprocess.run(
            [sys.executable, "-m", "loadtest", "run", "--scenario", str(SCENARIO),
             "--url", f"{gateway.url}/stream/pool", "--media-listen", ",".join(targets),
             "--metrics-url", f"{gateway.metrics_url}/metrics",
             "--calls", str(CALLS), "--churn-rate", "0", "--duration", "4", "--kill-target-at", str(KILL_AT),
             "--restart-target-at", str(RESTART_AT), "--no-plots", "--out", str(tmp_path)],
            timeout=HARNESS_TIMEOUT, stdout=subprocess.PIPE, text=True)
        gateway.wait_for("target.up", target=targets[0])  # the restarted simulator answers the gateway's probe
    finally:
        gateway.stop()
    assert run.returncode == 0, run.stdout  # the scenario's thresholds held
    report = json.loads((tmp_path / "report.json").read_text())
    failover = report["failover"]
    assert failover["failovers"] == CALLS // 2
    assert failover["failovers_by_target"] == {targets[0]: CALLS // 2, targets[1]: 0}
    assert failover["stopped_at_s"] == pytest.approx(KILL_AT, abs=0.2)
    assert failover["restarted_at_s"] == pytest.approx(RESTART_AT, abs=0.2)
    calls = report["calls"]
    assert (calls["answered"], calls["completed"], calls["failed"]) == (CALLS, CALLS, 0)
    assert report["receive_gap_ms"]["count"] == CALLS
    assert report["receive_gap_ms"]["max"] < 1000  # issue 15: moved in under a second, frames paced throughout
    assert report["media"]["streams"] == CALLS + CALLS // 2  # the moved calls reached the other one, new SSRCs
    assert "**2 calls moved**" in (tmp_path / "report.md").read_text()
