import json

from gateway.cli import main

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


def test_check_exits_2_naming_the_key(capsys):
    assert main(["check", "--rtp-ports", "9-5"]) == 2
    assert "config error: rtp_ports" in capsys.readouterr().err
