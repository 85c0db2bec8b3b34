import pytest

from gateway.core.commands import CommandError, Connect, Other, parse_command


@pytest.mark.parametrize(
    "text",
    [
        # v1 page spelling
        b'{"command":"connect","CallId":"c1","ApplicationId":"app","Headers":{"Header1":"Value1"}}',
        # Voice API 2.0 stream spec spelling
        b'{"command":"connect","version":1,"callId":"c1","applicationKey":"app","codec":"PCM",'
        b'"sampleRate":16000,"callHeaders":{"Header1":"Value1"}}',
        # tutorial spelling, and odd casing
        b'{"Command":"Connect","callid":"c1","applicationId":"app","headers":{"Header1":"Value1"}}',
    ],
)
def test_every_documented_connect_spelling(text):
    connect = parse_command(text)
    assert isinstance(connect, Connect)
    assert connect.call_id == "c1"
    assert connect.application == "app"
    assert connect.headers == {"Header1": "Value1"}


def test_call_headers_with_a_null_value():
    """Voice API 2.0's callHeaders take an optional value, which may come as null in either shape."""
    assert parse_command(b'{"command":"connect","callId":"c","callHeaders":{"a":null,"b":"1"}}').headers == {
        "a": "", "b": "1"}
    assert parse_command(b'{"command":"connect","callId":"c","callHeaders":[{"key":"a","value":null}]}'
                         ).headers == {"a": ""}


def test_sample_rate_is_optional():
    assert parse_command(b'{"command":"connect","callId":"c"}').sample_rate is None
    assert parse_command(b'{"command":"connect","callId":"c","sampleRate":"48000"}').sample_rate == 48000


def test_unknown_command_is_not_an_error():
    assert parse_command(b'{"command":"dtmf","digit":"5"}') == Other("dtmf")
    assert parse_command(b'{"command":"' + b"x" * 10000 + b'"}') == Other("other")  # names are not kept


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (b"{not json", "malformed_json"),
        (b"[" * 1000 + b"]" * 1000, "malformed_json"),  # deeper than the decoder goes: not a RecursionError
        (b'{"command":"connect","callId":' + b"[" * 100_000 + b"]" * 100_000 + b"}", "malformed_json"),
        (b'["connect"]', "not_an_object"),
        (b'{"callId":"c"}', "missing_command"),
        (b'{"command":"connect"}', "bad_connect"),
        (b'{"command":"connect","callId":"c","sampleRate":11025}', "bad_connect"),
        (b'{"command":"connect","callId":"c","codec":"OPUS"}', "bad_connect"),
        (b'{"command":"connect","callId":"c","callHeaders":[1]}', "bad_connect"),
        (b'{"command":"connect","callId":"c","callHeaders":{"a":1}}', "bad_connect"),
        (b'{"command":"connect","callId":"' + b"x" * 300 + b'"}', "bad_connect"),
    ],
)
def test_bad_commands_have_specific_reasons(text, reason):
    with pytest.raises(CommandError) as info:
        parse_command(text)
    assert info.value.reason == reason


def test_headers_as_a_list_of_key_value_pairs_as_svaml_writes_them():
    """Issue 12.2: SVAML's callHeaders shape was refused with bad_connect; both shapes are accepted."""
    listed = parse_command(b'{"command":"connect","callId":"c","callHeaders":[{"key":"a","value":"1"},{"key":"b"}]}')
    assert listed.headers == {"a": "1", "b": ""}
    keyed = parse_command(b'{"command":"connect","callId":"c","Headers":{"a":"1"}}')
    assert keyed.headers == {"a": "1"}
