"""deploy/systemd/stream-gateway.service, checked with systemd's own tools (no systemd running needed):
`systemd-analyze verify` parses it, `systemd-analyze security --offline` scores its hardening, and it agrees
with the gateway: sd_notify, the stop timeout over the drain, credentials as files the gateway reads."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.process.supervisor import CLOSE_GRACE
from gateway.shared.config import CREDENTIAL_KEYS, FILE_SUFFIX, Config, env_names
from gateway.shared.exit_codes import EXIT_BOOT_FAILURE, EXIT_CONFIG_ERROR

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "deploy" / "systemd" / "stream-gateway.service"
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze is not installed (Debian's systemd)")
MOST_EXPOSED = 2.0  # systemd-analyze security: 0 (locked down) .. 10 (exposed); "OK" is below 3


def service() -> dict[str, list[str]]:
    """The [Service] section, each key with all its values in order (systemd keys repeat)."""
    values: dict[str, list[str]] = {}
    section = ""
    for line in UNIT.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            values.setdefault(key, []).append(value)
    return values


@pytest.fixture
def installed_unit(tmp_path) -> Path:
    """The unit with ExecStart pointing at this checkout's gateway (verify checks that the binary exists)."""
    unit = tmp_path / UNIT.name
    gateway = Path(sys.executable).parent / "gateway"
    unit.write_text(UNIT.read_text().replace("/opt/stream-gateway/.venv/bin/gateway", str(gateway)))
    return unit


@needs_analyze
def test_systemd_parses_the_unit(installed_unit):
    result = subprocess.run([ANALYZE, "verify", str(installed_unit)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


@needs_analyze
def test_the_unit_is_hardened(installed_unit):
    result = subprocess.run([ANALYZE, "security", "--offline=true", str(installed_unit)], capture_output=True,
                            text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for \S+: ([\d.]+)", result.stdout)
    assert exposure, result.stdout + result.stderr
    assert float(exposure[1]) <= MOST_EXPOSED, result.stdout


def test_the_unit_agrees_with_the_gateway():
    values = service()
    assert values["Type"] == ["notify"]  # gateway.process.systemd_notify: READY=1, RELOADING=1, STOPPING=1
    assert values["ExecReload"] == ["/bin/kill -HUP $MAINPID"]  # SIGHUP: reload and roll the workers
    stop = float(values["TimeoutStopSec"][0])
    assert stop >= Config().drain_timeout + CLOSE_GRACE
    assert set(values["RestartPreventExitStatus"][0].split()) == {str(EXIT_CONFIG_ERROR), str(EXIT_BOOT_FAILURE)}
    credentials = {line.partition(":")[0] for line in values["LoadCredential"]}
    credential_env = {name for name, key in env_names().items() if key in CREDENTIAL_KEYS}
    for line in values["Environment"]:
        name, _, value = line.partition("=")
        assert name.removesuffix(FILE_SUFFIX) in credential_env and name.endswith(FILE_SUFFIX), name
        assert value.removeprefix("%d/") in credentials, line

