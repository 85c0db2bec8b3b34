import re
import subprocess
import sys

import pytest

from gateway.shared.config import (
    KEY_DOCS,
    ConfigError,
    Route,
    closest,
    config_keys,
    env_names,
    load_config,
    parse_route,
    unknown_env,
)


def test_defaults_need_nothing():
    config = load_config(env={})
    assert config.listen == "0.0.0.0:8080"
    assert config.routes == {}
    assert config.rtp_port_range == (16384, 32767)


def test_route_url_fields():
    route = parse_route("asr=rtp://10.0.0.5:5004?codec=pcmu&ptime=20")
    assert route == Route(name="asr", host="10.0.0.5", port=5004, codec="PCMU", ptime_ms=20)
    assert route.wire_rate(16000) == 8000
    assert route.payload_type_for(8000) == 0


@pytest.mark.parametrize(
    ("rate", "ptime", "pt"),
    [(8000, 20, 96), (16000, 20, 96), (24000, 20, 96), (44100, 10, 11), (48000, 10, 96), (96000, 5, 96)],
)
def test_l16_packet_duration_fits_mtu_budget(rate, ptime, pt):
    route = parse_route("r=rtp://127.0.0.1:5004")
    assert route.ptime_for(rate, 1200) == ptime
    assert rate * ptime // 1000 * 2 <= 1200
    assert route.payload_type_for(rate) == pt


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("asr=rtp://127.0.0.1:5004?codec=PCMU&rate=16000", "8000 Hz only"),
        ("asr=rtp://127.0.0.1:5004?codec=G729", "codec"),
        ("asr=rtp://127.0.0.1:5004?ptime=7", "ptime"),
        ("asr=rtp://127.0.0.1:5004?bogus=1", "unknown option 'bogus'"),
        ("asr=rtp://127.0.0.1:5004?dtmf=95", "routes.asr: .*dtmf must be a dynamic payload type, 96-127"),
        ("asr=rtp://127.0.0.1:5004?dtmf=128", "routes.asr: .*dtmf must be a dynamic payload type, 96-127"),
        ("asr=rtp://127.0.0.1:5004?dtmf=96", "routes.asr: .*dtmf=96 is the audio's payload type"),
        ("asr=rtp://127.0.0.1:5004?pt=101&dtmf=101", "routes.asr: .*dtmf=101 is the audio's payload type"),
        ("asr=rtp://127.0.0.1:5004?dtmf=on", "routes.asr: .*dtmf"),
        ("asr=http://127.0.0.1:5004", "expected rtp://"),
        ("asr=rtp://media_example:5004", "IP address or a DNS name"),
        ("asr=rtp://127.0.0.1:5004,127.0.0.1:5004", "target or fork is listed twice"),
        ("asr=rtp://127.0.0.1:5004?policy=random", "policy"),
        ("rtp://127.0.0.1:5004", "expected NAME=rtp://"),
    ],
)
def test_bad_routes_name_the_route(spec, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, overrides={"routes": [spec]})


def test_dtmf_is_off_by_default_and_takes_a_dynamic_payload_type():
    assert parse_route("asr=rtp://10.0.0.5:5004").dtmf == 0
    assert parse_route("asr=rtp://10.0.0.5:5004?dtmf=101").dtmf == 101
    assert parse_route("asr=rtp://10.0.0.5:5004?dtmf=101").url() == "rtp://10.0.0.5:5004?codec=L16&dtmf=101"
    assert parse_route("asr=rtp://10.0.0.5:5004?codec=PCMU&dtmf=96").dtmf == 96  # the audio is PT 0


def test_merge_order_file_then_env_then_flags(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text('connect_timeout = 3.0\nheartbeat_interval = 7\n[routes]\nasr = "rtp://127.0.0.1:6000"\n')
    config = load_config(str(path), env={"GATEWAY_HEARTBEAT_INTERVAL": "9"}, overrides={"mtu_budget": "900"})
    assert config.connect_timeout == 3.0
    assert config.heartbeat_interval == 9.0
    assert config.mtu_budget == 900
    assert config.routes["asr"].port == 6000


def test_env_routes_list():
    config = load_config(env={"GATEWAY_ROUTES": "a=rtp://127.0.0.1:6000, b=rtp://127.0.0.1:6002?codec=PCMA"})
    assert sorted(config.routes) == ["a", "b"]
    assert config.routes["b"].codec == "PCMA"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"connect_timeout": "-1"}, r"^connect_timeout: Expected `float` > 0"),
        ({"connect_timeout": "soon"}, r"^connect_timeout: Expected `float`"),
        ({"listen": "8080"}, r"listen: expected HOST:PORT"),
        ({"rtp_ports": "9-5"}, r"rtp_ports"),
        ({"default_rate": "11025"}, r"default_rate: must be one of"),
        ({"mtu_budget": "100"}, r"^mtu_budget: Expected `int` >= 160"),
        ({"rtp_host": "localhost"}, r"^rtp_host: must be an IP address"),
        ({"replay_store": "memcached://10.0.0.9:11211"}, r"^replay_store: expected local, redis://HOST:PORT/DB"),
        ({"replay_store": "redis://"}, r"^replay_store: expected local"),
        ({"replay_store_unavailable": "shrug"}, r"^replay_store_unavailable: Invalid enum value 'shrug' "
                                                r"\(accepted: fail_closed, fail_open\)"),
        ({"instance_id": "gw 1"}, r"^instance_id: up to 63 letters"),
    ],
)
def test_invalid_values_name_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env={}, overrides=overrides)


def test_route_family_must_match_the_rtp_sockets():
    with pytest.raises(ConfigError, match=r"routes.asr: an IPv6 media service needs an IPv6 rtp_host"):
        load_config(env={}, overrides={"routes": ["asr=rtp://[::1]:5004"]})
    assert load_config(env={}, overrides={"routes": ["asr=rtp://[::1]:5004"], "rtp_host": "::"}).routes["asr"].host \
        == "::1"


def test_call_started_wait_needs_call_events_and_is_bounded():
    with pytest.raises(ConfigError, match="call_started_wait: needs call_events_url"):
        load_config(env={"GATEWAY_CALL_STARTED_WAIT": "1"})
    with pytest.raises(ConfigError, match="call_started_wait"):
        load_config(env={"GATEWAY_CALL_STARTED_WAIT": "6", "GATEWAY_CALL_EVENTS_URL": "http://127.0.0.1:1/e"})
    assert load_config(env={"GATEWAY_CALL_STARTED_WAIT": "0.5",
                            "GATEWAY_CALL_EVENTS_URL": "http://127.0.0.1:1/e"}).call_started_wait == 0.5


def test_allocate_url_is_an_http_url_and_its_timeout_is_bounded():
    with pytest.raises(ConfigError, match=r"allocate_url: expected http://\.\.\. or https://\.\.\."):
        load_config(env={"GATEWAY_ALLOCATE_URL": "ftp://127.0.0.1/allocate"})
    for timeout in ("0", "6"):
        with pytest.raises(ConfigError, match="allocate_timeout"):
            load_config(env={"GATEWAY_ALLOCATE_URL": "http://127.0.0.1:1/a", "GATEWAY_ALLOCATE_TIMEOUT": timeout})
    config = load_config(env={"GATEWAY_ALLOCATE_URL": "https://alloc.internal/a", "GATEWAY_ALLOCATE_TIMEOUT": "1.5"})
    assert (config.allocate_url, config.allocate_timeout) == ("https://alloc.internal/a", 1.5)


def test_a_token_key_needs_signed_callbacks():
    with pytest.raises(ConfigError, match="token_key: needs sinch_application_secret or sinch_service_secret"):
        load_config(env={"GATEWAY_TOKEN_KEY": "k" * 20})
    assert load_config(env={"GATEWAY_TOKEN_KEY": "k" * 20, "GATEWAY_VERIFY_CALLBACKS": "false"}).token_key
    service = load_config(env={"GATEWAY_TOKEN_KEY": "k" * 20, "SINCH_SERVICE_ID": "s", "SINCH_SERVICE_SECRET": "c2Vj"})
    assert service.callbacks_signed  # Voice API 2.0's secret alone is enough


@pytest.mark.parametrize(("env", "message"), [
    ({"SINCH_SERVICE_ID": "s", "SINCH_SERVICE_SECRET": "not base64!"}, "sinch_service_secret: not base64"),
    ({"SINCH_SERVICE_SECRET": "c2Vj"}, "sinch_service_secret: needs sinch_service_id"),
    ({"GATEWAY_SINCH_VOICE_REGION": "eu2"}, "sinch_voice_region: Invalid enum value 'eu2' (accepted: global, us1"),
    ({"GATEWAY_SINCH_VOICE_API_BASE": "voice.example"}, "sinch_voice_api_base: expected https://"),
    ({"GATEWAY_SINCH_AUTH_URL": "ftp://auth.example"}, "sinch_auth_url: expected https://"),
])
def test_voice_api_2_keys_are_checked(env, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(env=env)


def test_voice_api_2_regions():
    assert load_config(env={}).voice_api_base == "https://voice.api.sinch.com"
    assert load_config(env={"GATEWAY_SINCH_VOICE_REGION": "eu1"}).voice_api_base == "https://eu1.voice.api.sinch.com"
    assert load_config(env={"GATEWAY_SINCH_VOICE_REGION": "eu1", "GATEWAY_SINCH_VOICE_API_BASE": "http://127.0.0.1:9/"
                            }).voice_api_base == "http://127.0.0.1:9"


@pytest.mark.parametrize(("rule", "message"), [
    ({"call_headers": {f"h{i}": "v" for i in range(16)}, "forward_headers": ["lang"]},
     "at most 16 call_headers and forward_headers together"),
    ({"call_headers": {"tenant": "x" * 256}}, "call header value 'xxxx"),
    ({"call_headers": {"t\u00e9nant": "acme"}}, "call header key 'ténant': at most 255 printable ASCII"),
    ({"forward_headers": [""]}, "a call header needs a key"),
])
def test_ice_rule_headers_are_ones_sinch_takes(rule, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(env={}, overrides={"ice_rules": [{"route": "echo", **rule}]})


def test_unknown_key_in_file(tmp_path):
    path = tmp_path / "gateway.toml"
    path.write_text("conect_timeout = 3\n")
    with pytest.raises(ConfigError, match=r"conect_timeout: unknown key; did you mean connect_timeout\?"):
        load_config(str(path), env={})
    path.write_text('[[ice_rules]]\nroute = "echo"\nmatch = { too = "46*" }\n')
    with pytest.raises(ConfigError, match=r"^ice_rules\[0\].match: .*unknown field `too`; did you mean to\?"):
        load_config(str(path), env={})
    path.write_text('[[ice_rules]]\nrout = "echo"\n')
    with pytest.raises(ConfigError, match=r"unknown field `rout`; did you mean route\?"):
        load_config(str(path), env={})


@pytest.mark.parametrize(("env", "message"), [
    ({"GATEWAY_LOG_LEVEL": "verbose"},
     "log_level: Invalid enum value 'verbose' (accepted: debug, info, warning, error)"),
    ({"GATEWAY_ACCEPT": "SHARED"}, "accept: Invalid enum value 'SHARED' (accepted: shared, reuseport)"),
    ({"GATEWAY_VERIFY_CALLBACKS": "yes"},
     "verify_callbacks: Expected `bool`, got `str` (accepted: true, false, 1, 0)"),
])
def test_enum_and_bool_errors_list_the_accepted_values(env, message):
    with pytest.raises(ConfigError) as info:
        load_config(env=env)
    assert str(info.value) == message


def test_unknown_gateway_variables_are_found():
    env = {"GATEWAY_CONECT_TIMEOUT": "3", "GATEWAY_NO_EXTENSIONS": "1", "GATEWAY_TOKEN_KEY_FILE": "/run/key",
           "GATEWAY_LISTEN": "127.0.0.1:9000", "SINCH_APPLICATION_KEY": "k", "HOME": "/root"}
    assert unknown_env(env) == ["GATEWAY_CONECT_TIMEOUT"]
    assert closest("GATEWAY_CONECT_TIMEOUT", env_names()) == "GATEWAY_CONNECT_TIMEOUT"


def test_every_key_is_described_once():
    """--help and docs/configuration.md are made from KEY_DOCS: a new key needs its unit and meaning there."""
    assert list(KEY_DOCS) == list(config_keys())
    assert all(doc.unit and doc.meaning for doc in KEY_DOCS.values())


def test_cli_exits_2_naming_the_key():
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--connect-timeout", "-1"],
        capture_output=True, text=True, timeout=30,
    )
    assert result.returncode == 2
    assert "config error: connect_timeout" in result.stderr


def test_secrets_can_come_from_files(tmp_path):
    secret = tmp_path / "token_key"
    secret.write_text("k" * 20 + "\n")
    application_secret = tmp_path / "secret"
    application_secret.write_text("c2VjcmV0")
    config = load_config(env={"GATEWAY_TOKEN_KEY_FILE": str(secret),
                              "SINCH_APPLICATION_SECRET_FILE": str(application_secret)})
    assert config.token_key == "k" * 20  # without the newline editors and `echo` add
    assert config.sinch_application_secret == "c2VjcmV0"
    service_id = tmp_path / "service_id"
    service_id.write_text("service-1\n")
    service = load_config(env={"SINCH_SERVICE_ID_FILE": str(service_id),
                               "SINCH_SERVICE_SECRET_FILE": str(application_secret)})
    assert (service.sinch_service_id, service.sinch_service_secret) == ("service-1", "c2VjcmV0")


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"GATEWAY_TOKEN_KEY": "k" * 20, "GATEWAY_TOKEN_KEY_FILE": "/dev/null"},
         r"^GATEWAY_TOKEN_KEY and GATEWAY_TOKEN_KEY_FILE: set one of them, not both"),
        ({"SINCH_APPLICATION_SECRET_FILE": "/nonexistent/secret"},
         r"^SINCH_APPLICATION_SECRET_FILE /nonexistent/secret: No such file or directory"),
    ],
)
def test_secret_file_errors_name_the_variable(env, message):
    with pytest.raises(ConfigError, match=message):
        load_config(env=env)


def test_a_previous_token_key_needs_a_current_one():
    with pytest.raises(ConfigError, match="token_key_previous: only with a token_key"):
        load_config(env={"GATEWAY_TOKEN_KEY_PREVIOUS": "k" * 20})


def test_only_credentials_come_from_files(tmp_path):
    key = tmp_path / "key.pem"
    key.write_text("-----BEGIN PRIVATE KEY-----\nsecret material\n")
    with pytest.raises(ConfigError, match=r"^GATEWAY_TLS_KEY_FILE: only credentials are read from files") as info:
        load_config(env={"GATEWAY_TLS_KEY_FILE": str(key)})
    assert "secret material" not in str(info.value)  # a key file read in as a path would be echoed


def test_a_previous_token_key_is_as_strong_as_a_current_one():
    with pytest.raises(ConfigError, match="token_key_previous: at least 16 characters"):
        load_config(env={"GATEWAY_TOKEN_KEY": "k" * 20, "GATEWAY_TOKEN_KEY_PREVIOUS": "short",
                         "GATEWAY_VERIFY_CALLBACKS": "false"})


def test_a_route_of_several_targets_with_a_policy():
    route = parse_route("pool=rtp://10.0.0.5:5004,media.example:6000,[::1]:7000?policy=least_calls&rtp_timeout=2")
    assert [str(target) for target in route.targets] == ["10.0.0.5:5004", "media.example:6000", "[::1]:7000"]
    assert (route.policy, route.rtp_timeout) == ("least_calls", 2.0)
    assert route.url() == "rtp://10.0.0.5:5004,media.example:6000,[::1]:7000?codec=L16"
    with pytest.raises(ConfigError, match=r"routes.pool: expected rtp://HOST:PORT"):
        parse_route("pool=rtp://10.0.0.5:5004,?codec=PCMU")


def test_env_routes_list_with_pools():
    config = load_config(env={"GATEWAY_ROUTES": "a=rtp://127.0.0.1:6000,127.0.0.1:6002?codec=PCMA, "
                                                "b=rtp://127.0.0.1:6004,127.0.0.1:6006"})
    assert [str(target) for target in config.routes["a"].targets] == ["127.0.0.1:6000", "127.0.0.1:6002"]
    assert config.routes["a"].codec == "PCMA"
    assert len(config.routes["b"].targets) == 2


def test_a_replay_store_url_with_its_password_can_come_from_a_file(tmp_path):
    (tmp_path / "store").write_text("rediss://:hunter2@redis.internal:6380/2\n")
    config = load_config(env={"GATEWAY_REPLAY_STORE_FILE": str(tmp_path / "store")})
    assert config.replay_store == "rediss://:hunter2@redis.internal:6380/2"
