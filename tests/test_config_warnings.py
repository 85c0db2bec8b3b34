import pytest

from gateway.shared.config import load_config
from gateway.shared.config_warnings import config_warnings

SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
SIGNED = {"SINCH_APPLICATION_SECRET": SECRET}


def warned(env: dict[str, str], **overrides: str) -> dict[str, str]:
    """{key: message} of the warnings for this environment and these flags."""
    return {warning.key: warning.message for warning in config_warnings(load_config(env=env, overrides=overrides), env)}


@pytest.mark.parametrize(("public_url", "listen", "base"), [
    ("", "0.0.0.0:8080", "ws://127.0.0.1:8080"),
    ("", "127.0.0.1:9000", "ws://127.0.0.1:9000"),
    ("", "10.1.2.3:8080", "ws://10.1.2.3:8080"),
    ("wss://localhost", "0.0.0.0:8080", "wss://localhost"),
    ("ws://0.0.0.0:8080", "0.0.0.0:8080", "ws://0.0.0.0:8080"),
    ("wss://[::1]:8443", "0.0.0.0:8080", "wss://[::1]:8443"),
    ("wss://[::]:8443", "0.0.0.0:8080", "wss://[::]:8443"),
])
def test_stream_urls_sinch_cannot_reach_are_warned_about(public_url, listen, base):
    message = warned(SIGNED, public_url=public_url, listen=listen)["public_url"]
    assert f"start with {base}," in message


@pytest.mark.parametrize("public_url", ["wss://gateway.example.com", "wss://203.0.113.7:8443", "ws://10.1.2.3:8080"])
def test_a_public_url_elsewhere_is_not(public_url):
    assert warned(SIGNED, public_url=public_url) == {}


def test_unverified_callbacks_are_warned_about():
    public = {"public_url": "wss://gateway.example.com"}
    assert "callbacks are accepted unverified" in warned({}, **public)["sinch_application_secret"]
    message = warned({**SIGNED, "GATEWAY_VERIFY_CALLBACKS": "false"}, **public)["verify_callbacks"]
    assert message.startswith("verify_callbacks is false: callbacks are accepted unverified")
    with_tokens = warned({"GATEWAY_VERIFY_CALLBACKS": "false", "GATEWAY_TOKEN_KEY": "k" * 20}, **public)
    assert with_tokens["sinch_application_secret"].endswith("and get stream tokens")


def test_unknown_gateway_variables_are_named_with_a_likely_fix():
    env = {**SIGNED, "GATEWAY_CONECT_TIMEOUT": "3", "GATEWAY_SERVICE_PORT_HTTP": "8080"}
    warnings = {w.key: w for w in config_warnings(load_config(env=env, overrides={"public_url": "wss://gw.example"}),
                                                  env)}
    assert set(warnings) == {"GATEWAY_CONECT_TIMEOUT", "GATEWAY_SERVICE_PORT_HTTP"}
    assert warnings["GATEWAY_CONECT_TIMEOUT"].fix == "did you mean GATEWAY_CONNECT_TIMEOUT?"
    assert warnings["GATEWAY_SERVICE_PORT_HTTP"].message.endswith("is not a variable the gateway reads: it is ignored")
