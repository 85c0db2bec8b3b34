

from gateway.dataplane.worker import Worker
from gateway.shared.config import Config, Route
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import Scoreboard

ASR = Route(name="asr", host="127.0.0.1", port=5004)


def worker(**config) -> Worker:
    return Worker(Config(routes={"asr": ASR}, **config), 0, Scoreboard(), ReplayGuard(capacity=16))


def test_admission_by_calls_and_by_cpu():
    call = object()  # the call being admitted: looked at only while its token is claimed in a fleet's store
    calls = worker(max_calls=2)
    assert calls.admit(call)
    calls.answered_calls = 2
    assert not calls.admit(call)
    cpu = worker(max_cpu_percent=80)
    cpu.cpu_percent = 79.0
    assert cpu.admit(call)
    cpu.cpu_percent = 80.0
    assert not cpu.admit(call)
    assert worker().admit(call)  # no caps configured


def test_a_worker_without_call_events_does_not_import_aiohttp():
    """aiohttp loads the system's CA certificates at import: a fifth of a second of CPU, and memory, per worker."""
    import subprocess
    import sys

    code = "import sys, gateway.dataplane.worker; print('aiohttp' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "False"

