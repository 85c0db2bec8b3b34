"""The supervisor's children by pid: what each is (a worker or the control process), where a worker accepts and
beats, what it has shown; and what the supervisor asks of them (which are active, which serve) or tells them
(signals). Every signal to a child goes through send_signal."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from gateway.shared.logs import log_event
from gateway.shared.scoreboard import Scoreboard, WorkerState

log = logging.getLogger("gateway.supervisor")


@dataclass
class Child:
    pid: int
    kind: str  # "worker" or "control"
    listener: int = -1  # workers: the socket it accepts on, as an index into Listeners.workers
    slot: int = -1  # workers: its scoreboard slot (where it beats, and the `slot` label of its metrics)
    started: float = field(default_factory=time.monotonic)
    retiring: bool = False  # told to leave (or replaced and about to be): no longer counted among the active
    served: bool = False  # its heartbeat said SERVING once
    stuck: bool = False  # killed for a heartbeat that stopped


class ChildTable(dict[int, Child]):
    def __init__(self, scoreboard: Scoreboard) -> None:
        super().__init__()
        self.scoreboard = scoreboard

    def workers(self) -> list[Child]:
        return [child for child in self.values() if child.kind == "worker"]

    def active(self, kind: str) -> list[Child]:
        return [child for child in self.values() if child.kind == kind and not child.retiring]

    def served(self, child: Child) -> bool:
        """Whether the child has served, by what the supervisor saw or, for a worker, by its scoreboard slot now
        (a worker that served and died between two looks at the scoreboard)."""
        if child.served or child.kind != "worker":
            return child.served
        pid, state, _ = self.scoreboard.read(child.slot)
        return pid == child.pid and state in (WorkerState.SERVING, WorkerState.DRAINING)

    def carry_calls(self) -> bool:
        """Whether an active worker serves: halting the gateway would drop its calls."""
        return any(child.served for child in self.active("worker"))

    def free_listener(self, listener_count: int) -> int:
        """For a new worker: the listener that the fewest active workers accept on (the first of equals)."""
        taken = [0] * listener_count
        for child in self.active("worker"):
            taken[child.listener] += 1
        return taken.index(min(taken))

    def retire(self, child: Child) -> None:
        """Tell a worker to stop accepting and leave once its calls end."""
        child.retiring = True
        send_signal(child.pid, signal.SIGUSR1)
        log_event(log, logging.INFO, "supervisor.retiring", child_pid=child.pid)

    def signal(self, child: Child, signum: int) -> None:
        send_signal(child.pid, signum)

    def signal_all(self, signum: int, kind: str | None = None) -> None:
        for child in list(self.values()):
            if kind is None or child.kind == kind:
                send_signal(child.pid, signum)

    def reaped(self) -> Iterator[tuple[Child, int]]:
        """The children that have exited, each with its exit code (negative: the signal that ended it)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            child = self.pop(pid, None)
            if child is not None:
                yield child, os.waitstatus_to_exitcode(status)

    def reap_all(self) -> None:
        """Wait for every child to exit (after SIGKILL) and free its scoreboard slot."""
        for pid in list(self):
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
            self.free_slot(self.pop(pid))

    def free_slot(self, child: Child) -> None:
        if child.slot >= 0:
            self.scoreboard.clear(child.slot)


def send_signal(pid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signum)
