"""The workers as the supervisor keeps them: as many active as the target, each one that dies replaced once the
backoff of their RestartPolicy has passed, one whose heartbeat stopped killed (and so replaced). Why a worker
was replaced is the `reason` label of gateway_worker_restarts_total: restart_reason()."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable

from gateway.process.children import Child, ChildTable
from gateway.process.restarts import RestartPolicy
from gateway.shared.exit_codes import EXIT_BOOT_FAILURE
from gateway.shared.logs import log_event
from gateway.shared.scoreboard import WorkerState

log = logging.getLogger("gateway.supervisor")


class Workers:
    def __init__(self, children: ChildTable, spawn: Callable[[], None]) -> None:
        self.children = children
        self.spawn = spawn
        self.restarts = RestartPolicy()

    def exited(self, code: int, served: bool, now: float) -> bool:
        """Count an unexpected death; returns whether workers cannot boot."""
        self.restarts.child_died(now, failed=not served)
        return code == EXIT_BOOT_FAILURE or self.restarts.cannot_boot

    def keep(self, active: list[Child], target: int, now: float) -> None:
        """Start one if fewer than `target` are active and the backoff has passed; retire the newest if more."""
        if len(active) < target and self.restarts.due(now):
            self.spawn()
        elif len(active) > target:
            self.children.retire(max(active, key=lambda child: child.started))

    def check_heartbeats(self, now: float, timeout: float) -> None:
        """Note which workers serve (a worker serving for long proves the fix: RestartPolicy.child_stable); kill
        one whose heartbeat is older than `timeout` (three times that while it boots)."""
        for child in self.children.workers():
            pid, state, beat = self.children.scoreboard.read(child.slot)
            if state is WorkerState.SERVING:
                child.served = True
            if child.served:
                self.restarts.child_stable(child.started, now)
            limit = timeout if child.served else timeout * 3
            if pid == child.pid and now - beat > limit and not child.stuck:
                log_event(log, logging.ERROR, "supervisor.worker_stuck", child_pid=child.pid,
                          seconds_since_heartbeat=round(now - beat, 1))
                child.stuck = True
                self.children.signal(child, signal.SIGKILL)


def restart_reason(child: Child, served: bool, code: int) -> str:
    """The `reason` of gateway_worker_restarts_total for a worker that died unexpectedly. One that never served
    carried no call: counted apart, so a restart alert means lost calls."""
    if child.stuck:
        return "stuck"
    if not served:
        return "boot_failed"
    return "killed" if code < 0 else "exited"
