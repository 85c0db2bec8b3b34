"""The callback port against hostile peers, on the real gateway process (issue 9.4-9.6): idle, slowloris and
crowding connections are closed within their bounds while Sinch's signed callbacks are answered; a signed
callback is accepted once, even across a control-process restart; JSON nested too deep is a 400."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import json
import os
import signal

import pytest

from gateway.control.connection_guard import REQUEST_TIMEOUT
from gateway.core import signing
from tests.e2e.test_control_plane import KEY, SECRET, ice, post
from tests.gateway_process import GatewayProcess, scrape, value

KEEPALIVE = 2.0  # callback_keepalive_timeout in these tests
MAX_CONNECTIONS = 6
SLACK = 1.5  # timers, scheduling and a loaded machine: a close may come this much after its bound


@pytest.fixture(scope="module")
def gateway():
    process = GatewayProcess("--callback-keepalive-timeout", str(KEEPALIVE),
                             "--callback-max-connections", str(MAX_CONNECTIONS),
                             env={"SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": SECRET}).start()
    yield process
    process.stop()


async def seconds_until_closed(reader: asyncio.StreamReader, started: float) -> float:
    """Read until the gateway closes the connection (an RST or a FIN); seconds from `started`."""
    try:
        while await reader.read(4096):
            pass
    except ConnectionResetError:
        pass
    return asyncio.get_running_loop().time() - started


def dropped(gateway: GatewayProcess, reason: str) -> float:
    return value(scrape(gateway), "gateway_callback_connections_dropped_total", reason=reason)


def test_idle_and_slowloris_clients_are_closed_within_their_bounds_while_a_signed_ice_is_answered(gateway):
    before = {reason: dropped(gateway, reason) for reason in ("idle_timeout", "request_timeout")}

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        host, port = "127.0.0.1", gateway.callback_port
        started = loop.time()
        idle_reader, idle_writer = await asyncio.open_connection(host, port)
        slow_reader, slow_writer = await asyncio.open_connection(host, port)
        slow_writer.write(b"POST /sinch/callback HTTP/1.1\r\nHost: gateway\r\n")

        async def trickle() -> None:  # a header byte every 0.2 s, never the blank line that ends them
            with contextlib.suppress(ConnectionError):
                while True:
                    slow_writer.write(b"X")
                    await slow_writer.drain()
                    await asyncio.sleep(0.2)

        trickling = asyncio.create_task(trickle())
        idle_closed = asyncio.create_task(seconds_until_closed(idle_reader, started))
        slow_closed = asyncio.create_task(seconds_until_closed(slow_reader, started))
        status, body = await asyncio.to_thread(post, gateway.callback_url, ice("during-slowloris"))
        assert status == 200 and json.loads(body)["action"]["name"] == "connectStream"
        assert not slow_closed.done()
        assert KEEPALIVE <= await idle_closed <= KEEPALIVE + SLACK
        assert REQUEST_TIMEOUT <= await slow_closed <= REQUEST_TIMEOUT + SLACK
        trickling.cancel()
        for writer in (idle_writer, slow_writer):
            writer.close()

    asyncio.run(scenario())
    for reason in ("idle_timeout", "request_timeout"):
        assert dropped(gateway, reason) >= before[reason] + 1
        event = gateway.wait_for("callback.connection_dropped", reason=reason, requests=0)
        assert event["level"] == "warning"


def test_past_the_connection_cap_the_longest_waiting_connection_makes_room(gateway):
    before = dropped(gateway, "connection_limit")

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        connections = [await asyncio.open_connection("127.0.0.1", gateway.callback_port)
                       for _ in range(MAX_CONNECTIONS)]
        first_closed = asyncio.create_task(seconds_until_closed(connections[0][0], loop.time()))
        status, _ = await asyncio.to_thread(post, gateway.callback_url, ice("over-the-cap"))
        assert status == 200
        assert await first_closed < KEEPALIVE  # pushed out by the ICE's connection, not by its idle bound
        for _, writer in connections:
            writer.close()

    asyncio.run(scenario())
    assert dropped(gateway, "connection_limit") == before + 1
    gateway.wait_for("callback.connection_dropped", reason="connection_limit")


def test_a_keepalive_connection_carries_several_callbacks_then_expires_quietly(gateway):
    connection = http.client.HTTPConnection("127.0.0.1", gateway.callback_port, timeout=5)
    for call_id in ("keepalive-1", "keepalive-2"):
        body = json.dumps(ice(call_id)).encode()
        connection.request("POST", "/sinch/callback", body, signed_headers(body))
        response = connection.getresponse()
        assert (response.status, json.loads(response.read())["action"]["name"]) == (200, "connectStream")
    local_port = connection.sock.getsockname()[1]
    event = gateway.wait_for("callback.connection_dropped", reason="idle_timeout", requests=2)
    assert event["level"] == "info"  # routine for a keep-alive client, unlike a connection that never asked
    assert event["peer"] == f"127.0.0.1:{local_port}"
    connection.close()


def signed_headers(body: bytes) -> dict[str, str]:
    stamp = signing.utc_timestamp()
    return {"Content-Type": "application/json", "x-timestamp": stamp,
            "Authorization": signing.authorization(signing.Signer(signing.APPLICATION, KEY, SECRET), "POST", body,
                                                   "application/json", stamp,
                                                   "/sinch/callback")}


def test_a_replayed_ice_is_refused_even_by_a_new_control_process(gateway):
    stamp = signing.utc_timestamp()  # the same request each time: the same x-timestamp and signature
    before = value(scrape(gateway), "gateway_callbacks_rejected_total", reason="replayed")
    assert post(gateway.callback_url, ice("replayed-ice"), stamp=stamp)[0] == 200
    assert post(gateway.callback_url, ice("replayed-ice"), stamp=stamp) == (
        401, b"replayed: this callback was already accepted\n")
    controls = len(gateway.wait_count("control.listening", 1))
    os.kill(gateway.wait_count("supervisor.spawned", 1, kind="control")[-1]["child_pid"], signal.SIGKILL)
    gateway.wait_count("control.listening", controls + 1, timeout=15)
    assert post(gateway.callback_url, ice("replayed-ice"), stamp=stamp)[0] == 401
    assert value(scrape(gateway), "gateway_callbacks_rejected_total", reason="replayed") == before + 2
    gateway.wait_for("callback.rejected", reason="replayed")


def test_json_nested_a_thousand_levels_deep_is_a_counted_400(gateway):
    before = value(scrape(gateway), "gateway_callbacks_rejected_total", reason="malformed_json")
    body = b'{"event":"ice","callid":"deep","custom":' + b"[" * 1000 + b"]" * 1000 + b"}"
    status, text = post(gateway.callback_url, {}, body=body)
    assert (status, text) == (400, b"malformed_json: not JSON: nested too deeply\n")
    assert value(scrape(gateway), "gateway_callbacks_rejected_total", reason="malformed_json") == before + 1
