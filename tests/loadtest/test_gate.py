"""`python -m loadtest run` as a rollout gate, against the real gateway (subprocess): thresholds from the scenario
file and from flags, printed and written into report.json; distinct exit statuses for a threshold that did not
hold, a run that could not start, bad input and an interrupted run."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.cli import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_NOT_RUN, EXIT_OK, EXIT_USAGE
from tests.gateway_process import GatewayProcess
from tests.ports import free_port_pair

CALLS = 3
HARNESS_TIMEOUT = 60.0


@pytest.fixture(scope="module")
def gateway():
    gateway = GatewayProcess().start()
    yield gateway
    gateway.stop()


def harness(*args: str) -> list[str]:
    return [sys.executable, "-m", "loadtest", "run", "--no-plots", *args]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(harness(*args), timeout=HARNESS_TIMEOUT, capture_output=True, text=True)


def verdicts(out: Path) -> dict[str, bool]:
    report = json.loads((out / "report.json").read_text())
    return {verdict["name"]: verdict["held"] for verdict in report["thresholds"]}


def test_thresholds_from_the_file_and_flags_are_judged_and_one_that_fails_fails_the_run(gateway, tmp_path):
    scenario = tmp_path / "gate.toml"
    scenario.write_text(f'url = "{gateway.url}/stream/echo"\ncalls = {CALLS}\nduration = 1.5\n'
                        "[thresholds]\nmin_answered = 1.0\nmax_rtt_p99_ms = 0.001\nmax_loss = 0.0\n")
    result = run("--scenario", str(scenario), "--max-loss", "0.5", "--max-setup-p99-ms", "5000",
                 "--gateway-pid", str(gateway.proc.pid), "--max-cpu-per-call-ms", "1000", "--out", str(tmp_path))
    assert result.returncode == EXIT_FAILED, result.stderr
    assert verdicts(tmp_path) == {"min_answered": True, "max_rtt_p99_ms": False, "max_loss": True,
                                  "max_setup_p99_ms": True, "max_cpu_per_call_ms": True}
    report = json.loads((tmp_path / "report.json").read_text())
    loss = next(verdict for verdict in report["thresholds"] if verdict["name"] == "max_loss")
    assert loss["limit"] == 0.5  # the flag overrode the file's key, the file's other keys stayed
    assert "threshold max_rtt_p99_ms <= 0.001: " in result.stdout and " FAILED" in result.stdout
    assert "threshold min_answered >= 1.0: 1.0 held" in result.stdout


def test_a_run_whose_thresholds_hold_exits_zero(gateway, tmp_path):
    result = run("--url", f"{gateway.url}/stream/echo", "--calls", str(CALLS), "--duration", "1", "--min-answered",
                 "1", "--max-failed", "0", "--max-rtt-p99-ms", "1000", "--sample-rate", "8000", "--out", str(tmp_path))
    assert result.returncode == EXIT_OK, result.stdout + result.stderr
    assert verdicts(tmp_path) == {"min_answered": True, "max_failed": True, "max_rtt_p99_ms": True}
    assert len(gateway.wait_count("call.answered", CALLS, sample_rate=8000)) == CALLS  # --sample-rate: the audio's


def test_a_run_that_cannot_start_has_its_own_status_and_no_report(gateway, tmp_path):
    port = free_port_pair()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as taken:
        taken.bind(("127.0.0.1", port))  # the media simulator cannot bind its RTP port
        result = run("--url", f"{gateway.url}/stream/echo", "--calls", "1", "--duration", "1", "--media", "echo",
                     "--media-listen", f"127.0.0.1:{port}", "--out", str(tmp_path))
    assert result.returncode == EXIT_NOT_RUN
    assert "could not run" in result.stderr and str(port) in result.stderr
    assert not (tmp_path / "report.json").exists()


@pytest.mark.parametrize(("args", "key"), [
    (("--max-cpu-per-call-ms", "1"), "thresholds.max_cpu_per_call_ms: needs gateway_pid"),
    (("--min-answered", "99"), "thresholds.min_answered"),
    (("--sample-rate", "11025"), "rate: 11025 is not a Sinch rate"),
])
def test_a_threshold_that_cannot_be_judged_or_a_bad_value_is_a_usage_error(tmp_path, args, key):
    result = run("--calls", "1", *args, "--out", str(tmp_path))
    assert result.returncode == EXIT_USAGE
    assert key in result.stderr


def test_an_interrupted_run_is_reported_as_interrupted_not_as_failed_calls(gateway, tmp_path):
    proc = subprocess.Popen(
        harness("--url", f"{gateway.url}/stream/echo", "--calls", str(CALLS), "--duration", "60",
                "--progress-interval", "1", "--min-answered", "1", "--out", str(tmp_path)),
        stdout=subprocess.PIPE, text=True)
    try:
        for line in proc.stdout:  # progress lines, one a second: wait until every call is up
            if f"answered {CALLS}/{CALLS}" in line:
                break
        assert re.search(r"/60\.5 s [#.]{20} +\d+%\]", line)  # elapsed of the planned end (60 s + 0.5 s drain)
        proc.send_signal(signal.SIGINT)
        output = proc.communicate(timeout=HARNESS_TIMEOUT)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == EXIT_INTERRUPTED
    assert "interrupted" in output
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["interrupted"] is True
    calls = report["calls"]
    assert (calls["answered"], calls["interrupted"], calls["failed"]) == (CALLS, CALLS, 0)
    assert calls["failed_by_reason"] == {}
    assert report["wall_seconds"] < 30  # cut short, not run to its planned end
    assert any("interrupted (SIGINT)" in note for note in report["notes"])
