import json
import os
import subprocess
import sys

import pytest

from gateway.cli import main
from gateway.shared.host_limits import read_sysctl

SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
TOKEN_KEY = "a-stream-token-key-of-32-chars!!"


def test_check_prints_the_effective_configuration_with_secrets_masked(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("SINCH_APPLICATION_SECRET", SECRET)
    monkeypatch.setenv("GATEWAY_TOKEN_KEY", TOKEN_KEY)
    monkeypatch.setenv("GATEWAY_TOKEN_KEY_PREVIOUS", "the-previous-token-key")
    monkeypatch.setenv("GATEWAY_CALL_EVENTS_URL", "https://ops:hunter2@events.example:8443/hook?api_key=XYZ")
    config_file = tmp_path / "gateway.toml"
    config_file.write_text('[routes]\nasr = "rtp://10.0.0.5:5004?codec=PCMU&token=static-secret"\n'
                           '[[ice_rules]]\nroute = "asr"\ncall_headers = { authorization = "Bearer abc" }\n')
    code = main(["check", "--config", str(config_file), "--workers", "3"])
    out = capsys.readouterr().out
    assert code == 0
    config = json.loads(out)
    assert config["workers"] == 3
    assert config["routes"]["asr"]["codec"] == "PCMU"
    assert config["sinch_application_secret"] == config["token_key"] == config["token_key_previous"] == "***"
    assert config["routes"]["asr"]["token"] == "***"
    assert config["call_events_url"] == "https://ops:***@events.example:8443/hook?***"
    assert config["ice_rules"][0]["call_headers"] == {"authorization": "***"}
    for secret in (SECRET, TOKEN_KEY, "the-previous-token-key", "static-secret", "hunter2", "XYZ", "Bearer abc"):
        assert secret not in out


def test_check_masks_the_password_of_an_ipv6_events_url(monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_CALL_EVENTS_URL", "http://ops:hunter2@[::1]:8443/hook")
    assert main(["check"]) == 0
    assert json.loads(capsys.readouterr().out)["call_events_url"] == "http://ops:***@[::1]:8443/hook"


def test_check_masks_the_password_of_the_replay_store(monkeypatch, capsys):
    monkeypatch.setenv("GATEWAY_REPLAY_STORE", "rediss://:hunter2@redis.internal:6380/2")
    assert main(["check"]) == 0
    assert json.loads(capsys.readouterr().out)["replay_store"] == "rediss://:***@redis.internal:6380/2"


def test_check_exits_2_naming_the_key(capsys):
    assert main(["check", "--rtp-ports", "9-5"]) == 2
    assert "config error: rtp_ports" in capsys.readouterr().err


def test_check_reports_the_host_limits_that_cut_the_configuration(capsys):
    """Issue 17: a receive buffer over net.core.rmem_max and a port range smaller than max_calls x workers are
    reported under a key of their own, the JSON staying parseable, with a one-line verdict."""
    rmem_max = read_sysctl("net/core/rmem_max")
    code = main(["check", "--udp-rcvbuf-bytes", str(rmem_max * 2), "--rtp-ports", "20000-20009",
                 "--max-calls", "100", "--workers", "2"])
    captured = capsys.readouterr()
    assert code == 0
    output = json.loads(captured.out)
    assert output["workers"] == 2  # the configuration is as it was
    limits = output["host_limits"]
    assert limits["udp_receive_buffer"] == {"requested": rmem_max * 2, "granted": rmem_max,
                                            "net.core.rmem_max": rmem_max}
    assert limits["rtp_ports"] == {"range": "20000-20009", "pairs": 5, "max_calls_x_workers": 200}
    assert {warning["limit"] for warning in limits["warnings"]} >= {"udp_receive_buffer", "rtp_ports"}
    assert set(limits) >= {"open_files", "listen_backlog", "udp_send_buffer", "capacity", "verdict"}
    assert captured.err.splitlines()[-1] == f"gateway: capacity: {limits['verdict']}"
    assert "bound by RTP ports" in limits["verdict"]


def test_check_shows_the_embedded_echo_route_when_no_route_is_configured(capsys):
    assert main(["check"]) == 0
    assert list(json.loads(capsys.readouterr().out)["routes"]) == ["echo"]
    assert main(["check", "--route", "asr=rtp://10.0.0.5:5004"]) == 0
    assert list(json.loads(capsys.readouterr().out)["routes"]) == ["asr"]


def test_check_prints_what_the_configuration_will_not_do(monkeypatch, capsys):
    """Issue 14.7: SVAML pointing Sinch at loopback and callbacks taken unverified are told, with the fix;
    a GATEWAY_* variable the gateway does not read is named, with the one it may be a typo of."""
    monkeypatch.setenv("GATEWAY_CONECT_TIMEOUT", "3")
    assert main(["check"]) == 0
    captured = capsys.readouterr()
    warnings = {warning["key"]: warning for warning in json.loads(captured.out)["warnings"]}
    assert set(warnings) == {"GATEWAY_CONECT_TIMEOUT", "public_url", "sinch_application_secret"}
    assert warnings["GATEWAY_CONECT_TIMEOUT"]["fix"] == "did you mean GATEWAY_CONNECT_TIMEOUT?"
    assert "ws://127.0.0.1:8080" in warnings["public_url"]["message"]
    errors = captured.err.splitlines()
    assert len(errors) == 4 and errors[-1].startswith("gateway: capacity:")
    assert all(line.startswith("gateway: warning: ") and "; to fix: " in line for line in errors[:3])

    monkeypatch.delenv("GATEWAY_CONECT_TIMEOUT")
    monkeypatch.setenv("SINCH_APPLICATION_SECRET", SECRET)
    assert main(["check", "--public-url", "wss://gateway.example.com"]) == 0
    assert json.loads(capsys.readouterr().out)["warnings"] == []


def test_serve_help_gives_each_flag_its_unit_values_environment_and_meaning(capsys):
    with pytest.raises(SystemExit):
        main(["serve", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    assert ("--connect-timeout SECONDS time a new websocket has to send its connect command (close 1008) "
            "[env GATEWAY_CONNECT_TIMEOUT; default: 5]") in text
    assert "--log-level {debug,info,warning,error}" in text
    assert "--verify-callbacks {true,false,1,0}" in text
    assert "--default-rate {8000,16000,24000,44100,48000,96000}" in text
    assert "env SINCH_APPLICATION_SECRET or GATEWAY_SINCH_APPLICATION_SECRET (or SINCH_APPLICATION_SECRET_FILE" in text
    assert "--route NAME=rtp://HOST:PORT?OPTIONS" in text and "--ice-rules" not in text


@pytest.mark.parametrize(("flag", "value", "accepted"), [
    ("--log-level", "verbose", "'debug', 'info', 'warning', 'error'"),
    ("--verify-callbacks", "yes", "'true', 'false', '1', '0'"),
    ("--accept", "fast", "'shared', 'reuseport'"),
])
def test_a_flag_with_few_values_lists_them_when_refused(capsys, flag, value, accepted):
    with pytest.raises(SystemExit) as exit_info:
        main(["serve", flag, value])
    assert exit_info.value.code == 2
    assert f"invalid choice: '{value}' (choose from {accepted})" in capsys.readouterr().err


@pytest.mark.parametrize(("args", "env", "toml", "message"), [
    (["--route", "asr=rtp://10.0.0.5:99999"], {}, None, "routes.asr: Port out of range 0-65535"),
    (["--route", "asr=rtp://10.0.0.5:-1"], {}, None, "routes.asr: Port could not be cast to integer value"),
    (["--route", "asr=rtp://[::1:5004"], {}, None, "routes.asr: Invalid IPv6 URL"),
    ([], {"GATEWAY_ROUTES": "asr=rtp://10.0.0.5:70000"}, None, "routes.asr: Port out of range"),
    ([], {}, b"routes = [5004]\n", "route: expected NAME=rtp://HOST:PORT?..., got 5004"),
    ([], {}, b"[routes]\nasr = 5004\n", "routes.asr: expected rtp://HOST:PORT?..., got 5004"),
    ([], {}, b'workers = "\xff"\n', "config file CONFIG: not UTF-8 text"),
    ([], {}, b'tls_cert = "cert\\u0000.pem"\ntls_key = "key.pem"\n', "tls_cert: 'cert\\x00.pem': not a file name"),
    (["--workers", b"\xff"], {}, None, "workers: not UTF-8 text"),
    ([], {"SINCH_APPLICATION_SECRET": "s\u00e9cret=="}, None, "sinch_application_secret: not base64"),
])
def test_every_config_error_exits_2_naming_the_key_through_the_real_cli(tmp_path, args, env, toml, message):
    """Each of these once reached the operator as a traceback with exit status 1 (issue 14.6; found by
    tests/fuzz/test_fuzz_config.py)."""
    if toml is not None:
        (tmp_path / "gateway.toml").write_bytes(toml)
        args = ["--config", str(tmp_path / "gateway.toml"), *args]
    clean = {name: value for name, value in os.environ.items() if not name.startswith(("GATEWAY_", "SINCH_"))}
    result = subprocess.run([sys.executable, "-m", "gateway", "check", *args], env=clean | env, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    expected = message.replace("CONFIG", str(tmp_path / "gateway.toml"))
    assert result.stderr.startswith(f"gateway: config error: {expected}")
    assert "Traceback" not in result.stderr
