"""Debian's redis-server on loopback for the tests of a fleet's replay store: started and stopped by the test,
nothing written to disk."""

from __future__ import annotations

import shutil
import subprocess
import threading

import pytest

from tests.gateway_process import stop_process
from tests.ports import free_port

READY_LINE = "Ready to accept connections"


class RedisServer:
    def __init__(self) -> None:
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            pytest.skip("redis-server is not installed (scripts/bootstrap test installs Debian's)")
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> RedisServer:
        """Start it (again, on the same port) and return once it accepts connections."""
        self.proc = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
             "--daemonize", "no", "--loglevel", "notice"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        seen = []
        for line in self.proc.stdout:
            seen.append(line)
            if READY_LINE in line:
                threading.Thread(target=self.proc.stdout.read, daemon=True).start()  # the rest, unread
                return self
        raise AssertionError("redis-server did not start:\n" + "".join(seen))

    def stop(self) -> None:
        if self.proc is not None:
            stop_process(self.proc)
            self.proc = None
