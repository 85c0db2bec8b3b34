"""Debian's HAProxy in TCP mode in front of gateways, as a platform team would run it: round robin over the
instances, each checked on its /readyz (metrics_listen), a server taken out of rotation on the first failed
check. Started and stopped by the test; its log (health-check state changes) is read from stderr."""

from __future__ import annotations

import contextlib
import queue
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from tests.gateway_process import GatewayProcess, stop_process
from tests.ports import free_port

CHECK_INTERVAL_MS = 100

CONFIG = """\
global
    log stderr format raw local0 info

defaults
    mode tcp
    log global
    timeout connect 2s
    timeout client 60s
    timeout server 60s

frontend streams
    bind 127.0.0.1:{port}
    default_backend gateways

backend gateways
    balance roundrobin
    option log-health-checks
    option httpchk
    http-check send meth GET uri /readyz
    http-check expect status 200
    default-server inter {interval}ms fall 1 rise 1
{servers}
"""


class HAProxy:
    def __init__(self, gateways: list[GatewayProcess], folder: Path) -> None:
        self.binary = shutil.which("haproxy")
        if self.binary is None:
            pytest.skip("haproxy is not installed (scripts/bootstrap test installs Debian's)")
        self.port = free_port()
        self.url = f"ws://127.0.0.1:{self.port}"
        servers = "\n".join(f"    server {self.name_of(index)} {gateway.host}:{gateway.port} check port "
                            f"{gateway.metrics_port}" for index, gateway in enumerate(gateways))
        self.servers = len(gateways)
        self.config = folder / "haproxy.cfg"
        self.config.write_text(CONFIG.format(port=self.port, interval=CHECK_INTERVAL_MS, servers=servers))
        self.lines: list[str] = []
        self._new_lines: queue.Queue[str] = queue.Queue()
        self.proc: subprocess.Popen[str] | None = None

    @staticmethod
    def name_of(index: int) -> str:
        return f"gw{index + 1}"

    def start(self) -> HAProxy:
        self.proc = subprocess.Popen([self.binary, "-db", "-f", str(self.config)], stdin=subprocess.DEVNULL,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        threading.Thread(target=self._read_log, daemon=True).start()
        for index in range(self.servers):
            self.wait_for(self.went_up(index))
        return self

    @classmethod
    def went_up(cls, index: int) -> str:
        """The log line of a server's check that passed: with `rise 1`, it is in rotation."""
        return f"Health check for server gateways/{cls.name_of(index)} succeeded"

    @classmethod
    def went_down(cls, index: int) -> str:
        """The log line of a server's check that failed: with `fall 1`, it is out of rotation."""
        return f"Health check for server gateways/{cls.name_of(index)} failed"

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.lines.append(line)
            self._new_lines.put(line)

    def wait_for(self, text: str, after: int = 0, timeout: float = 10.0) -> int:
        """Block until a log line from index `after` on contains `text`; the index after it."""
        deadline = time.monotonic() + timeout
        while True:
            for index in range(after, len(self.lines)):
                if text in self.lines[index]:
                    return index + 1
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None:
                raise AssertionError(f"no {text!r} in haproxy's log:\n{''.join(self.lines[-20:])}")
            with contextlib.suppress(queue.Empty):
                self._new_lines.get(timeout=left)

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
