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


SERVICE = signing.Signer(signing.SERVICE, "service-1", "c2VydmljZS1zZWNyZXQ=")


def test_a_service_signature_is_one_sinchs_own_validator_accepts():
    """Voice API 2.0 webhooks: signed as we sign, checked by sinch-sdk-python's validator (its SinchEvents)."""
    from sinch.domains.voice.api.v2.sinch_events import SinchEvents

    headers = {"Content-Type": "application/json", "x-timestamp": STAMP,
               "Authorization": signing.authorization(SERVICE, "POST", BODY, "application/json", STAMP, PATH)}
    assert headers["Authorization"].startswith("service service-1:")
    events = SinchEvents()
    assert events.validate_authentication_header("POST", PATH, headers, BODY, SERVICE.key, SERVICE.secret_b64)
    assert not events.validate_authentication_header("POST", PATH, headers, BODY + b" ", SERVICE.key,
                                                     SERVICE.secret_b64)
    both = [APPLICATION, SERVICE]
    assert signing.verify(headers["Authorization"], both, "POST", BODY, "application/json", STAMP, PATH, NOW, 300)


def test_each_scheme_is_checked_with_its_own_secret():
    both = [APPLICATION, SERVICE]
    as_service = signing.authorization(SERVICE._replace(secret_b64=SECRET), "POST", BODY, "application/json", STAMP,
                                       PATH)  # the application's secret under the service's scheme
    application = signing.authorization(APPLICATION, "POST", BODY, "application/json", STAMP, PATH)
    for header, signers, reason in [
        (as_service, both, "forged"),
        (application, [SERVICE], "wrong_key"),  # a scheme whose secret is not configured
        (signing.authorization(SERVICE, "POST", BODY, "application/json", STAMP, PATH), [APPLICATION], "wrong_key"),
        ("Bearer abc", both, "malformed"),
    ]:
        with pytest.raises(signing.SignatureError) as info:
            signing.verify(header, signers, "POST", BODY, "application/json", STAMP, PATH, NOW, 300)
        assert info.value.reason == reason, header
    assert signing.verify(application, both, "POST", BODY, "application/json", STAMP, PATH, NOW, 300)


def test_the_scheme_is_case_insensitive():
    """RFC 9110 §11.1; Sinch's examples spell the application scheme both ways."""
    header = signing.authorization(APPLICATION, "POST", BODY, "application/json", STAMP, PATH)
    verify("application" + header.removeprefix("Application"))
    with pytest.raises(signing.SignatureError, match="expected 'Application KEY:SIGNATURE' or 'service ID:SIGNATURE'"):
        signing.verify("Basic abc", [APPLICATION, SERVICE], "POST", BODY, "application/json", STAMP, PATH, NOW, 300)
