"""Every panel of both dashboards, proven against a live gateway: Debian's Prometheus server scrapes a real
gateway (2 workers, Sinch callbacks signed, stream tokens on, used ones remembered in Debian's redis-server)
every second while the test makes it carry calls and the events the panels count (signed ICE, ACE, PIE, DiCE
and Notify callbacks, an unsigned and a forged one, stream upgrades without a token, with a forged one and with
a used one, a busy answer, a reject, an unknown route, an ignored command, a worker killed with SIGKILL); then
every panel query, with its template variables substituted as Grafana would, must return data through
Prometheus' HTTP API, and the shipped alerting rules must evaluate cleanly."""

from __future__ import annotations

import asyncio
import json
import math
import os
import signal
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets

from gateway.core import signing
from tests.aio import run
from tests.gateway_process import GatewayProcess, stop_process
from tests.grafana.dashboards import (
    LABEL_VALUES,
    LEGEND_LABEL,
    NO_PROMETHEUS,
    PROMETHEUS,
    PROMETHEUS_BIN,
    dashboards,
    declared_metrics,
    exposed_names,
    metrics_in,
    regex_value,
    substitute,
    targets,
    template_variables,
    variable_query,
)
from tests.ports import free_port
from tests.redis_server import RedisServer
from tests.sinch_client import SinchCall, refused_after_upgrade, sine
from tests.sinch_events import ice_event

pytestmark = pytest.mark.skipif(PROMETHEUS_BIN is None, reason=NO_PROMETHEUS)

RATE = 8000
MAX_CALLS = 2  # per worker: the fifth connect at the latest is answered busy
# What Grafana puts for its interval variables: a viewer looking at the last minute, which covers the
# whole scenario (Grafana's own $__rate_interval is at least 4 scrape intervals).
GRAFANA_INTERVALS = {"__rate_interval": "1m", "__interval": "15s", "__range": "5m"}
# Callbacks are signed with the application secret; with a token key every stream upgrade needs the
# single-use token of a signed ICE answer.
APPLICATION_KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
APPLICATION_SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
OTHER_SECRET = "AAAAAAAAAAAAAAAAAAAAAA=="
CLUSTER = "loopback"  # the `cluster` label the scrape adds, as a multi-cluster Prometheus would
GATEWAY_ENV = {"SINCH_APPLICATION_KEY": APPLICATION_KEY, "SINCH_APPLICATION_SECRET": APPLICATION_SECRET,
               "GATEWAY_TOKEN_KEY": "a-stream-token-key-of-32-chars!!"}


class Prometheus:
    """Debian's prometheus server on loopback, scraping one gateway every second with the shipped rules."""

    def __init__(self, directory: Path, gateway: GatewayProcess) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.instance = f"127.0.0.1:{gateway.metrics_port}"
        config = {  # JSON is YAML
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(PROMETHEUS / "alerts.yml")],
            "scrape_configs": [{"job_name": "gateway", "static_configs": [
                {"targets": [self.instance], "labels": {"cluster": CLUSTER}}]}],
        }
        (directory / "prometheus.yml").write_text(json.dumps(config))
        self.log = directory / "prometheus.log"
        with self.log.open("w") as log:
            self.proc = subprocess.Popen(
                [PROMETHEUS_BIN, f"--config.file={directory / 'prometheus.yml'}",
                 f"--storage.tsdb.path={directory / 'data'}", f"--web.listen-address=127.0.0.1:{self.port}"],
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
            )

    def get(self, path: str, **params: str) -> Any:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as response:
            body = json.load(response)
        assert body["status"] == "success", body
        return body["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.get("/api/v1/query", query=expr)
        assert data["resultType"] == "vector", (expr, data)
        return data["result"]

    def wait_until(self, condition: Callable[[], Any], what: str, timeout: float = 20.0) -> Any:
        """Poll Prometheus for a real condition, bounded."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if result := condition():
                    return result
            except (OSError, AssertionError):  # not up yet, or a query over data not there yet
                pass
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"Prometheus: {what} within {timeout} s; its log:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        stop_process(self.proc)


def gateway_samples(gateway: GatewayProcess) -> dict[str, float]:
    """The gateway's own /metrics, summed by sample name."""
    with urllib.request.urlopen(gateway.metrics_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name = line.split("{")[0].split(" ")[0]
            totals[name] = totals.get(name, 0.0) + float(line.rsplit(" ", 1)[1])
    return totals


def post_callback(gateway: GatewayProcess, event: dict, secret: str | None = APPLICATION_SECRET) -> tuple[int, bytes]:
    """POST a callback as Sinch does, signed with `secret` (None: unsigned)."""
    body = json.dumps(event).encode()
    stamp = signing.utc_timestamp()
    headers = {"Content-Type": "application/json", "x-timestamp": stamp}
    if secret is not None:
        headers["Authorization"] = signing.authorization(
            signing.Signer(signing.APPLICATION, APPLICATION_KEY, secret), "POST", body, "application/json", stamp,
            urllib.parse.urlsplit(gateway.callback_url).path)
    request = urllib.request.Request(gateway.callback_url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


async def callback(gateway: GatewayProcess, event: dict, secret: str | None = APPLICATION_SECRET) -> tuple[int, bytes]:
    return await asyncio.to_thread(post_callback, gateway, event, secret)


async def stream_url(gateway: GatewayProcess, call_id: str) -> str:
    """The stream URL (with its single-use token) of a signed ICE's connectStream answer."""
    status, body = await callback(gateway, ice_event(call_id))
    assert status == 200, body
    action = json.loads(body)["action"]
    assert action["name"] == "connectStream", action
    return action["destination"]["endpoint"]


async def hung_up(gateway: GatewayProcess, call_id: str, reason: str = "CALLERHANGUP",
                  result: str = "ANSWERED") -> None:
    """Sinch's DiCE for a call that ended."""
    dice = {"event": "dice", "callid": call_id, "reason": reason, "result": result, "duration": 2}
    assert await callback(gateway, dice) == (200, b"")


async def declined_status(url: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url)
    return info.value.response.status_code


async def answered_or_busy(gateway: GatewayProcess) -> tuple[list[tuple[SinchCall, dict, str]], bool]:
    """Open calls, each on the stream URL of a signed ICE, until one is answered busy (capacity is MAX_CALLS
    per worker): the answered ones with their call.answered log event and stream URL, and whether busy came."""
    answered = []
    for index in range(2 * MAX_CALLS + 1):
        call_id = f"dash-{index}"
        url = await stream_url(gateway, call_id)
        call = await SinchCall.open(url)
        reply = await call.connect(call_id, rate=RATE)
        if reply == {"command": "busy"}:
            await call.closed()
            await hung_up(gateway, call_id, "CALLEEHANGUP", "BUSY")
            return answered, True
        assert reply == {"command": "answer"}
        assert await callback(gateway, {"event": "ace", "callid": call_id}) == (
            200, b'{"action":{"name":"continue"}}')
        event = await asyncio.to_thread(gateway.wait_for, "call.answered", call_id=call_id)
        answered.append((call, event, url))
    return answered, False


async def talk(call: SinchCall, seconds: float) -> None:
    """Real-time audio both ways through the echo route, then a hangup."""
    pcm = sine(RATE, seconds, freq=500)
    sender = asyncio.ensure_future(call.send_paced(pcm, RATE))
    assert await call.receive_audio(len(pcm), timeout=seconds + 10) == pcm
    await sender
    await call.ws.close(1000, "caller hung up")


async def scenario(gateway: GatewayProcess) -> None:
    answered, busy = await answered_or_busy(gateway)
    assert busy and answered
    rejected = await SinchCall.open(await stream_url(gateway, "dash-bad-rate"))
    assert await rejected.connect("dash-bad-rate", rate=12345) == {"command": "reject"}
    await rejected.closed()
    assert await declined_status(gateway.url + "/stream/no-such-route") == 404  # an unknown route
    first, event, first_url = answered[0]
    await first.ws.send(json.dumps({"command": "dtmf", "digit": "5"}))  # ignored, counted
    # Someone else at the control plane: callbacks unsigned and forged, streams without a token, with a
    # forged one (a real token's payload, another MAC) and with one already used.
    assert (await callback(gateway, ice_event("probe-1"), secret=None))[0] == 401
    assert (await callback(gateway, ice_event("probe-2"), secret=OTHER_SECRET))[0] == 401
    assert await declined_status(gateway.url + "/stream/echo") == 401
    base, _, query = (await stream_url(gateway, "probe-3")).partition("?")
    params = urllib.parse.parse_qs(query)
    payload, _, _ = params["token"][0].partition(".")
    forged = urllib.parse.urlencode({**{k: v[0] for k, v in params.items()}, "token": payload + ".AAAA"})
    assert await declined_status(f"{base}?{forged}") == 403
    # replayed: the fleet's store answers after the upgrade, and the gateway closes before answering
    assert await refused_after_upgrade(first_url) == (1008, "replayed token")
    await asyncio.gather(*(talk(call, 2.5) for call, _, _ in answered))
    for _, event, _ in answered:
        await hung_up(gateway, event["call_id"])
    assert await callback(gateway, {"event": "pie", "callid": "dash-0"}) == (200, b'{"action":{"name":"continue"}}')
    assert await callback(gateway, {"event": "notify", "callid": "dash-0", "type": "amd"}) == (200, b"")


async def one_more_call(gateway: GatewayProcess) -> None:
    call = await SinchCall.open(await stream_url(gateway, "dash-after-restart"))
    assert await call.connect("dash-after-restart", rate=RATE) == {"command": "answer"}
    await talk(call, 1.0)
    await hung_up(gateway, "dash-after-restart")  # a second DiCE with the same reason and result: a rate


# Counters the scenario moves last: Prometheus has caught up when it holds their final values.
FINAL_COUNTS = ("gateway_ws_frames_total", "gateway_callbacks_total", "gateway_calls_disconnected_total",
                "gateway_stream_auth_failures_total", "gateway_worker_restarts_total")


@pytest.fixture(scope="module")
def live(tmp_path_factory) -> Iterator[tuple[GatewayProcess, Prometheus]]:
    redis = RedisServer().start()  # the replay store a fleet shares: its metrics and alert are live too
    gateway = GatewayProcess("--max-calls", str(MAX_CALLS), "--replay-store", redis.url, workers=2,
                             env=GATEWAY_ENV)
    prometheus = Prometheus(tmp_path_factory.mktemp("prometheus"), gateway)
    try:
        gateway.start()
        prometheus.wait_until(lambda: prometheus.query('gateway_workers{job="gateway"}'), "first scrape")
        run(scenario(gateway))
        # A worker killed with SIGKILL: a restart, counted; a call on the replacement afterwards.
        workers = [e["pid"] for e in gateway.events if e.get("event") == "worker.listening"]
        os.kill(workers[-1], signal.SIGKILL)
        gateway.wait_count("worker.listening", 3)
        run(one_more_call(gateway))
        gateway.wait_for("call.ended", call_id="dash-after-restart")
        expected = gateway_samples(gateway)
        # Caught up: Prometheus holds the gateway's final counts, and every series, the newest included (a
        # series the gateway creates at its first event, the replacement worker's), has been scraped twice,
        # so rate() over it has the two samples it needs.
        prometheus.wait_until(
            lambda: all([float(s["value"][1]) for s in prometheus.query(f"sum({name})")] == [expected[name]]
                        for name in FINAL_COUNTS)
            and all(prometheus.query(f'min(count_over_time({name}{{job="gateway"}}[1m])) >= 2')
                    for name in prometheus.get("/api/v1/label/__name__/values", **{"match[]": '{job="gateway"}'})),
            "the gateway's final counts scraped",
        )
        yield gateway, prometheus
    finally:
        gateway.stop()
        prometheus.stop()
        redis.stop()


def variable_values(prometheus: Prometheus) -> dict[str, str]:
    """What Grafana substitutes: All for cluster (its allValue), the live gateway's job and instance."""
    return {"cluster": ".*", "job": "gateway", "instance": regex_value(prometheus.instance), "route": "echo",
            **GRAFANA_INTERVALS}


def test_every_panel_query_returns_data(live):
    _, prometheus = live
    values = variable_values(prometheus)
    failures = []
    count = 0
    for name, board in dashboards().items():
        for panel, target in targets(board):
            count += 1
            where = f"{name} / {panel['title']} / {target['refId']}"
            expr = substitute(target["expr"], values)
            try:
                result = prometheus.query(expr)
            except Exception as exc:  # a bad query: Prometheus answers 400
                failures.append(f"{where}: {exc}: {expr}")
                continue
            if not result:
                failures.append(f"{where}: no data: {expr}")
                continue
            for series in result:
                if not math.isfinite(float(series["value"][1])):
                    failures.append(f"{where}: {series['value'][1]} for {series['metric']}: {expr}")
                missing = set(LEGEND_LABEL.findall(target.get("legendFormat", ""))) - set(series["metric"])
                if missing:
                    failures.append(f"{where}: legend labels {missing} not in {series['metric']}")
    assert count >= 55
    assert not failures, "\n".join(failures)


def test_rates_count_the_first_event_of_each_kind(live):
    """The panels show rates: a busy answer, a reject, a declined upgrade, a restart, a
    callback of each kind, a refused callback and a refused stream token that happened in the window must each
    show as more than zero."""
    _, prometheus = live
    uncounted = []
    for selector in ('gateway_calls_total{outcome="busy"}', 'gateway_calls_total{outcome="reject"}',
                     'gateway_upgrades_declined_total{reason="unknown_route"}',
                     'gateway_worker_restarts_total{reason="killed"}',
                     *(f'gateway_callbacks_total{{event="{event}"}}' for event in ("ice", "ace", "dice", "pie",
                                                                                    "notify")),
                     'gateway_callbacks_rejected_total{reason="unsigned"}',
                     'gateway_callbacks_rejected_total{reason="forged"}',
                     *(f'gateway_stream_auth_failures_total{{reason="{reason}"}}'
                       for reason in ("missing_token", "forged_token", "replayed_token"))):
        if not prometheus.query(f"increase({selector}[5m]) > 0"):
            uncounted.append(selector)
    assert not uncounted, f"events that rate() does not see: {uncounted}"


def test_template_variables_list_the_live_gateway(live):
    _, prometheus = live
    for name, board in dashboards().items():
        for variable in template_variables(board):
            if variable["type"] != "query":
                continue
            match = LABEL_VALUES.match(variable_query(variable))
            selector = substitute(match["selector"], variable_values(prometheus))
            found = prometheus.get(f"/api/v1/label/{match['label']}/values", **{"match[]": selector})
            expected = {"cluster": CLUSTER, "job": "gateway", "instance": prometheus.instance,
                        "route": "echo"}[variable["name"]]
            assert expected in found, (name, variable["name"], found)


def test_dashboard_and_alert_metrics_all_exist_live(live):
    """Every metric the dashboards and alerts name is declared by the gateway and scraped from it."""
    _, prometheus = live
    rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
    assert rules
    names = set().union(*(metrics_in(rule["query"]) for rule in rules))
    for board in dashboards().values():
        for _, target in targets(board):
            names |= metrics_in(target["expr"])
    assert names - {"up"} <= exposed_names(declared_metrics())
    scraped = set(prometheus.get("/api/v1/label/__name__/values", **{"match[]": '{job="gateway"}'}))
    assert names <= scraped, f"never scraped: {names - scraped}"


def test_alert_rules_evaluate_and_the_restart_alert_fires(live):
    gateway, prometheus = live

    def evaluated() -> list[dict]:
        rules = [rule for group in prometheus.get("/api/v1/rules")["groups"] for rule in group["rules"]]
        return rules if all(rule["lastEvaluation"] > "2000" for rule in rules) else []

    rules = prometheus.wait_until(evaluated, "every rule evaluated")
    assert {rule["name"] for rule in rules} >= {"GatewayDown", "GatewayWorkerRestarted", "GatewayRtpLoss"}
    for rule in rules:
        assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))
    # The restart counters are created at 0 when the gateway starts: the rule must see the first restart (its
    # `for` is left to the promtool unit tests: pending is enough here).
    firing = prometheus.wait_until(
        lambda: [a for a in prometheus.get("/api/v1/alerts")["alerts"]
                 if a["labels"]["alertname"] == "GatewayWorkerRestarted" and a["state"] in ("pending", "firing")],
        "GatewayWorkerRestarted pending",
    )
    assert [alert["labels"]["reason"] for alert in firing] == ["killed"]
    assert firing[0]["labels"]["instance"] == prometheus.instance
    # A few refused callbacks and stream tokens are not a probe: their alerts stay quiet.
    quiet = {"GatewayDown", "GatewayAbsent", "GatewayNoWorker", "GatewayRtpLoss", "GatewayKernelUdpDrops",
             "GatewayDrainStuck", "GatewayCallbackAuthFailures", "GatewayStreamAuthFailures",
             "GatewayOutOfDescriptors", "GatewayRtpPortsLow", "GatewayNoRtpPort", "GatewayInternalErrors"}
    active = {a["labels"]["alertname"] for a in prometheus.get("/api/v1/alerts")["alerts"]}
    assert not active & quiet, active
    assert gateway.proc.poll() is None
