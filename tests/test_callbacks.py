"""The callback endpoint's answers, without a socket: signatures, replays and bodies the gateway cannot use."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from multidict import CIMultiDict

from gateway.control.callbacks import CALLBACK_PATH, event_label, respond
from gateway.core import signing
from gateway.shared.config import Config
from gateway.shared.replay import AnsweredAtOnce, ReplayGuard
from tests.aio import run
from tests.sinch_events import incoming_event

KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
NOW = 1_700_000_000.0
SIGNED = Config(sinch_application_key=KEY, sinch_application_secret=SECRET, callback_max_skew=300)


def headers(body: bytes, at: float = NOW, secret: str = SECRET) -> CIMultiDict:
    stamp = signing.utc_timestamp(datetime.fromtimestamp(at, UTC))
    return CIMultiDict({
        "Content-Type": "application/json", "x-timestamp": stamp,
        "Authorization": signing.authorization(signing.Signer(signing.APPLICATION, KEY, secret), "POST", body,
                                               "application/json", stamp, CALLBACK_PATH),
    })


def post(guard: ReplayGuard, event: dict | bytes, at: float = NOW, now: float = NOW,
         config: Config = SIGNED) -> tuple[int, bytes]:
    body = event if isinstance(event, bytes) else json.dumps(event).encode()
    response = run(respond(config, AnsweredAtOnce(guard), "POST", CALLBACK_PATH, headers(body, at), body, now))
    return response.status, response.body or b""


def ice(call_id: str, **extra: object) -> dict:
    return {"event": "ice", "callid": call_id, "to": {"type": "number", "endpoint": "4681"}, **extra}


def test_a_signed_ice_is_answered_once_however_often_it_is_replayed():
    guard = ReplayGuard(capacity=64)
    status, body = post(guard, ice("c-1"))
    assert status == 200 and json.loads(body)["action"]["name"] == "connectStream"
    assert post(guard, ice("c-1"), now=NOW + 299) == (401, b"replayed: this callback was already accepted\n")
    # signed again later, by someone who has the secret: still the same call, no second stream token
    assert post(guard, ice("c-1"), at=NOW + 10, now=NOW + 10)[0] == 401
    assert post(guard, ice("c-2"))[0] == 200


def test_other_callbacks_are_remembered_by_signature():
    guard = ReplayGuard(capacity=64)
    dice = {"event": "dice", "callid": "c-1", "reason": "CALLERHANGUP", "result": "ANSWERED"}
    assert post(guard, dice) == (200, b"")
    assert post(guard, dice, now=NOW + 1)[0] == 401
    assert post(guard, dice, at=NOW + 1, now=NOW + 1) == (200, b"")  # a new signature: another request


def test_a_replay_is_refused_until_its_timestamp_is_stale_and_then_as_stale():
    guard = ReplayGuard(capacity=64)
    assert post(guard, ice("c-1"), at=NOW + 200)[0] == 200  # stamped in the future, within the skew
    assert post(guard, ice("c-1"), at=NOW + 200, now=NOW + 499)[0] == 401  # remembered until stamp + skew
    status, body = post(guard, ice("c-1"), at=NOW + 200, now=NOW + 501)
    assert (status, body.split(b":")[0]) == (401, b"stale")


def test_unverified_callbacks_are_not_remembered():
    guard = ReplayGuard(capacity=64)
    open_config = Config(verify_callbacks=False, sinch_application_secret=SECRET)
    assert post(guard, ice("c-1"), config=open_config)[0] == 200
    assert post(guard, ice("c-1"), config=open_config)[0] == 200


def test_a_body_refused_before_it_was_accepted_can_be_sent_again_fixed():
    guard = ReplayGuard(capacity=64)
    assert post(guard, {"event": "ice"})[0] == 400  # no callid: nothing was remembered
    assert post(guard, ice("c-1"))[0] == 200


@pytest.mark.parametrize("body", [
    b'{"event":"ice","callid":"c","custom":' + b"[" * 1000 + b"]" * 1000 + b"}",
    b"[" * 100_000,
])
def test_json_nested_beyond_the_decoder_is_malformed(body):
    assert post(ReplayGuard(capacity=64), body)[1].startswith(b"malformed_json: ")


def test_header_text_that_is_not_ascii_is_a_signature_error_not_a_crash():
    body = json.dumps(ice("c-1")).encode()
    for name, value in [("Authorization", f"Application {KEY}é:sig"), ("Authorization", f"Application {KEY}:\udcff"),
                        ("Content-Type", "application/json\udcff")]:
        sent = headers(body)
        sent[name] = value
        response = run(respond(SIGNED, AnsweredAtOnce(ReplayGuard(capacity=64)), "POST", CALLBACK_PATH, sent, body,
                               NOW))
        assert response.status == 401


SERVICE = signing.Signer(signing.SERVICE, "service-1", "c2VydmljZS1zZWNyZXQ=")
BOTH = Config(sinch_application_key=KEY, sinch_application_secret=SECRET, sinch_service_id=SERVICE.key,
              sinch_service_secret=SERVICE.secret_b64, callback_max_skew=300)


def post_v2(guard: ReplayGuard, event: dict, at: float = NOW, now: float = NOW) -> tuple[int, bytes]:
    body = json.dumps(event).encode()
    stamp = signing.utc_timestamp(datetime.fromtimestamp(at, UTC))
    sent = CIMultiDict({"Content-Type": "application/json", "x-timestamp": stamp,
                        "Authorization": signing.authorization(SERVICE, "POST", body, "application/json", stamp,
                                                               CALLBACK_PATH)})
    response = run(respond(BOTH, AnsweredAtOnce(guard), "POST", CALLBACK_PATH, sent, body, now))
    return response.status, response.body or b""


def test_a_call_incoming_is_answered_once_however_often_it_is_replayed():
    guard = ReplayGuard(capacity=64)
    status, body = post_v2(guard, incoming_event("in-1"))
    assert status == 200 and json.loads(body)["commands"][0] == {"command": "answer"}
    # signed anew, by someone who has the secret: still the same call, no second stream token
    assert post_v2(guard, incoming_event("in-1"), at=NOW + 10, now=NOW + 10)[1].startswith(b"replayed")
    assert post_v2(guard, incoming_event("in-2"))[0] == 200
    assert post(guard, ice("in-1"), config=BOTH)[0] == 200  # a v1 ICE is another kind of call setup


def test_other_v2_events_are_acknowledged_without_a_body():
    guard = ReplayGuard(capacity=64)
    assert post_v2(guard, incoming_event("in-1") | {"event": "call.hangup"}) == (200, b"")
    assert post_v2(guard, {"event": "call.answered"}) == (200, b"")  # no call: nothing the gateway needs


def test_a_call_incoming_without_a_session_is_400():
    status, body = post_v2(ReplayGuard(capacity=64), incoming_event("in-1", sessionId=""))
    assert (status, body.split(b":")[0]) == (400, b"bad_incoming")


@pytest.mark.parametrize(("name", "label"), [
    ("ice", "ice"), ("call.incoming", "call.incoming"), ("call.amd.machine", "call.amd.machine"),
    ("call.webhook.myevent", "call.webhook"), ("call.nobody-documented-this", "call.other"),
])
def test_event_labels_are_bounded(name, label):
    assert event_label(name) == label
