"""The three things the benchmark measures, as subprocesses on loopback: the gateway (one worker, its route
to the bench's media echo), the naive baseline bridge and the native floor (the same bridge in C), both to the
same echo."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path

STARTUP_TIMEOUT = 30.0
STOP_TIMEOUT = 15.0
ROUTE = "bench"


def free_tcp_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Subject:
    """A server under test; `start` returns once it says it listens (a line on its output, no polling)."""

    def __init__(self, name: str, command: list[str], url: str, ready: Callable[[dict], bool], stream: str,
                 metrics_url: str = "") -> None:
        self.name = name
        self.command = command
        self.url = url
        self.metrics_url = metrics_url  # "" for a subject without Prometheus metrics
        self._ready = ready
        self._stream = stream
        self.proc: subprocess.Popen[str] | None = None
        self.tail: list[str] = []
        self.keep_events = False  # keep every JSON line of the output in `events`
        self.events: list[dict] = []

    @property
    def pid(self) -> int:
        return self.proc.pid

    def start(self) -> Subject:
        pipe = {self._stream: subprocess.PIPE}
        other = "stderr" if self._stream == "stdout" else "stdout"
        self.proc = subprocess.Popen(self.command, stdin=subprocess.DEVNULL, text=True,
                                     **pipe, **{other: subprocess.DEVNULL})
        listening = threading.Event()
        threading.Thread(target=self._read, args=(getattr(self.proc, self._stream), listening), daemon=True).start()
        if not listening.wait(STARTUP_TIMEOUT):
            self.stop()
            raise RuntimeError(f"{self.name} did not start:\n{''.join(self.tail[-20:])}")
        return self

    def _read(self, stream: object, listening: threading.Event) -> None:
        """Keeps draining the output (a full pipe would stall the server) and keeps its tail."""
        for line in stream:  # type: ignore[attr-defined]
            self.tail = [*self.tail[-50:], line]
            if listening.is_set() and not self.keep_events:
                continue
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if not isinstance(event, dict):
                continue
            if self.keep_events:
                self.events.append(event)
            if self._ready(event):
                listening.set()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


def gateway(echo_port: int, workers: int = 1) -> Subject:
    port, metrics_port = free_tcp_port(), free_tcp_port()
    command = [
        sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{port}", "--workers", str(workers),
        "--metrics-listen", f"127.0.0.1:{metrics_port}", "--callback-listen", f"127.0.0.1:{free_tcp_port()}",
        "--rtp-host", "127.0.0.1", "--route", f"{ROUTE}=rtp://127.0.0.1:{echo_port}",
    ]
    return Subject("gateway", command, f"ws://127.0.0.1:{port}/stream/{ROUTE}",
                   lambda event: event.get("event") == "worker.listening", "stderr",
                   metrics_url=f"http://127.0.0.1:{metrics_port}/metrics")


def naive(echo_port: int) -> Subject:
    port = free_tcp_port()
    command = [sys.executable, "-m", "loadtest.bench.baselines.naive_bridge", "--listen", f"127.0.0.1:{port}",
               "--media", f"127.0.0.1:{echo_port}"]
    return Subject("naive", command, f"ws://127.0.0.1:{port}/stream/{ROUTE}",
                   lambda event: event.get("event") == "naive.listening", "stdout")


NATIVE_SOURCE = Path(__file__).parent / "baselines" / "native_bridge.c"


def build_native(directory: Path) -> Path:
    """Compile the native floor with the system C compiler ($CC, else cc); the executable's path."""
    executable = directory / "native_bridge"
    compiler = os.environ.get("CC", "cc")
    result = subprocess.run([compiler, "-O2", "-o", str(executable), str(NATIVE_SOURCE)], capture_output=True,
                            text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{compiler} could not build {NATIVE_SOURCE.name}:\n{result.stderr}")
    return executable


def native(echo_port: int, executable: Path) -> Subject:
    port = free_tcp_port()
    return Subject("native", [str(executable), f"127.0.0.1:{port}", f"127.0.0.1:{echo_port}"],
                   f"ws://127.0.0.1:{port}/stream/{ROUTE}",
                   lambda event: event.get("event") == "native.listening", "stdout")
