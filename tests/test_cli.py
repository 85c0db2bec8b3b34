import json

from gateway.cli import main

SECRET = "BeIukql3pTKJ8RGL5zo0DA=="
TOKEN_KEY = "a-stream-token-key-of-32-chars!!"


def test_check_prints_the_effective_configuration_with_secrets_masked(monkeypatch, capsys):
    monkeypatch.setenv("SINCH_APPLICATION_SECRET", SECRET)
    monkeypatch.setenv("GATEWAY_TOKEN_KEY", TOKEN_KEY)
    code = main(["check", "--route", "asr=rtp://10.0.0.5:5004?codec=PCMU&token=static-secret", "--workers", "3"])
    out = capsys.readouterr().out
    assert code == 0
    config = json.loads(out)
    assert config["workers"] == 3
    assert config["routes"]["asr"]["codec"] == "PCMU"
    assert config["sinch_application_secret"] == config["token_key"] == config["routes"]["asr"]["token"] == "***"
    assert SECRET not in out and TOKEN_KEY not in out and "static-secret" not in out


def test_check_exits_2_naming_the_key(capsys):
    assert main(["check", "--rtp-ports", "9-5"]) == 2
    assert "config error: rtp_ports" in capsys.readouterr().err
