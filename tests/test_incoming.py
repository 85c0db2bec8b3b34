"""Voice API 2.0's call.incoming, parsed and answered without a socket; the events are ones Sinch's SDK parses,
the replies ones the stand-in (tests/sinch_v2_standin.py) holds to the documented shape."""

from urllib.parse import parse_qs, urlsplit

import pytest
from sinch.domains.voice.api.v2.sinch_events import SinchEvents

from gateway.control import incoming
from gateway.control.ice import CallbackError, Ice
from gateway.core import tokens
from gateway.shared.config import Config, IceMatch, IceRule, Route
from tests.sinch_events import incoming_event
from tests.sinch_v2_standin import check_reply, stream_dials

KEY = "t" * 32
ASR = Route(name="asr", host="127.0.0.1", port=5004)
SIP_TO = {"type": "SIP", "sip": {"endpoint": "sip:+46812345678@pbx.example", "callHeaders": [
    {"key": "lang", "value": "sv"}, {"key": "x-flag"}]}}
CONFIG = Config(routes={"asr": ASR}, public_url="wss://gw.example.com", token_key=KEY, verify_callbacks=False,
                ice_rules=[IceRule(route="asr", rate=16000, max_duration=900, match=IceMatch(headers={"lang": "sv"}),
                                   forward_headers=["lang", "x-flag"], call_headers={"tenant": "acme"})])


def test_the_events_here_are_ones_sinchs_sdk_parses():
    for event in (incoming_event(), incoming_event(to=SIP_TO)):
        assert SinchEvents().parse_event(event).call.session_id == "session-1"


def test_a_phone_call_and_a_sip_call_as_the_rules_see_them():
    phone = incoming.parse_incoming(incoming_event())
    assert phone == incoming.Incoming(
        call=Ice(call_id="in-1", to="+46812345678", cli="+46700000001", custom="", headers={}),
        session_id="session-1", service_id="service-1")
    sip = incoming.parse_incoming(incoming_event(to=SIP_TO))
    assert (sip.call.to, sip.call.headers) == ("sip:+46812345678@pbx.example", {"lang": "sv", "x-flag": ""})


def test_the_answer_dials_a_stream_whose_token_names_the_session():
    reply, route = incoming.answer_incoming(CONFIG, incoming.parse_incoming(incoming_event(to=SIP_TO)), now=1000)
    check_reply(reply)
    (dial,) = stream_dials(reply["commands"])
    stream = dial["to"]["stream"]
    endpoint = urlsplit(stream["endpoint"])
    assert (route, endpoint.scheme, endpoint.netloc, endpoint.path) == ("asr", "wss", "gw.example.com", "/stream/asr")
    assert parse_qs(endpoint.query)["rate"] == ["16000"]
    claims = tokens.verify(KEY, parse_qs(endpoint.query)["token"][0], "asr", 1000)
    assert claims == tokens.Claims(call_id="", route="asr", rate=16000, expires=1060, session="session-1")
    assert stream["callHeaders"] == [{"key": "lang", "value": "sv"}, {"key": "x-flag", "value": ""},
                                     {"key": "tenant", "value": "acme"}]
    assert dial["maxCallDurationSeconds"] == 900


def test_no_match_hangs_up_and_connect_goes_to_ice_route():
    call = incoming.parse_incoming(incoming_event())
    assert incoming.answer_incoming(CONFIG, call, 0) == ({"commands": [{"command": "hangup"}]}, "no_match")
    config = Config(routes={"asr": ASR}, ice_rules=CONFIG.ice_rules, ice_no_match="connect", ice_rate=24000)
    reply, route = incoming.answer_incoming(config, call, 0)
    check_reply(reply)
    assert (route, stream_dials(reply["commands"])[0]["to"]["stream"]["streamOptions"]["sampleRate"]) == ("asr", 24000)


@pytest.mark.parametrize(("event", "message"), [
    ({"event": "call.incoming"}, "without a \"call\" object"),
    (incoming_event(callId=""), "without call.callId and call.sessionId"),
    (incoming_event(sessionId=None), "without call.callId and call.sessionId"),
    (incoming_event(to={"type": "SIP", "sip": {"callHeaders": {"lang": "sv"}}}), "callHeaders must be a list"),
    (incoming_event(to={"type": "SIP", "sip": {"callHeaders": [{"key": "k"}] * 17}}), "at most 16"),
    (incoming_event(to={"type": "SIP", "sip": {"callHeaders": [{"value": "v"}]}}), "list of {key, value}"),
    (incoming_event(to={"type": "SIP", "sip": {"callHeaders": [{"key": "k", "value": "v" * 256}]}}),
     "at most 255 printable ASCII"),
])
def test_a_call_incoming_the_gateway_cannot_use_is_a_bad_incoming(event, message):
    with pytest.raises(CallbackError, match=message) as info:
        incoming.parse_incoming(event)
    assert info.value.reason == "bad_incoming"


def test_parties_of_another_shape_are_no_address():
    odd = incoming.parse_incoming(incoming_event(**{"from": {"type": "PHONE", "phone": ["+4670"]}, "to": "+4681"}))
    assert (odd.call.cli, odd.call.to) == ("", "")
