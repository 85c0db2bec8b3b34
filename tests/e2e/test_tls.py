"""End to end with the gateway terminating TLS itself: Sinch's stream over wss:// and its callbacks over
https://, a plain client refused without harm to the others, and a renewed certificate taken on SIGHUP."""

from __future__ import annotations

import json
import signal
import ssl
import urllib.request
from pathlib import Path

import pytest
import trustme

from tests.aio import run
from tests.gateway_process import GatewayProcess
from tests.sinch_client import SinchCall, frames, sine
from tests.sinch_events import ice_event

RATE = 16000


def issue(ca: trustme.CA, directory: Path) -> tuple[str, str]:
    """A certificate for 127.0.0.1 signed by `ca`, written as a PEM chain and key; their paths."""
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    cert, key = directory / "cert.pem", directory / "key.pem"
    cert.write_bytes(b"".join(pem.bytes() for pem in leaf.cert_chain_pems))
    key.write_bytes(leaf.private_key_pem.bytes())
    return str(cert), str(key)


def client_context(ca: trustme.CA) -> ssl.SSLContext:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    return context


@pytest.fixture
def tls_gateway(tmp_path):
    ca = trustme.CA()
    cert, key = issue(ca, tmp_path)
    gateway = GatewayProcess("--tls-cert", cert, "--tls-key", key)
    gateway.url = gateway.url.replace("ws://", "wss://")
    gateway.callback_url = gateway.callback_url.replace("http://", "https://")
    yield gateway.start(), ca, tmp_path
    gateway.stop()


async def echoed_call(url: str, context: ssl.SSLContext, call_id: str) -> None:
    """One call over `url`: answered, and 0.4 s of audio comes back identical through the echo route."""
    call = await SinchCall.open(url, ssl=context)
    assert await call.connect(call_id, rate=RATE) == {"command": "answer"}
    pcm = sine(RATE, 0.4, freq=700)
    for frame in frames(pcm, RATE):
        await call.ws.send(frame)
    assert await call.receive_audio(len(pcm)) == pcm
    await call.ws.close()


def test_ice_over_https_points_sinch_at_wss_and_the_call_is_bridged(tls_gateway):
    gateway, ca, _ = tls_gateway
    request = urllib.request.Request(gateway.callback_url, data=json.dumps(ice_event("tls-1")).encode(),
                                     headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=5, context=client_context(ca)) as response:
        endpoint = json.loads(response.read())["action"]["destination"]["endpoint"]
    assert endpoint.startswith(f"wss://127.0.0.1:{gateway.port}/stream/echo")
    run(echoed_call(endpoint, client_context(ca), "tls-1"))


def test_a_plaintext_client_is_refused_and_calls_over_tls_go_on(tls_gateway):
    gateway, ca, _ = tls_gateway

    async def scenario() -> None:
        with pytest.raises(Exception):  # noqa: B017 - the TLS listener answers plain HTTP with a TLS alert
            await SinchCall.open(gateway.url.replace("wss://", "ws://") + "/stream/echo", open_timeout=5)
        await echoed_call(gateway.url + "/stream/echo", client_context(ca), "tls-after-plain")

    run(scenario())


def test_sighup_serves_a_renewed_certificate(tls_gateway):
    gateway, old_ca, directory = tls_gateway
    renewed_ca = trustme.CA()
    issue(renewed_ca, directory)  # the same paths, as certbot or cert-manager would renew them
    gateway.proc.send_signal(signal.SIGHUP)
    retired = gateway.wait_for("supervisor.retiring")["child_pid"]
    gateway.wait_for("worker.draining", pid=retired, mode="retire")  # only the new worker accepts now

    async def scenario() -> None:
        with pytest.raises(ssl.SSLCertVerificationError):
            await SinchCall.open(gateway.url + "/stream/echo", ssl=client_context(old_ca))
        await echoed_call(gateway.url + "/stream/echo", client_context(renewed_ca), "tls-renewed")

    run(scenario())
