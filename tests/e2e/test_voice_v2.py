"""End to end, Voice API 2.0: the local stand-in for Sinch (tests/sinch_v2_standin.py) POSTs a call.incoming
signed by the service, holds the gateway's answer to the documented shape, then does what Sinch does with its
STREAM dial: opens the websocket with the spec's connect message and streams audio that must come back. Webhooks
signed wrongly are refused; a stream URL is good once."""

from __future__ import annotations

import json

import pytest
import websockets

from gateway.core import signing
from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.sinch_client import SinchCall, frames, sine
from tests.sinch_events import ice_event, incoming_event
from tests.sinch_v2_standin import check_reply, post_webhook, stream_dials, stream_leg

SERVICE_ID = "0a5e1c2b-9d4f-4c3e-8b7a-1f2e3d4c5b6a"
SERVICE_SECRET = "c2VydmljZS1zZWNyZXQtMDEyMzQ1Njc4OQ=="
APP_KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
APP_SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
TOKEN_KEY = "a-stream-token-key-of-32-chars!!"
SERVICE = signing.Signer(signing.SERVICE, SERVICE_ID, SERVICE_SECRET)
APPLICATION = signing.Signer(signing.APPLICATION, APP_KEY, APP_SECRET)
RULES = """
[[ice_rules]]
route = "echo"
rate = 16000
max_duration = 600
call_headers = { tenant = "acme" }
match = { to = "+4681*" }
"""


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    config = tmp_path_factory.mktemp("v2") / "gateway.toml"
    config.write_text(RULES)
    process = GatewayProcess("--config", str(config), env={
        "SINCH_SERVICE_ID": SERVICE_ID, "SINCH_SERVICE_SECRET": SERVICE_SECRET, "SINCH_APPLICATION_KEY": APP_KEY,
        "SINCH_APPLICATION_SECRET": APP_SECRET, "GATEWAY_TOKEN_KEY": TOKEN_KEY,
    }).start()
    yield process
    process.stop()


def answered(gateway: GatewayProcess, event: dict, signer: signing.Signer = SERVICE) -> dict:
    status, body = post_webhook(gateway.callback_url, event, signer)
    assert status == 200, body
    reply = json.loads(body)
    check_reply(reply)
    return reply


async def declined_status(url: str) -> int:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url)
    return info.value.response.status_code


def test_call_incoming_gets_a_stream_leg_that_carries_the_call_once(gateway):
    reply = answered(gateway, incoming_event("in-1", "session-1", SERVICE_ID))
    (dial,) = stream_dials(reply["commands"])
    stream = dial["to"]["stream"]
    assert stream["endpoint"].startswith(gateway.url + "/stream/echo?")
    assert stream["streamOptions"] == {"version": 1, "codec": "PCM", "sampleRate": 16000}
    assert stream["callHeaders"] == [{"key": "tenant", "value": "acme"}]
    assert dial["maxCallDurationSeconds"] == 600
    # the caller answered and bridged with the stream; either leg's end hangs up the other
    assert reply["commands"][:2] == [{"command": "answer"}, {"command": "bridgeCall", "bridgeName": "gateway"}]
    assert dial["events"]["onAnswer"] == [{"command": "bridgeCall", "bridgeName": "gateway"}]
    assert dial["events"]["onHangup"] == [{"command": "hangup", "callName": reply["callName"]}]
    assert reply["events"]["onHangup"] == [{"command": "hangup", "callName": dial["callName"]}]

    async def sinch() -> None:
        call, connect_reply = await stream_leg(dial, "stream-leg-1", SERVICE_ID)  # a call id of the leg's own
        assert connect_reply == {"command": "answer"}
        pcm = sine(16000, 0.4)
        for frame in frames(pcm, 16000):
            await call.ws.send(frame)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()
        assert await declined_status(stream["endpoint"]) == 403  # the same URL again: a replay

    run(sinch())
    answer = gateway.wait_for("call.answered", call_id="stream-leg-1")
    assert (answer["sample_rate"], answer["headers"]) == (16000, ["tenant"])  # header names only in the log
    gateway.wait_for("callback.call.incoming", call_id="in-1", session_id="session-1", route="echo")


def test_no_matching_rule_hangs_up_the_caller(gateway):
    assert answered(gateway, incoming_event("in-2", "session-2", SERVICE_ID, called="+15550100")) == {
        "commands": [{"command": "hangup"}]}
    gateway.wait_for("callback.call.incoming", call_id="in-2", route="no_match")


def test_unsigned_forged_stale_wrong_service_and_replayed_webhooks_get_401(gateway):
    event = incoming_event("in-3", "session-3", SERVICE_ID)
    before = scrape(gateway)
    cases = [
        ("unsigned", None, None),
        ("forged", signing.Signer(signing.SERVICE, SERVICE_ID, "AAAAAAAAAAAAAAAAAAAAAA=="), None),
        ("stale", SERVICE, "2014-09-24T10:59:41Z"),
        ("wrong_key", signing.Signer(signing.SERVICE, "another-service", SERVICE_SECRET), None),
        # each scheme with its own secret: the application's does not sign as the service
        ("forged", signing.Signer(signing.SERVICE, SERVICE_ID, APP_SECRET), None),
    ]
    for reason, signer, stamp in cases:
        status, body = post_webhook(gateway.callback_url, event, signer, stamp)
        assert (status, body.split(b":")[0]) == (401, reason.encode())
        gateway.wait_for("callback.rejected", reason=reason)
    assert post_webhook(gateway.callback_url, event, SERVICE)[0] == 200
    assert post_webhook(gateway.callback_url, event, SERVICE)[0] == 401  # a second call.incoming for the call
    after = scrape(gateway)
    for reason, count in [("unsigned", 1), ("forged", 2), ("stale", 1), ("wrong_key", 1), ("replayed", 1)]:
        assert value(after, "gateway_callbacks_rejected_total", reason=reason) == value(
            before, "gateway_callbacks_rejected_total", reason=reason) + count


def test_voice_api_1_and_2_side_by_side(gateway):
    """Both secrets configured: an ICE signed by the application, a call.incoming by the service or by the
    application, each checked with its own secret."""
    ice = ice_event("v1-call", to={"type": "number", "endpoint": "+46812345678"})  # the same rules route both
    status, body = post_webhook(gateway.callback_url, ice, APPLICATION)
    assert (status, json.loads(body)["action"]["name"]) == (200, "connectStream")
    assert stream_dials(answered(gateway, incoming_event("in-4", "session-4", SERVICE_ID), APPLICATION)["commands"])


def test_other_v2_events_are_acknowledged_and_counted_by_type(gateway):
    before = scrape(gateway)
    for name in ("call.answered", "call.hangup", "call.webhook.myEvent", "call.future"):
        event = incoming_event("in-5", "session-5", SERVICE_ID) | {"event": name}
        assert post_webhook(gateway.callback_url, event, SERVICE) == (200, b"")
    after = scrape(gateway)
    for label in ("call.answered", "call.hangup", "call.webhook", "call.other"):
        assert value(after, "gateway_callbacks_total", event=label) == value(
            before, "gateway_callbacks_total", event=label) + 1
    gateway.wait_for("callback.call.hangup", call_id="in-5", session_id="session-5")


def test_a_connect_with_another_codec_is_rejected_with_the_reason(gateway):
    (dial,) = stream_dials(answered(gateway, incoming_event("in-6", "session-6", SERVICE_ID))["commands"])

    async def sinch() -> tuple[dict, tuple[int, str]]:
        call = await SinchCall.open(dial["to"]["stream"]["endpoint"])
        reply = await call.connect("stream-leg-6", rate=16000, applicationKey=SERVICE_ID, codec="OPUS")
        return reply, await call.closed()

    assert run(sinch()) == ({"command": "reject"}, (1008, "connect: codec 'OPUS' unsupported (PCM only)"))
