"""End to end: gateways sharing a replay store (Debian's redis-server, started and stopped here). A stream token
or a signed ICE is accepted once whichever gateway it reaches; while the store is down, replay_store_unavailable
holds (fail_closed: close 1013, then 503 at once; fail_open: answered and counted), and calls are answered again
once it is back. Instance-bound tokens (instance_id) are refused by any other instance."""

from __future__ import annotations

import json
import time
from urllib.parse import urlsplit

import pytest

from gateway.core import tokens
from tests.aio import run
from tests.e2e.test_control_plane import KEY, SECRET, TOKEN_KEY, declined_status, ice, post, stream_url
from tests.gateway_process import GatewayProcess, scrape, value
from tests.raw_websocket import TEXT, RawWebsocket, frame
from tests.redis_server import RedisServer
from tests.sinch_client import SinchCall, frames, refused_after_upgrade, sine

CREDENTIALS = {"SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": SECRET, "GATEWAY_TOKEN_KEY": TOKEN_KEY}


@pytest.fixture
def redis():
    server = RedisServer().start()
    yield server
    server.stop()


def gateway_on(redis: RedisServer, *args: str) -> GatewayProcess:
    return GatewayProcess("--replay-store", redis.url, *args, env=CREDENTIALS).start()


def token_url(gateway: GatewayProcess, call_id: str) -> str:
    token = tokens.issue(TOKEN_KEY, call_id, "echo", 8000, int(time.time()) + 60)
    return f"{gateway.url}/stream/echo?token={token}"


async def echoed(url: str, call_id: str) -> None:
    """A call on `url` is answered and its audio comes back bit-exact."""
    call = await SinchCall.open(url)
    assert await call.connect(call_id, rate=None) == {"command": "answer"}
    pcm = sine(8000, 0.2)
    for chunk in frames(pcm, 8000):
        await call.ws.send(chunk)
    assert await call.receive_audio(len(pcm)) == pcm
    await call.ws.close()


def test_a_token_and_a_signed_ice_are_accepted_once_across_gateways(redis):
    first, second = gateway_on(redis), gateway_on(redis)
    try:
        url = stream_url(first, "shared-1")  # a signed ICE to the first gateway
        path = urlsplit(url)._replace(scheme="", netloc="").geturl()
        run(echoed(url, "shared-1"))
        assert run(refused_after_upgrade(second.url + path)) == (1008, "replayed token")
        assert run(refused_after_upgrade(url)) == (1008, "replayed token")
        assert post(second.callback_url, ice("shared-1")) == (401, b"replayed: this callback was already accepted\n")
        samples = scrape(second)
        assert value(samples, "gateway_stream_auth_failures_total", reason="replayed_token") == 1
        assert value(samples, "gateway_callbacks_rejected_total", reason="replayed") == 1
        # on the first gateway: the ICE (its control process), the stream's first use and its replay
        assert value(scrape(first), "gateway_replay_store_claim_seconds_count") == 3
    finally:
        first.stop()
        second.stop()


def test_fail_closed_refuses_calls_while_the_store_is_down_and_recovers(redis):
    gateway = gateway_on(redis)
    try:
        run(echoed(token_url(gateway, "before"), "before"))
        redis.stop()
        # the first claim finds the store gone: closed before any answer; from then on, 503 at the upgrade
        assert run(refused_after_upgrade(token_url(gateway, "down-1"))) == (1013, "replay store unavailable")
        gateway.wait_for("replay_store.unavailable", process="worker")
        assert run(declined_status(token_url(gateway, "down-2"))) == 503
        assert value(scrape(gateway), "gateway_replay_store_up", process="worker") == 0
        redis.start()
        gateway.wait_for("replay_store.available", process="worker")
        run(echoed(token_url(gateway, "after"), "after"))
        samples = scrape(gateway)
        assert value(samples, "gateway_replay_store_unavailable_total", process="worker", outcome="refused") == 2
        assert value(samples, "gateway_upgrades_declined_total", reason="replay_store_unavailable") == 1
        assert value(samples, "gateway_replay_store_up", process="worker") == 1
    finally:
        gateway.stop()


def test_fail_open_answers_calls_unchecked_while_the_store_is_down(redis):
    gateway = gateway_on(redis, "--replay-store-unavailable", "fail_open")
    try:
        redis.stop()
        run(echoed(token_url(gateway, "open-1"), "open-1"))  # the claim fails: answered unchecked
        gateway.wait_for("replay_store.unavailable", process="worker", policy="fail_open")
        run(echoed(token_url(gateway, "open-2"), "open-2"))  # known down: answered at once
        samples = scrape(gateway)
        assert value(samples, "gateway_replay_store_unavailable_total", process="worker", outcome="accepted") == 2
    finally:
        gateway.stop()


def test_a_connect_sent_before_the_101_is_answered_busy_while_the_claim_is_under_way(redis):
    """A client that does not wait for the upgrade's answer gets no call on a token not yet claimed."""
    gateway = gateway_on(redis)
    try:
        async def scenario() -> None:
            target = urlsplit(token_url(gateway, "eager"))
            connect = frame(TEXT, json.dumps({"command": "connect", "callId": "eager"}).encode())
            ws = await RawWebsocket.open(gateway.port, f"{target.path}?{target.query}", pipelined=connect)
            assert ws.status == 101
            assert await ws.read_frame() == (TEXT, b'{"command":"busy"}')
            ws.close()

        run(scenario())
    finally:
        gateway.stop()


def test_an_instance_bound_token_is_refused_by_another_instance():
    """instance_id: the token of an ICE answered by one instance names it; another instance refuses it (403)
    before claiming anything, and the instance that issued it answers the call."""
    first = GatewayProcess("--instance-id", "gw-1", env=CREDENTIALS).start()
    second = GatewayProcess("--instance-id", "gw-2", env=CREDENTIALS).start()
    try:
        url = stream_url(first, "bound-1")
        path = urlsplit(url)._replace(scheme="", netloc="").geturl()
        assert run(declined_status(second.url + path)) == 403
        assert value(scrape(second), "gateway_stream_auth_failures_total", reason="token_for_another_instance") == 1
        run(echoed(url, "bound-1"))  # not spent by the refusal
    finally:
        first.stop()
        second.stop()
