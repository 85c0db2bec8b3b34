"""Starting a child process: fork, then, in the child, shed what is the supervisor's and run what it is for.
What a child runs is named as a `module:function` target and imported only in the child, after fork, so the
supervisor imports nothing of the media path."""

from __future__ import annotations

import contextlib
import ctypes
import importlib
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

from gateway.process.listeners import Listeners
from gateway.process.signals import SignalQueue
from gateway.shared.config import Config
from gateway.shared.replay import ReplayGuard
from gateway.shared.scoreboard import Scoreboard

WORKER_TARGET = "gateway.dataplane.worker:run_worker"
CONTROL_TARGET = "gateway.control.app:run_control"
PR_SET_PDEATHSIG = 1


@dataclass
class Spawner:
    """Forks the two kinds of child, each with what it inherits; returns the child's pid."""

    listeners: Listeners
    scoreboard: Scoreboard  # workers beat in it; the control process reads it (health, readiness)
    # Shared by the workers (a stream token is used once whichever worker takes it) and the control process (a
    # signed callback is accepted once, even across a control-process restart).
    replay_guard: ReplayGuard
    signals: SignalQueue

    def worker(self, config: Config, listener: int, slot: int) -> int:
        return fork(partial(self._run_worker, config, listener, slot), self.signals)

    def control(self, config: Config) -> int:
        return fork(partial(self._run_control, config), self.signals)

    def _run_worker(self, config: Config, listener: int, slot: int) -> int:
        sock = self.listeners.workers[listener]
        self.listeners.keep_only(sock)
        return load(WORKER_TARGET)(config, sock, slot, self.scoreboard, self.replay_guard)

    def _run_control(self, config: Config) -> int:
        metrics, callback = self.listeners.metrics, self.listeners.callback
        self.listeners.keep_only(metrics, callback)
        return load(CONTROL_TARGET)(config, metrics, callback, self.scoreboard, self.replay_guard)


def fork(run: Callable[[], int], signals: SignalQueue) -> int:
    """The child's pid, in the parent. The child runs `run` and exits with the code it returns, or with 1 if it
    raises (logged as child.crashed); it never returns from here."""
    pid = os.fork()
    if pid != 0:
        return pid
    code = 1
    try:
        signals.uninstall_in_child()
        _die_with_parent()
        code = run()
    except BaseException:
        logging.getLogger("gateway.child").exception("child.crashed")
    finally:
        os._exit(code)


def load(target: str) -> Callable[..., int]:
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)


def _die_with_parent() -> None:
    """Linux: the kernel sends SIGTERM (a drain) to this child if the supervisor dies, so no orphan lingers.
    Workers also watch getppid() in their heartbeat: for other systems, and for the race where the parent
    died before this call."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
