"""End to end: a signed ICE in, SVAML out, and a Sinch-like client on the stream URL it gave; stream tokens
and callback signatures refused when forged, expired, replayed or missing."""

from __future__ import annotations

import json
import signal
import time
import urllib.error
import urllib.request
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import websockets

from gateway.core import signing, tokens
from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.sinch_client import SinchCall, frames, sine
from tests.sinch_events import ice_event

KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
TOKEN_KEY = "a-stream-token-key-of-32-chars!!"


@pytest.fixture(scope="module")
def gateway():
    process = GatewayProcess(env={
        "SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": SECRET, "GATEWAY_TOKEN_KEY": TOKEN_KEY,
    }).start()
    yield process
    process.stop()


def post(url: str, event: dict, sign: bool = True, stamp: str | None = None, secret: str = SECRET,
         body: bytes | None = None) -> tuple[int, bytes]:
    body = json.dumps(event).encode() if body is None else body
    stamp = stamp or signing.utc_timestamp()
    headers = {"Content-Type": "application/json", "x-timestamp": stamp}
    if sign:
        headers["Authorization"] = signing.authorization(signing.Signer(signing.APPLICATION, KEY, secret), "POST",
                                                         body, "application/json", stamp,
                                                         "/sinch/callback")
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def ice(call_id: str) -> dict:
    return ice_event(call_id, callHeaders=[{"key": "lang", "value": "sv"}])


def stream_url(gateway: GatewayProcess, call_id: str) -> str:
    status, body = post(gateway.callback_url, ice(call_id))
    assert status == 200
    action = json.loads(body)["action"]
    assert action["name"] == "connectStream"
    assert action["streamingOptions"] == {"version": 1, "sampleRate": 8000}
    return action["destination"]["endpoint"]


async def declined_status(url: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url)
    return info.value.response.status_code


def test_signed_ice_gives_a_stream_url_that_carries_the_call(gateway):
    url = stream_url(gateway, "ice-call-1")
    assert url.startswith(gateway.url + "/stream/echo?")

    async def scenario() -> None:
        call = await SinchCall.open(url)
        assert await call.connect("ice-call-1", rate=None) == {"command": "answer"}
        pcm = sine(8000, 0.4)
        for frame in frames(pcm, 8000):
            await call.ws.send(frame)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()
        assert await declined_status(url) == 403  # the same URL again: a replay

    run(scenario())
    assert gateway.wait_for("call.answered", call_id="ice-call-1")["sample_rate"] == 8000
    token = parse_qs(urlsplit(url).query)["token"][0]
    assert not any(token in line for line in gateway.raw_lines)  # tokens never reach the log


def test_forged_expired_missing_and_malformed_tokens(gateway):
    url = stream_url(gateway, "ice-call-2")
    base, query = url.split("?")
    token = parse_qs(query)["token"][0]
    _, mac = token.split(".")
    other_payload = tokens.issue(TOKEN_KEY, "ice-call-2", "echo", 48000, int(time.time()) + 60).split(".")[0]
    expired = tokens.issue(TOKEN_KEY, "ice-call-2", "echo", 8000, int(time.time()) - 1)
    other_route = tokens.issue(TOKEN_KEY, "ice-call-2", "other", 8000, int(time.time()) + 60)

    async def scenario() -> None:
        assert await declined_status(f"{base}?{urlencode({'token': other_payload + '.' + mac})}") == 403
        assert await declined_status(f"{base}?{urlencode({'token': expired})}") == 403
        assert await declined_status(f"{base}?{urlencode({'token': other_route})}") == 403
        assert await declined_status(base) == 401
        assert await declined_status(f"{base}?token=not-a-token") == 401

    run(scenario())
    samples = scrape(gateway)
    for reason, count in [("forged_token", 1), ("expired_token", 1), ("token_for_another_route", 1),
                          ("missing_token", 1), ("malformed_token", 1)]:
        assert value(samples, "gateway_stream_auth_failures_total", reason=reason) == count


def test_connect_with_another_call_id_is_rejected(gateway):
    url = stream_url(gateway, "ice-call-3")

    async def scenario() -> None:
        call = await SinchCall.open(url)
        assert await call.connect("somebody-else") == {"command": "reject"}
        assert await call.closed() == (1008, "call id does not match the stream token")

    run(scenario())


def test_unsigned_forged_and_stale_callbacks_get_401(gateway):
    before = scrape(gateway)
    assert post(gateway.callback_url, ice("x"), sign=False)[0] == 401
    assert post(gateway.callback_url, ice("x"), secret="AAAAAAAAAAAAAAAAAAAAAA==")[0] == 401
    assert post(gateway.callback_url, ice("x"), stamp="2014-09-24T10:59:41Z")[0] == 401
    assert post(gateway.callback_url, {}, body=b"{oops")[0] == 400
    after = scrape(gateway)
    for reason in ("unsigned", "forged", "stale", "malformed_json"):
        assert value(after, "gateway_callbacks_rejected_total", reason=reason) == value(
            before, "gateway_callbacks_rejected_total", reason=reason) + 1


def test_ace_continues_dice_is_counted_notify_is_acknowledged(gateway):
    status, body = post(gateway.callback_url, {"event": "ace", "callid": "ice-call-1"})
    assert (status, json.loads(body)) == (200, {"action": {"name": "continue"}})
    dice = {"event": "dice", "callid": "ice-call-1", "reason": "CALLERHANGUP", "result": "ANSWERED", "duration": 3}
    assert post(gateway.callback_url, dice) == (200, b"")
    assert post(gateway.callback_url, {"event": "notify", "callid": "ice-call-1", "type": "amd"}) == (200, b"")
    samples = scrape(gateway)
    assert value(samples, "gateway_calls_disconnected_total", reason="CALLERHANGUP", result="ANSWERED") == 1
    assert value(samples, "gateway_callbacks_total", event="dice") == 1
    gateway.wait_for("callback.dice", call_id="ice-call-1", reason="CALLERHANGUP")


def test_static_route_token_for_a_hand_written_ice_handler():
    process = GatewayProcess("--route", "asr=rtp://127.0.0.1:9?token=route-secret-1234").start()

    async def scenario() -> None:
        base = f"{process.url}/stream/asr"
        assert await declined_status(base) == 401
        assert await declined_status(base + "?token=wrong") == 403
        call = await SinchCall.open(base + "?token=route-secret-1234")
        assert await call.connect("static") == {"command": "answer"}
        await call.ws.close()

    try:
        run(scenario())
    finally:
        process.stop()


def test_token_key_rotation_keeps_urls_already_handed_out_working(tmp_path):
    """Rotate token_key with a SIGHUP: a stream URL signed just before the reload still connects while
    token_key_previous holds the old key; new URLs are signed with the new one."""
    new_key = "the-next-stream-token-key-32-ch!"
    key_file = tmp_path / "token_key"
    key_file.write_text(TOKEN_KEY + "\n")
    config = tmp_path / "gateway.toml"
    config.write_text("")
    gateway = GatewayProcess("--config", str(config), env={
        "SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": SECRET, "GATEWAY_TOKEN_KEY_FILE": str(key_file),
    }).start()

    async def answered(url: str, call_id: str) -> bool:
        call = await SinchCall.open(url)
        reply = await call.connect(call_id, rate=None)
        await call.ws.close()
        return reply == {"command": "answer"}

    try:
        handed_out = stream_url(gateway, "rotate-1")  # Sinch has it, but connects only after the reload
        key_file.write_text(new_key + "\n")
        config.write_text(f'token_key_previous = "{TOKEN_KEY}"\n')
        gateway.proc.send_signal(signal.SIGHUP)
        retired = gateway.wait_for("supervisor.retiring")["child_pid"]
        gateway.wait_for("worker.draining", pid=retired, mode="retire")  # only the new worker accepts now
        gateway.wait_count("control.listening", 2)  # and the new control process signs with the new key
        fresh = stream_url(gateway, "rotate-2")
        fresh_token = parse_qs(urlsplit(fresh).query)["token"][0]
        assert tokens.verify(new_key, fresh_token, "echo", time.time())
        assert run(answered(handed_out, "rotate-1"))
        assert run(answered(fresh, "rotate-2"))
        forged = tokens.issue("yet-another-key-nobody-has!", "rotate-3", "echo", 8000, int(time.time()) + 60)
        assert run(declined_status(fresh.split("?")[0] + "?" + urlencode({"token": forged}))) == 403
    finally:
        gateway.stop()
