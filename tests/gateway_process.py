"""Starts the real gateway as a subprocess for end-to-end tests and reads its structured log."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import resource
import subprocess
import sys
import threading
import time
import urllib.request
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port

STARTUP_TIMEOUT = 15.0


class GatewayProcess:
    """`gateway serve` on loopback. Log lines (JSON) are collected; tests wait on them, never on sleeps."""

    def __init__(self, *args: str, workers: int = 1, env: dict[str, str] | None = None,
                 cwd: str | None = None, open_files: tuple[int, int] | None = None,
                 ports_of: GatewayProcess | None = None, host: str = "127.0.0.1") -> None:
        """`open_files`: the (soft, hard) RLIMIT_NOFILE it starts with; `ports_of`: listen on that gateway's
        address and ports (a restart), else on `host`."""
        if ports_of is None:
            self.port, self.metrics_port, self.callback_port = free_port(), free_port(), free_port()
            self.host = host
        else:
            self.port, self.metrics_port, self.callback_port = (
                ports_of.port, ports_of.metrics_port, ports_of.callback_port)
            self.host = ports_of.host
        self.open_files = open_files
        self.callback_url = f"http://{self.host}:{self.callback_port}/sinch/callback"
        self.workers = workers
        self.url = f"ws://{self.host}:{self.port}"
        self.metrics_url = f"http://{self.host}:{self.metrics_port}"
        self.args = ["--listen", f"{self.host}:{self.port}", "--metrics-listen", f"{self.host}:{self.metrics_port}",
                     "--callback-listen", f"{self.host}:{self.callback_port}",
                     "--workers", str(workers), "--rtp-host", "127.0.0.1", *args]
        self.env = {**os.environ, **(env or {})}
        self.cwd = cwd  # `python -m gateway` imports the package found here first
        self.events: list[dict[str, Any]] = []
        self.raw_lines: list[str] = []
        self._new_lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._log_closed = threading.Event()
        self.proc: subprocess.Popen[str] | None = None

    def start(self) -> GatewayProcess:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "serve", *self.args],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=self.env,
            cwd=self.cwd, preexec_fn=self._limit_open_files if self.open_files else None,
        )
        threading.Thread(target=self._read_log, daemon=True).start()
        self.wait_for("control.listening", timeout=STARTUP_TIMEOUT)
        self.wait_count("worker.listening", self.workers, timeout=STARTUP_TIMEOUT)
        return self

    def _limit_open_files(self) -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, self.open_files)

    def _read_log(self) -> None:
        for line in self.proc.stderr:
            self.raw_lines.append(line)
            try:
                event = json.loads(line)
            except ValueError:
                continue
            self.events.append(event)
            self._new_lines.put(event)
        self._log_closed.set()  # every process writing to the log has exited (orphaned workers included)

    def wait_for(self, event: str, timeout: float = 10.0, **fields: Any) -> dict[str, Any]:
        """Block until a log event with these fields appears (already seen ones count)."""
        return self.wait_count(event, 1, timeout, **fields)[0]

    def wait_count(self, event: str, count: int, timeout: float = 10.0, **fields: Any) -> list[dict[str, Any]]:
        """Block until `count` log events with these fields have appeared."""
        def matches() -> list[dict[str, Any]]:
            return [e for e in list(self.events)
                    if e.get("event") == event and all(e.get(k) == v for k, v in fields.items())]

        deadline = time.monotonic() + timeout
        while len(found := matches()) < count:
            left = deadline - time.monotonic()
            # Give up early only once nothing can write more: a worker may outlive its supervisor (and log).
            if left <= 0 or (self._log_closed.is_set() and self._new_lines.empty()):
                raise AssertionError(
                    f"{len(found)}/{count} {event} {fields} in gateway log:\n{''.join(self.raw_lines[-30:])}"
                )
            with contextlib.suppress(queue.Empty):
                self._new_lines.get(timeout=left)
        return found

    def stop(self) -> int:
        return stop_process(self.proc)


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> int:
    """SIGTERM, then SIGKILL if it has not exited within `timeout`; the exit status."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def scrape(gateway: GatewayProcess) -> dict[tuple[str, tuple], float]:
    """Every sample of the gateway's /metrics, keyed by name and sorted labels."""
    with urllib.request.urlopen(gateway.metrics_url + "/metrics", timeout=5) as response:
        text = response.read().decode()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)
