import pytest

from gateway.core.request_target import TargetError, parse_origin_form


@pytest.mark.parametrize(("target", "parsed"), [
    (b"/stream/echo", ("/stream/echo", "")),
    (b"/stream/echo?rate=16000&token=a.b-_", ("/stream/echo", "rate=16000&token=a.b-_")),
    (b"/stream/echo?x=%2F%3f?y", ("/stream/echo", "x=%2F%3f?y")),
    (b"//evil/stream/echo", ("//evil/stream/echo", "")),  # a path with an empty segment, not a host
    (b"/", ("/", "")),
])
def test_origin_form_targets_are_split_into_path_and_query(target, parsed):
    assert parse_origin_form(target) == parsed


@pytest.mark.parametrize("target", [
    b"//[::1", b"/stream/[echo]", b"*", b"http://gw/stream/echo", b"stream/echo", b"", b"/a b", b"/caf\xc3\xa9",
    b"/stream/echo?x=%zz", b"/stream/echo?x=%2", b"/%", b"/stream/echo#frag", b"/stream/echo?a=\"b\"",
])
def test_anything_else_is_refused(target):
    with pytest.raises(TargetError) as info:
        parse_origin_form(target)
    assert info.value.reason == "bad_target"
