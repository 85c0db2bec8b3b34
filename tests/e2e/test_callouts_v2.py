"""Voice API 2.0 calls (`gateway callout v2`, gateway.control.calls_v2) against the local stand-in for Sinch's
auth and calls endpoints (tests/sinch_v2_standin.py): the OAuth2 token cached until it is about to expire and
renewed when Sinch says it expired, Basic for testing, the bodies, and the stream leg carried by a real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from urllib.parse import parse_qs, urlsplit

import pytest

from gateway.control.calls_v2 import VoiceV2Client
from gateway.control.oauth import RENEW_AT
from gateway.control.sinch_http import CalloutError
from gateway.core import tokens
from gateway.shared.config import load_config
from tests.aio import run
from tests.gateway_process import GatewayProcess
from tests.sinch_client import sine
from tests.sinch_v2_standin import SinchV2StandIn, stream_dials, stream_leg

PROJECT = "project-1"
KEY_ID = "8c6b5a4e-1d2f-4a3b-9c8d-7e6f5a4b3c2d"
KEY_SECRET = "an-access-key-secret"
SERVICE_ID = "service-1"
TOKEN_KEY = "callout-v2-stream-token-key-0123"
LIFETIME = 3600


@pytest.fixture(scope="module")
def standin():
    return SinchV2StandIn(PROJECT, KEY_ID, KEY_SECRET, token_lifetime=LIFETIME).start()


def environment(standin: SinchV2StandIn, **extra: str) -> dict[str, str]:
    return {"SINCH_PROJECT_ID": PROJECT, "SINCH_KEY_ID": KEY_ID, "SINCH_KEY_SECRET": KEY_SECRET,
            "SINCH_SERVICE_ID": SERVICE_ID, "GATEWAY_TOKEN_KEY": TOKEN_KEY, "GATEWAY_VERIFY_CALLBACKS": "false",
            "GATEWAY_SINCH_VOICE_API_BASE": standin.base_url,
            "GATEWAY_SINCH_AUTH_URL": standin.base_url + "/oauth2/token", **extra}


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_token_is_cached_until_it_is_about_to_expire(standin):
    clock = Clock()
    client = VoiceV2Client(load_config(env=environment(standin)), clock=clock)
    fetched = len(standin.tokens)
    client.stream("echo")
    client.stream("echo")
    assert len(standin.tokens) == fetched + 1  # one token for both
    clock.now += LIFETIME * RENEW_AT - 1
    client.stream("echo")
    assert len(standin.tokens) == fetched + 1
    clock.now += 1
    client.stream("echo")
    assert len(standin.tokens) == fetched + 2  # renewed before Sinch would refuse it
    assert [call["auth"] for call in standin.calls[-4:]] == ["Bearer"] * 4
    assert len({call["key"] for call in standin.calls[-4:]}) == 4  # an Idempotency-Key for each request


def test_a_token_sinch_says_expired_is_renewed_and_the_request_sent_again_with_its_key(standin):
    client = VoiceV2Client(load_config(env=environment(standin)))
    client.stream("echo")
    standin.expire_tokens()
    fetched = len(standin.tokens)
    answer = client.stream("echo")
    assert len(standin.tokens) == fetched + 1
    assert standin.expired[-1] == standin.calls[-1]["key"]  # the same request, not a second call
    assert answer == {"projectId": PROJECT, "serviceId": SERVICE_ID, "sessionId": answer["sessionId"]}


def test_basic_authentication_for_testing(standin):
    fetched = len(standin.tokens)
    VoiceV2Client(load_config(env=environment(standin, GATEWAY_SINCH_VOICE_AUTH="basic"))).stream("echo")
    assert (standin.calls[-1]["auth"], len(standin.tokens)) == ("Basic", fetched)


def test_the_bodies_of_a_stream_leg_alone_and_of_a_phone_leg_bridged_to_one(standin):
    client = VoiceV2Client(load_config(env=environment(standin)))
    client.stream("echo", rate=16000, max_duration=300, headers={"tenant": "acme"}, bridge="room-1")
    (dial,) = standin.calls[-1]["body"]["commands"]
    endpoint = dial["to"]["stream"].pop("endpoint")
    assert dial == {"command": "dial", "callName": "stream", "to": {"type": "STREAM", "stream": {
        "streamOptions": {"version": 1, "codec": "PCM", "sampleRate": 16000},
        "callHeaders": [{"key": "tenant", "value": "acme"}]}}, "maxCallDurationSeconds": 300,
        "events": {"onAnswer": [{"command": "bridgeCall", "bridgeName": "room-1"}]}}
    claims = tokens.verify(TOKEN_KEY, parse_qs(urlsplit(endpoint).query)["token"][0], "echo", 0)
    assert (claims.call_id, claims.session, claims.rate) == ("", "", 16000)  # Sinch names the leg

    client.call("+46700000001", "echo", cli="+46812345678", ring_timeout=45)
    (phone,) = standin.calls[-1]["body"]["commands"]
    (stream,) = stream_dials([phone])
    assert phone["to"] == {"type": "PHONE", "phone": {"number": "+46700000001"}}
    assert phone["from"] == {"type": "PHONE", "phone": {"number": "+46812345678"}}
    assert phone["dialTimeoutDurationSeconds"] == 45
    assert phone["events"] == {"onAnswer": [{"command": "bridgeCall", "bridgeName": "gateway"}, stream],
                               "onHangup": [{"command": "hangup", "callName": "stream"}]}
    assert stream["events"]["onAnswer"] == [{"command": "bridgeCall", "bridgeName": "gateway"}]
    for end in ("onBusy", "onReject", "onTimeout", "onFailure", "onHangup"):
        assert stream["events"][end] == [{"command": "hangup", "callName": "phone"}]
    token = parse_qs(urlsplit(stream["to"]["stream"]["endpoint"]).query)["token"][0]
    issued = tokens.verify(TOKEN_KEY, token, "echo", 0)
    assert issued.expires - claims.expires >= 45  # the token lasts the ringing too


def test_refusals_name_what_is_wrong(standin):
    with pytest.raises(CalloutError, match="Sinch answered 401"):
        VoiceV2Client(load_config(env=environment(standin, SINCH_KEY_SECRET="wrong"))).stream("echo")
    with pytest.raises(CalloutError, match="SINCH_PROJECT_ID, SINCH_KEY_ID and SINCH_KEY_SECRET"):
        VoiceV2Client(load_config(env={}))
    client = VoiceV2Client(load_config(env=environment(standin)))
    with pytest.raises(CalloutError, match="route 'nope' is not configured"):
        client.stream("nope")
    with pytest.raises(CalloutError, match="rate 11025"):
        client.stream("echo", rate=11025)
    with pytest.raises(CalloutError, match="at most 255 printable ASCII"):
        client.stream("echo", headers={"k": "é"})


def test_the_command_line_call_reaches_a_phone_and_the_gateway(standin):
    """`gateway callout v2 --to ...`, then the stand-in does what Sinch would once the phone answers: the stream
    leg to the gateway, whose echo route sends the audio back."""
    gateway = GatewayProcess(env={"GATEWAY_TOKEN_KEY": TOKEN_KEY, "GATEWAY_VERIFY_CALLBACKS": "false"}).start()
    try:
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "callout", "v2", "--route", "echo", "--rate", "16000", "--to",
             "+46700000001", "--cli", "+46812345678", "--header", "tenant=acme"],
            capture_output=True, text=True, timeout=30,
            env={**os.environ, **environment(standin, GATEWAY_PUBLIC_URL=gateway.url)})
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout)["sessionId"]
        (dial,) = stream_dials(standin.calls[-1]["body"]["commands"])

        async def sinch() -> None:
            call, reply = await stream_leg(dial, "outbound-stream-1", SERVICE_ID)
            assert reply == {"command": "answer"}
            pcm = sine(16000, 0.1)
            await call.ws.send(pcm)
            assert await call.receive_audio(len(pcm)) == pcm
            await call.ws.close()

        run(sinch())
        assert gateway.wait_for("call.answered", call_id="outbound-stream-1")["sample_rate"] == 16000
    finally:
        gateway.stop()
