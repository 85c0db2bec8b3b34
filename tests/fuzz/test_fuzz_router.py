"""The worker's router under hostile upgrade requests (request target, query, Sec-WebSocket-Version), driven as
tests/test_worker.py does: never an exception, never a 500, only the statuses its contract names."""

from __future__ import annotations

from urllib.parse import quote, quote_from_bytes

from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict
from picows import WSUpgradeRequest

from gateway.core import tokens
from gateway.dataplane.media import CallAdapter
from gateway.dataplane.worker import Worker
from gateway.shared.config import Config, Route
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import Scoreboard, WorkerState
from tests.fuzz.strategies import any_text, batch, budget, feed, mostly, seeds, with_mutations

TOKEN_KEY = "a-stream-token-key-of-32-chars!!"
STATUSES = {101, 200, 400, 401, 403, 404, 426, 503}  # 200: GET /healthz
ROUTES = {"asr": Route(name="asr", host="127.0.0.1", port=5004),
          "bot": Route(name="bot", host="127.0.0.1", port=5006, token="route-secret-1234")}
WORKER = Worker(Config(routes=ROUTES, token_key=TOKEN_KEY, verify_callbacks=False, rtp_host="127.0.0.1"), 0,
                Scoreboard(), ReplayGuard())

valid_tokens = st.builds(  # unexpired for ever; each one single-use, so a second draw of one is a replay
    lambda call_id, route, rate: tokens.issue(TOKEN_KEY, call_id, route, rate, 2**40),
    st.text(max_size=3), st.sampled_from(["asr", "bot"]), st.sampled_from([8000, 16000, 7]))
token_values = st.one_of(valid_tokens, valid_tokens, st.just("route-secret-1234"), any_text)
encoded = st.binary(max_size=8).map(quote_from_bytes).map(str.encode)  # any bytes, percent-encoded
query_values = st.one_of(
    token_values.map(lambda token: quote(token, safe="", errors="surrogatepass").encode()),
    st.sampled_from([b"8000", b"16000", b"11025", b"", b"-1", b"%", b"%zz", b"%ff", b"1e3"]), encoded,
)
parameters = st.builds(lambda key, val: key + b"=" + val, st.sampled_from([b"token", b"rate", b"x", b""]), query_values)
@st.composite
def well_formed(draw: st.DrawFn) -> bytes:
    """Half the targets reach the routing decisions: a /stream/ path, often with a token valid for its route."""
    route = draw(st.sampled_from(["asr", "bot", "echo", "ASR"]))
    valid = tokens.issue(TOKEN_KEY, draw(st.text(max_size=3)), route, draw(st.sampled_from([8000, 7])), 2**40)
    params = [b"token=" + quote(valid).encode()] if draw(st.booleans()) else []
    params += draw(st.lists(parameters, max_size=2))
    return f"/stream/{route}?".encode() + b"&".join(params)


odd = st.builds(lambda *parts: b"".join(parts),
                st.sampled_from([b"/stream//", b"//", b"/", b"", b"*", b"http://gw/stream/", b"/healthz",
                                 b"//evil/stream/", b"//[::1", b"/%2e%2e/stream/", b"/stream/%", b"/stream/"]),
                st.sampled_from([b"asr", b"asr/", b"as%72", b""]) | encoded,
                st.binary(max_size=12).map(lambda data: b"?" + data) | st.just(b"")) | st.binary(max_size=40)
targets = well_formed() | odd
versions = mostly(st.just("13"), st.sampled_from([None, "8", "13, 8", " 13", ""]) | any_text)


def route(case: tuple[bytes, str | None, WorkerState]) -> None:
    target, version, state = case
    upgrade = WSUpgradeRequest()
    upgrade.method, upgrade.version, upgrade.path = b"GET", b"HTTP/1.1", target
    upgrade.headers = CIMultiDict({"Upgrade": "websocket"} | ({"Sec-WebSocket-Version": version} if version else {}))
    WORKER.state = state
    result = WORKER.router.route_request(upgrade)
    if isinstance(result, CallAdapter):
        result.rtp.close()
        result.rtcp.close()
        return
    assert int(result.response.status) in STATUSES


@budget(150)
@given(batch(targets, 10), batch(versions, 10), st.sampled_from([WorkerState.SERVING] * 4 + [WorkerState.DRAINING]),
       seeds)
def test_the_router_answers_every_upgrade_with_a_status_of_its_contract(paths, headers, state, seed):
    feed("router", [(target, version, state) for target, version in
                    zip(with_mutations(paths, seed, 3), [v for v in headers for _ in range(4)], strict=True)], route)
