import pytest

from gateway.core import tokens
from gateway.shared.replay import ReplayGuard

KEY = "k" * 32


def test_round_trip_binds_call_route_rate_and_expiry():
    token = tokens.issue(KEY, "call-1", "asr", 16000, 1_000_060)
    assert tokens.verify(KEY, token, "asr", 1_000_000) == tokens.Claims(call_id="call-1", route="asr", rate=16000,
                                                                        expires=1_000_060)


def test_tokens_keep_their_short_keys_on_the_wire():
    """A token issued before the claims had readable names still verifies, and a new one is spelled the same."""
    issued = ("eyJjIjoiY2FsbC0xIiwiciI6ImFzciIsInMiOjE2MDAwLCJ4IjoxMDAwMDYwfQ"  # {"c":"call-1","r":"asr",...}
              ".35TmtqWJysCw6bDMsPgUXveipeUlE6ShJ9sBsptoP7A")
    assert tokens.issue(KEY, "call-1", "asr", 16000, 1_000_060) == issued
    assert tokens.verify(KEY, issued, "asr", 1_000_000).call_id == "call-1"


def test_a_stream_leg_token_names_its_session_instead_of_a_call():
    """Voice API 2.0: Sinch picks the stream leg's call id when it dials it, so the token binds the session."""
    token = tokens.issue(KEY, "", "asr", 8000, 1_000_060, session="session-1")
    assert tokens.verify(KEY, token, "asr", 1_000_000) == tokens.Claims(call_id="", route="asr", rate=8000,
                                                                        expires=1_000_060, session="session-1")
    other_session, _ = tokens.issue(KEY, "", "asr", 8000, 1_000_060, session="session-2").split(".")
    with pytest.raises(tokens.TokenError, match="forged_token"):  # the session is signed like every claim
        tokens.verify(KEY, f"{other_session}.{token.split('.')[1]}", "asr", 0)


def test_a_token_bound_to_an_instance_is_accepted_there_only():
    token = tokens.issue(KEY, "c", "asr", 8000, 100, instance="gw-a")
    assert tokens.verify(KEY, token, "asr", 0, instance="gw-a").instance == "gw-a"
    for elsewhere in ("gw-b", ""):  # another instance, or one with no instance_id
        with pytest.raises(tokens.TokenError) as info:
            tokens.verify(KEY, token, "asr", 0, instance=elsewhere)
        assert (info.value.status, info.value.reason) == (403, "token_for_another_instance")
    unbound = tokens.issue(KEY, "c", "asr", 8000, 100)
    with pytest.raises(tokens.TokenError, match="token_for_another_instance"):
        tokens.verify(KEY, unbound, "asr", 0, instance="gw-a")  # an instance with an id takes only its own


@pytest.mark.parametrize(
    ("token", "route", "now", "status", "reason"),
    [
        (None, "asr", 0, 401, "missing_token"),
        ("garbage", "asr", 0, 401, "malformed_token"),
        ("a.b.c", "asr", 0, 401, "malformed_token"),
        ("!!.??", "asr", 0, 401, "malformed_token"),
        (tokens.issue("another key of 16+", "c", "asr", 8000, 100), "asr", 0, 403, "forged_token"),
        (tokens.issue(KEY, "c", "asr", 8000, 100), "asr", 101, 403, "expired_token"),
        (tokens.issue(KEY, "c", "asr", 8000, 100), "bot", 0, 403, "token_for_another_route"),
    ],
)
def test_refusals(token, route, now, status, reason):
    with pytest.raises(tokens.TokenError) as info:
        tokens.verify(KEY, token, route, now)
    assert (info.value.status, info.value.reason) == (status, reason)


def test_a_tampered_payload_is_forged():
    _, mac = tokens.issue(KEY, "c", "asr", 8000, 100).split(".")
    other, _ = tokens.issue(KEY, "c", "asr", 48000, 100).split(".")
    with pytest.raises(tokens.TokenError, match="forged_token"):
        tokens.verify(KEY, f"{other}.{mac}", "asr", 0)


def test_replay_guard_admits_a_token_once_until_it_expires():
    guard = ReplayGuard(capacity=8)
    first, second = tokens.digest("one"), tokens.digest("two")
    assert guard.claim(first, expires=100, now=0)
    assert not guard.claim(first, expires=100, now=50)
    assert guard.claim(second, expires=100, now=50)
    assert guard.claim(first, expires=300, now=101)  # expired entries are forgotten


def test_replay_guard_fails_closed_when_full():
    guard = ReplayGuard(capacity=4)
    for index in range(4):
        assert guard.claim(tokens.digest(str(index)), expires=100, now=0)
    assert not guard.claim(tokens.digest("fifth"), expires=100, now=0)
    assert guard.claim(tokens.digest("fifth"), expires=300, now=200)


def test_a_token_signed_with_the_previous_key_passes_while_a_rotation_settles():
    old, new = "the-old-key-of-16+", "the-new-key-of-16+"
    token = tokens.issue(old, "c", "asr", 8000, 100)
    assert tokens.verify(new, token, "asr", 0, previous_key=old).call_id == "c"
    with pytest.raises(tokens.TokenError, match="forged_token"):
        tokens.verify(new, token, "asr", 0)  # once the previous key is dropped
    with pytest.raises(tokens.TokenError, match="forged_token"):
        tokens.verify(new, tokens.issue("a third key of 16+", "c", "asr", 8000, 100), "asr", 0, previous_key=old)
