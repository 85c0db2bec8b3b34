"""`gateway callout ...` against a faithful local stand-in for Sinch's Callouts endpoint, and the stream leg
it creates carried by a real gateway."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from gateway.control.callouts import CalloutClient
from gateway.control.sinch_http import CalloutError
from gateway.shared.config import load_config
from tests.aio import run
from tests.gateway_process import GatewayProcess
from tests.sinch_api_standin import CalloutsStandIn
from tests.sinch_client import SinchCall, sine

KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
TOKEN_KEY = "callout-stream-token-key-0123456"


@pytest.fixture(scope="module")
def standin():
    return CalloutsStandIn(KEY, SECRET).start()


def cli(standin: CalloutsStandIn, *args: str, secret: str = SECRET, extra_env: dict | None = None):
    env = {**os.environ, "SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": secret,
           "GATEWAY_TOKEN_KEY": TOKEN_KEY, "GATEWAY_SINCH_API_BASE": standin.base_url, **(extra_env or {})}
    return subprocess.run([sys.executable, "-m", "gateway", "callout", *args], capture_output=True, text=True,
                          env=env, timeout=30)


def test_conference_callout_is_signed_and_well_formed(standin):
    result = cli(standin, "conference", "--to", "+46700000001", "--conference", "room-1", "--cli", "+46812345")
    assert result.returncode == 0, result.stderr
    assert "callId" in json.loads(result.stdout)
    assert standin.requests[-1] == {"method": "conferenceCallout", "conferenceCallout": {
        "destination": {"type": "number", "endpoint": "+46700000001"}, "conferenceId": "room-1",
        "enableDice": True, "cli": "+46812345"}}


def test_a_wrong_secret_is_refused_with_sinchs_answer(standin):
    result = cli(standin, "conference", "--to", "+4670", "--conference", "r", secret="AAAAAAAAAAAAAAAAAAAAAA==")
    assert result.returncode == 1
    assert "Sinch answered 401" in result.stderr


def test_stream_callout_leg_reaches_the_gateway(standin):
    gateway = GatewayProcess(env={"GATEWAY_TOKEN_KEY": TOKEN_KEY, "SINCH_APPLICATION_KEY": KEY,
                                  "SINCH_APPLICATION_SECRET": SECRET}).start()
    try:
        result = cli(standin, "stream", "--route", "echo", "--rate", "16000", "--conference", "room-1",
                     "--header", "tenant=acme", extra_env={"GATEWAY_PUBLIC_URL": gateway.url})
        assert result.returncode == 0, result.stderr
        callout = standin.requests[-1]["customCallout"]
        assert json.loads(callout["ace"]) == {"action": {"name": "connectConf", "conferenceId": "room-1"}}
        action = json.loads(callout["ice"])["action"]
        assert action["callHeaders"] == [{"key": "tenant", "value": "acme"}]
        endpoint = action["destination"]["endpoint"]

        async def leg() -> None:  # what Sinch does with that ICE: open the stream
            call = await SinchCall.open(endpoint)
            assert await call.connect("sinch-assigned-id", rate=None) == {"command": "answer"}
            pcm = sine(16000, 0.1)
            await call.ws.send(pcm)
            assert await call.receive_audio(len(pcm)) == pcm
            await call.ws.close()

        run(leg())
        assert gateway.wait_for("call.answered", call_id="sinch-assigned-id")["sample_rate"] == 16000
    finally:
        gateway.stop()


def test_python_api_refuses_unknown_routes_and_missing_credentials(standin):
    config = load_config(env={"SINCH_APPLICATION_KEY": KEY, "SINCH_APPLICATION_SECRET": SECRET,
                              "GATEWAY_SINCH_API_BASE": standin.base_url})
    with pytest.raises(CalloutError, match="route 'nope' is not configured"):
        CalloutClient(config).stream("nope")
    with pytest.raises(CalloutError, match="SINCH_APPLICATION_KEY"):
        CalloutClient(load_config(env={}))
