from datetime import UTC, datetime, timedelta

import pytest

from gateway.core import signing

# Sinch's documented test vector (protocol notes §1).
KEY = "669E367E-6BBA-48AB-AF15-266871C28135"
SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
BODY = (b'{"event":"ace","callid":"822aa4b7-05b4-4d83-87c7-1f835ee0b6f6_257",'
        b'"timestamp":"2014-09-24T10:59:41Z","version":1}')
STAMP = "2014-09-24T10:59:41Z"
PATH = "/sinch/callback/ace"
NOW = datetime(2014, 9, 24, 10, 59, 41, tzinfo=UTC)
APPLICATION = signing.Signer(signing.APPLICATION, KEY, SECRET)


def test_documented_vector():
    assert signing.content_md5(BODY) == "REWF+X220L4/Gw1spXOU7g=="
    assert signing.signature(SECRET, "POST", BODY, "application/json", STAMP, PATH) == (
        "Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4="
    )


def test_no_body_signs_an_empty_md5():
    assert signing.string_to_sign("get", b"", "", STAMP, "/x") == f"GET\n\n\nx-timestamp:{STAMP}\n/x"


def verify(header, stamp=STAMP, body=BODY, now=NOW):
    signing.verify(header, [APPLICATION], "POST", body, "application/json", stamp, PATH, now, 300)


def test_verify_accepts_the_vector():
    verify(signing.authorization(APPLICATION, "POST", BODY, "application/json", STAMP, PATH))


@pytest.mark.parametrize(
    ("header", "kwargs", "reason"),
    [
        (None, {}, "unsigned"),
        ("Bearer abc", {}, "malformed"),
        (f"Application {KEY}:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=", {"body": BODY + b" "}, "forged"),
        ("Application other-key:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=", {}, "wrong_key"),
        (f"Application {KEY}:Tg6fMyo8mj9pYfWQ9ssbx3Tc1BNC87IEygAfLbJqZb4=", {"now": NOW + timedelta(minutes=6)},
         "stale"),
        (f"Application {KEY}:x", {"stamp": None}, "unsigned"),
        (f"Application {KEY}:x", {"stamp": "yesterday"}, "malformed"),
    ],
)
def test_verify_refuses(header, kwargs, reason):
    with pytest.raises(signing.SignatureError) as info:
        verify(header, **kwargs)
    assert info.value.reason == reason
