"""The gateway speaks sd_notify (gateway.process.systemd_notify) to the socket NOTIFY_SOCKET names, as systemd
hands a Type=notify service (deploy/systemd/): READY=1 once its workers serve, RELOADING=1 then READY=1 again
around a SIGHUP roll, STOPPING=1 when SIGTERM drains. Here the test holds the socket, as systemd would."""

from __future__ import annotations

import signal
import socket

from gateway.process.systemd_notify import SystemdNotifier
from tests.gateway_process import GatewayProcess

WAIT = 15.0  # seconds for one notification: a roll boots a new worker first


def received(sock: socket.socket) -> dict[str, str]:
    """The next notification's NAME=VALUE lines (the receive timeout is the wait, not a sleep)."""
    sock.settimeout(WAIT)
    return dict(line.split("=", 1) for line in sock.recv(4096).decode().splitlines())


def test_ready_reloading_and_stopping_reach_the_notify_socket(tmp_path):
    path = tmp_path / "notify"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(str(path))
        gateway = GatewayProcess(workers=2, env={"NOTIFY_SOCKET": str(path)}).start()
        try:
            ready = received(sock)
            assert ready["READY"] == "1" and ready["STATUS"] == "2 workers serving"
            gateway.proc.send_signal(signal.SIGHUP)
            reloading = received(sock)
            assert reloading["RELOADING"] == "1" and int(reloading["MONOTONIC_USEC"]) > 0
            assert received(sock)["READY"] == "1"  # once the new workers serve
            gateway.proc.send_signal(signal.SIGTERM)
            assert received(sock) == {"STOPPING": "1"}
        finally:
            assert gateway.stop() == 0


def test_an_abstract_socket_name_is_understood():
    """NOTIFY_SOCKET=@name: the abstract namespace (a leading NUL byte), as systemd usually passes it."""
    name = f"gateway-notify-test-{id(object())}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        SystemdNotifier("@" + name).stopping()
        assert received(sock) == {"STOPPING": "1"}
