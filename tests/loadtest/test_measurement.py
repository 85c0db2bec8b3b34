"""The harness measures what is injected: the real gateway (subprocess) routes calls through the lossy,
delaying relay (subprocess) to the harness's own media echo; the reports must show the injected delay and
loss. Baseline: the same gateway routed straight to the echo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from loadtest.shared.udp import bind_pair
from tests.gateway_process import GatewayProcess

DELAY_MS = 20.0
DROP_EVERY = 10
CALLS = 5
SECONDS = 2.0
HARNESS_TIMEOUT = 60.0
CONTRACT_KEYS = {
    "calls": {"attempted", "answered", "failed"},
    "frames": {"sent", "received"},
    "latency_ms": {"setup", "round_trip", "upstream"},
    "jitter_ms": {"round_trip", "upstream"},
}


def free_pair_port() -> int:
    rtp, rtcp = bind_pair("127.0.0.1", 0)
    port = rtp.getsockname()[1]
    rtp.close()
    rtcp.close()
    return port


class RelayProcess:
    def __init__(self, to_port: int, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "loadtest", "relay", "--listen", "127.0.0.1:0", "--to", f"127.0.0.1:{to_port}",
             "--duration", "120", *args], stdout=subprocess.PIPE, text=True)
        listening = json.loads(self.proc.stdout.readline())  # printed once its sockets are bound
        assert listening["event"] == "relay.listening"
        self.port = listening["port"]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.communicate(timeout=10)


@pytest.fixture(scope="module")
def setup():
    echo_port = free_pair_port()
    delayed = RelayProcess(echo_port, "--delay-ms", str(DELAY_MS))
    lossy = RelayProcess(echo_port, "--drop-every", str(DROP_EVERY))
    gateway = GatewayProcess(
        "--route", f"direct=rtp://127.0.0.1:{echo_port}", "--route", f"delayed=rtp://127.0.0.1:{delayed.port}",
        "--route", f"lossy=rtp://127.0.0.1:{lossy.port}",
    ).start()
    yield gateway, echo_port
    gateway.stop()
    delayed.stop()
    lossy.stop()


def run_harness(setup, route: str, out: Path, *extra: str) -> dict:
    gateway, echo_port = setup
    subprocess.run(
        [sys.executable, "-m", "loadtest", "run", "--url", f"{gateway.url}/stream/{route}", "--calls", str(CALLS),
         "--duration", str(SECONDS), "--media", "echo", "--media-listen", f"127.0.0.1:{echo_port}",
         "--gateway-pid", str(gateway.proc.pid), "--out", str(out), *extra],
        check=True, timeout=HARNESS_TIMEOUT, stdout=subprocess.DEVNULL,
    )
    return json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def direct(setup, tmp_path_factory):
    out = tmp_path_factory.mktemp("direct")
    return out, run_harness(setup, "direct", out)


def test_report_has_the_contract_keys(direct):
    _, report = direct
    for section, keys in CONTRACT_KEYS.items():
        assert keys <= set(report[section]), section
    assert {"loss_ratio", "gateway", "timeline"} <= set(report)
    for name in ("p50", "p99", "p999", "max"):
        assert isinstance(report["latency_ms"]["round_trip"][name], float)
    assert report["gateway"]["cpu_ms_per_call_second"] > 0
    assert report["gateway"]["processes"] >= 2  # supervisor + worker(s): the whole tree is measured
    assert 0 < report["gateway"]["pss_peak_bytes"] < report["gateway"]["rss_peak_bytes"]  # PSS beside RSS
    assert all("gateway_pss_bytes" in row for row in report["timeline"][1:])


def test_plots_are_written(direct):
    pytest.importorskip("matplotlib")  # the `loadtest` extra
    out, _ = direct
    assert (out / "latency.png").stat().st_size > 0
    assert (out / "timeline.png").stat().st_size > 0
    assert "latency.png" in (out / "report.md").read_text()


def test_clean_path_has_no_loss(direct):
    _, report = direct
    calls, frames = report["calls"], report["frames"]
    assert (calls["attempted"], calls["answered"], calls["failed"], calls["completed"]) == (CALLS, CALLS, 0, CALLS)
    assert frames["sent"] >= CALLS * SECONDS / 0.02 * 0.9
    assert frames["marked"] == frames["sent"]
    assert report["loss_ratio"] == 0
    assert report["loss_method"] == "marker"
    assert report["media"]["streams_with_cname"] == CALLS
    assert report["media"]["lost"] == 0


def test_injected_delay_raises_latency_by_that_much(setup, direct, tmp_path):
    _, base = direct
    delayed = run_harness(setup, "delayed", tmp_path, "--no-plots")
    round_trip_rise = delayed["latency_ms"]["round_trip"]["p50"] - base["latency_ms"]["round_trip"]["p50"]
    upstream_rise = delayed["latency_ms"]["upstream"]["p50"] - base["latency_ms"]["upstream"]["p50"]
    assert round_trip_rise == pytest.approx(2 * DELAY_MS, abs=4.0)  # delayed on the way there and back
    assert upstream_rise == pytest.approx(DELAY_MS, abs=2.0)
    assert delayed["loss_ratio"] == 0


def test_injected_loss_is_measured(setup, tmp_path):
    report = run_harness(setup, "lossy", tmp_path, "--no-plots")
    # Every 10th packet dropped on the way up, and every 10th of the echoed ones on the way back.
    expected = 1 - (1 - 1 / DROP_EVERY) ** 2
    assert report["loss_ratio"] == pytest.approx(expected, abs=0.03)
    assert report["loss_method"] == "marker"
    media = report["media"]
    assert media["lost"] / (media["packets"] + media["lost"]) == pytest.approx(1 / DROP_EVERY, abs=0.02)
    assert report["frames"]["unmarked"] > 0  # the gateway concealed the gaps, audio kept flowing
    assert report["calls"]["failed"] == 0


def test_refused_calls_are_failures_by_reason_and_fail_the_run(setup, tmp_path):
    gateway, _ = setup
    run = subprocess.run(
        [sys.executable, "-m", "loadtest", "run", "--url", f"{gateway.url}/stream/nope", "--calls", "3",
         "--duration", "1", "--out", str(tmp_path), "--no-plots"],
        timeout=HARNESS_TIMEOUT, stdout=subprocess.PIPE, text=True,
    )
    assert run.returncode == 1  # no threshold given: a run in which no call was answered fails all the same
    assert "threshold any_answered >= 1: 0 FAILED" in run.stdout
    report = json.loads((tmp_path / "report.json").read_text())
    assert (report["calls"]["attempted"], report["calls"]["answered"], report["calls"]["failed"]) == (3, 0, 3)
    assert report["calls"]["failed_by_reason"] == {"connect:404": 3}
    assert report["loss_ratio"] is None
