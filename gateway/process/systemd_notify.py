"""Tells systemd where the gateway is (Type=notify units: deploy/systemd/): READY=1 once its workers serve,
RELOADING=1 while SIGHUP rolls them, STOPPING=1 when it drains. The sd_notify(3) protocol is one datagram of
NAME=VALUE lines on the unix socket NOTIFY_SOCKET names (a leading '@': the abstract namespace); without
NOTIFY_SOCKET it does nothing. A few lines of the socket module: the libraries (sdnotify, systemd-python) are
unmaintained or need libsystemd's headers to build.
"""

from __future__ import annotations

import logging
import os
import socket
import time

from gateway.shared.logs import log_event

log = logging.getLogger("gateway.supervisor")


class SystemdNotifier:
    def __init__(self, address: str | None = None) -> None:
        address = os.environ.get("NOTIFY_SOCKET", "") if address is None else address
        self.address = "\0" + address[1:] if address.startswith("@") else address

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}")

    def reloading(self) -> None:
        # MONOTONIC_USEC: when the reload began (systemd's Type=notify-reload needs it)
        self._send(f"RELOADING=1\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}")

    def stopping(self) -> None:
        self._send("STOPPING=1")

    def _send(self, message: str) -> None:
        if not self.address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.sendto(message.encode(), self.address)
        except OSError as exc:  # systemd gone or the socket not ours: the gateway serves all the same
            log_event(log, logging.WARNING, "supervisor.notify_failed", error=exc.strerror, message=message)
