"""The callback endpoint under hostile requests (bodies and headers, signed and not): an answer of 200, 400 or 401
every time, and a log line that can be written. Event parsing (gateway.control.ice) raises only CallbackError."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st
from multidict import CIMultiDict

from gateway.control import ice
from gateway.control.callbacks import CALLBACK_PATH, respond
from gateway.core import signing
from gateway.shared.config import Config, IceMatch, IceRule, Route
from gateway.shared.logs import JsonFormatter
from gateway.shared.replay import AnsweredAtOnce, ReplayGuard
from tests.aio import run
from tests.fuzz.strategies import (
    any_text,
    batch,
    budget,
    feed,
    json_bytes,
    json_values,
    mostly,
    nested,
    seeds,
    with_mutations,
)

APP_KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
NOW = 1_767_225_600.0  # 2026-01-01
ROUTES = {"asr": Route(name="asr", host="127.0.0.1", port=5004)}
RULES = [IceRule(route="asr", match=IceMatch(to="46*", headers={"lang": "s?"}), forward_headers=["lang", "x"],
                 call_headers={"tenant": "acme"}, max_duration=600)]
CONFIGS = {
    "signed": Config(routes=ROUTES, ice_rules=RULES, sinch_application_key=APP_KEY, sinch_application_secret=SECRET,
                     token_key="a-stream-token-key-of-32-chars!!", ice_no_match="connect"),
    "unverified": Config(routes=ROUTES, ice_rules=RULES, verify_callbacks=False),
}


class StrictJsonHandler(logging.Handler):
    """The production formatter, and a failure to format is the test's failure, not a line on stderr."""

    def __init__(self) -> None:
        super().__init__()
        self.setFormatter(JsonFormatter())
        self.stream = io.StringIO()

    def emit(self, record: logging.LogRecord) -> None:
        self.stream.seek(0)
        self.stream.write(self.format(record))

    def handleError(self, record: logging.LogRecord) -> None:
        raise


@pytest.fixture(scope="module", autouse=True)
def json_logs() -> Iterator[None]:
    logger = logging.getLogger("gateway")
    handler, level, propagate = StrictJsonHandler(), logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False  # pytest's capture would keep every record of every case
    yield
    logger.removeHandler(handler)
    logger.setLevel(level)
    logger.propagate = propagate


EVENT_KEYS = st.sampled_from(["event", "callid", "callId", "to", "endpoint", "cli", "custom", "callHeaders", "key",
                              "value", "reason", "result", "duration", "type"])
anything = json_values(EVENT_KEYS)
headers_list = st.lists(st.fixed_dictionaries({"key": st.sampled_from(["lang", "x"]) | any_text,
                                               "value": st.sampled_from(["sv", "en"]) | any_text}) | anything,
                        max_size=3)
events = st.fixed_dictionaries(
    {"event": mostly(st.sampled_from(["ice", "ICE", "ace", "dice", "pie", "notify", "nope"]), anything),
     "callid": mostly(st.text(max_size=8), anything)},
    optional={"callId": anything,
              "to": st.fixed_dictionaries({"type": st.just("number"), "endpoint": st.sampled_from(["4681", "1"])})
              | anything, "cli": any_text | anything, "custom": any_text | anything, "callHeaders": headers_list,
              "reason": st.sampled_from(["CALLERHANGUP", "TIMEOUT"]) | anything,
              "result": st.sampled_from(["ANSWERED", "BUSY"]) | anything, "duration": anything,
              "type": any_text | anything},
)
bodies = mostly(st.builds(json_bytes, events, st.booleans()), st.binary(max_size=60) | nested(3000))
timestamps = mostly(st.just(signing.utc_timestamp(datetime.fromtimestamp(NOW, UTC))), any_text | st.none())


@st.composite
def requests(draw: st.DrawFn) -> tuple[str, CIMultiDict, bytes]:
    body = draw(bodies)
    content_type = draw(mostly(st.just("application/json"), st.just("") | any_text))
    stamp = draw(timestamps)
    sent = CIMultiDict({"Content-Type": content_type})
    if stamp is not None:
        sent["x-timestamp"] = stamp
    try:
        authorization = signing.authorization(signing.Signer(signing.APPLICATION, APP_KEY, SECRET), "POST", body,
                                              content_type, stamp or "",
                                              CALLBACK_PATH)
    except UnicodeEncodeError:  # a header Sinch cannot have signed
        authorization = "Application " + draw(any_text)
    sent["Authorization"] = draw(mostly(st.just(authorization), st.text(min_size=1) | any_text))
    return draw(st.sampled_from(list(CONFIGS))), sent, body


def answer(case: tuple[str, CIMultiDict, bytes, ReplayGuard]) -> None:
    config, sent, body, guard = case
    response = run(respond(CONFIGS[config], AnsweredAtOnce(guard), "POST", CALLBACK_PATH, sent, body, NOW))
    assert response.status in (200, 400, 401)
    if response.status == 200 and response.body:
        assert json.loads(response.body)["action"]["name"] in ("connectStream", "hangup", "continue")


MUTATIONS = 8


@budget(60)
@given(batch(requests(), 6), seeds)
def test_the_callback_endpoint_answers_every_request_with_200_400_or_401(cases, seed):
    # each request, then its body mutated: unverified, a mutant reaches the event parser
    mutants = iter(with_mutations([body for *_, body in cases], seed, MUTATIONS))
    guard = ReplayGuard(capacity=256)
    feed("callbacks", [(config, sent, next(mutants), guard) for config, sent, _ in cases
                       for _ in range(MUTATIONS + 1)], answer)


def parse(body: bytes) -> None:
    try:
        name, event = ice.parse_event(body)
        call = ice.parse_ice(event) if name == "ice" else None
    except ice.CallbackError as exc:
        assert exc.reason in ("malformed_json", "missing_event", "unknown_event", "bad_ice")
        return
    if call is not None:
        svaml, _ = ice.answer_ice(CONFIGS["signed"], call, NOW)
        assert svaml["action"]["name"] in ("connectStream", "hangup")


@budget(50)
@given(batch(bodies, 10), seeds)
def test_callback_events_raise_only_callback_errors(texts, seed):
    feed("callback events", with_mutations(texts, seed, 30), parse)
