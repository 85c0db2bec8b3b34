"""The worker's upgrade router (gateway.dataplane.router), driven with upgrade requests and no sockets."""

from urllib.parse import urlencode

from multidict import CIMultiDict
from picows import WSUpgradeRequest

from gateway.core import tokens
from gateway.shared.config import Route
from gateway.shared.scoreboard import WorkerState
from tests.test_worker import worker


def request(path: str | bytes, version: str | None = "13") -> WSUpgradeRequest:
    upgrade = WSUpgradeRequest()
    upgrade.method, upgrade.version = b"GET", b"HTTP/1.1"
    upgrade.path = path if isinstance(path, bytes) else path.encode()
    upgrade.headers = CIMultiDict({"Upgrade": "websocket"} | ({"Sec-WebSocket-Version": version} if version else {}))
    return upgrade


def status(response) -> int:
    return int(response.response.status)


def test_routing_and_refusals_before_any_socket_is_bound():
    gateway = worker(token_key="k" * 20, verify_callbacks=False)
    gateway.state = WorkerState.SERVING
    assert status(gateway.router.route_request(request("/nowhere"))) == 404
    assert status(gateway.router.route_request(request("/stream/nope"))) == 404
    assert status(gateway.router.route_request(request("/stream/asr?rate=12"))) == 400
    assert status(gateway.router.route_request(request("/stream/asr"))) == 401
    forged = tokens.issue("x" * 20, "c", "asr", 8000, 2**40)
    assert status(gateway.router.route_request(request("/stream/asr?" + urlencode({"token": forged})))) == 403
    issued = tokens.issue("k" * 20, "c", "asr", 8000, 2**40)
    respelled = issued[:-1] + chr(ord(issued[-1]) + 1)  # the same MAC bytes: unused low bits differ
    assert status(gateway.router.route_request(request("/stream/asr?" + urlencode({"token": issued + "="})))) == 401
    assert status(gateway.router.route_request(request("/stream/asr?" + urlencode({"token": respelled})))) in (401, 403)
    gateway.state = WorkerState.DRAINING
    assert status(gateway.router.route_request(request("/stream/asr"))) == 503


def test_a_static_route_token_compares_any_text_safely():
    gateway = worker()
    gateway.routes["asr"] = Route(name="asr", host="127.0.0.1", port=5004, token="route-secret-1234")
    gateway.state = WorkerState.SERVING
    assert status(gateway.router.route_request(request("/stream/asr?token=%C3%A9"))) == 403  # not a 500


def test_request_targets_are_origin_form_only():
    """`//[::1` once got an uncounted 500 and `//evil/stream/echo` reached the echo route (issue 9.7)."""
    gateway = worker()
    gateway.state = WorkerState.SERVING
    assert status(gateway.router.route_request(request(b"//[::1"))) == 400
    assert status(gateway.router.route_request(request(b"http://gw/stream/asr"))) == 400
    assert status(gateway.router.route_request(request(b"//evil/stream/asr"))) == 404


def test_only_websocket_version_13_is_upgraded():
    """RFC 6455 §4.2.2: another version gets 426 naming the one the server speaks; no version is no upgrade."""
    gateway = worker()
    gateway.state = WorkerState.SERVING
    declined = gateway.router.route_request(request("/stream/asr", version="8"))
    assert status(declined) == 426
    assert declined.response.headers["Sec-WebSocket-Version"] == "13"
    assert status(gateway.router.route_request(request("/stream/asr", version=None))) == 400
