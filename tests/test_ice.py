from urllib.parse import parse_qs, urlsplit

import msgspec
import pytest

from gateway.control import ice
from gateway.core import tokens
from gateway.shared.config import Config, IceMatch, IceRule, Route
from tests import sinch_events

ASR = Route(name="asr", host="127.0.0.1", port=5004)
BOT = Route(name="bot", host="127.0.0.1", port=5006)
KEY = "t" * 32


def ice_event(**overrides) -> dict:
    """An ICE (call id c-1) with what the rules below match on: the number called, custom, call headers."""
    return sinch_events.ice_event(**({
        "to": {"type": "number", "endpoint": "46812345678"}, "custom": "tenant=acme",
        "callHeaders": [{"key": "lang", "value": "sv"}, {"key": "x", "value": "1"}],
    } | overrides))


def test_no_rules_connects_the_default_route_at_8000():
    svaml, route = ice.answer_ice(Config(), ice.parse_ice(ice_event()), now=1000)
    action = svaml["action"]
    assert (route, action["name"], action["streamingOptions"]) == ("echo", "connectStream", {"version": 1,
                                                                                             "sampleRate": 8000})
    assert action["destination"] == {"type": "Websocket", "endpoint": "ws://127.0.0.1:8080/stream/echo?rate=8000"}
    assert svaml["instructions"] == []


def test_first_matching_rule_wins_and_headers_pass_on():
    config = Config(
        routes={"asr": ASR, "bot": BOT}, public_url="wss://gw.example.com", token_key=KEY,
        sinch_application_secret="AAAAAAAAAAAAAAAAAAAAAA==",
        ice_rules=[
            IceRule(route="bot", match=IceMatch(to="4699*")),
            IceRule(route="asr", match=IceMatch(to="468*", headers={"lang": "s?"}), rate=16000, max_duration=600,
                    call_headers={"tenant": "acme"}, forward_headers=["lang", "absent"]),
        ],
    )
    svaml, route = ice.answer_ice(config, ice.parse_ice(ice_event()), now=1000)
    action = svaml["action"]
    assert route == "asr"
    assert action["maxDuration"] == 600
    assert action["callHeaders"] == [{"key": "lang", "value": "sv"}, {"key": "tenant", "value": "acme"}]
    endpoint = urlsplit(action["destination"]["endpoint"])
    assert (endpoint.scheme, endpoint.netloc, endpoint.path) == ("wss", "gw.example.com", "/stream/asr")
    query = parse_qs(endpoint.query)
    assert query["rate"] == ["16000"]
    assert tokens.verify(KEY, query["token"][0], "asr", 1000) == tokens.Claims(call_id="c-1", route="asr", rate=16000,
                                                                               expires=1000 + 60)


def test_no_match_hangs_up_by_default_or_connects():
    rules = [IceRule(route="asr", match=IceMatch(cli="999*"))]
    event = ice.parse_ice(ice_event())
    assert ice.answer_ice(Config(routes={"asr": ASR}, ice_rules=rules), event, 0) == (ice.HANGUP, "no_match")
    config = Config(routes={"asr": ASR, "bot": BOT}, ice_rules=rules, ice_no_match="connect", ice_route="bot")
    assert ice.answer_ice(config, event, 0)[1] == "bot"


def test_call_id_spellings_and_bad_events():
    assert ice.parse_ice(ice_event(callid=None, callId="c-2") | {"callid": "c-2"}).call_id == "c-2"
    assert ice.call_id_of({"callId": "c-3"}) == "c-3"
    for body, reason in [(b"{", "malformed_json"), (b"[]", "missing_event"), (b'{"event":"nope"}', "unknown_event")]:
        with pytest.raises(ice.CallbackError) as info:
            ice.parse_event(body)
        assert info.value.reason == reason
    with pytest.raises(ice.CallbackError, match="callid"):
        ice.parse_ice({"event": "ice"})
    with pytest.raises(ice.CallbackError, match="callHeaders"):
        ice.parse_ice(ice_event(callHeaders=["x"]))


def test_a_structure_where_sinch_sends_text_is_no_text():
    """Never the str() of a list or object: a peer can nest those as deep as the decoder goes."""
    parsed = ice.parse_ice(ice_event(cli=[["4670"]], custom={"a": 1}, to={"endpoint": ["4681"]},
                                     callHeaders=[{"key": "lang", "value": ["sv"]}]))
    assert (parsed.cli, parsed.custom, parsed.to, parsed.headers) == ("", "", "", {"lang": ""})
    assert ice.parse_ice(ice_event(cli=4670, custom=None)).cli == "4670"


def test_rules_must_name_configured_routes():
    with pytest.raises(msgspec.ValidationError, match="route 'nope' is not configured"):
        msgspec.convert({"ice_rules": [{"route": "nope"}]}, Config)
