"""The control process as the supervisor keeps it: one at a time, replaced after a reload (it signs stream tokens
and answers ICE with routes, so it must never run ahead of the workers), restarted when it dies.

One that cannot boot at start stops the gateway, as a worker would. Once one has run for STABLE_AFTER, calls in
progress do not depend on it, so it never stops the gateway again: it is replaced with a backoff of its own,
which grows while replacements die young."""

from __future__ import annotations

import signal
from collections.abc import Callable

from gateway.process.children import Child, ChildTable
from gateway.process.restarts import STABLE_AFTER, RestartPolicy


class ControlProcess:
    def __init__(self, children: ChildTable, spawn: Callable[[], None]) -> None:
        self.children = children
        self.spawn = spawn
        # Every death counts (one that ran for STABLE_AFTER starts the count anew); the first of a row is replaced
        # after BACKOFF_START.
        self.restarts = RestartPolicy(spared=1)
        self.proven = False  # one has run for STABLE_AFTER: later failures only back off

    def exited(self, child: Child, now: float) -> bool:
        """Count its unexpected death; returns whether the gateway must stop (no control process could boot)."""
        if now - child.started >= STABLE_AFTER:
            self.proven = True
            self.restarts.reset()  # it ran for long: its death starts a new count
        self.restarts.child_died(now, failed=True)
        return not self.proven and self.restarts.cannot_boot

    def keep(self, now: float) -> None:
        """Start one if none runs and the backoff has passed."""
        if self.restarts.due(now) and not self.children.active("control"):
            self.spawn()
        if any(now - child.started >= STABLE_AFTER for child in self.children.values() if child.kind == "control"):
            self.proven = True

    def replace(self) -> None:
        for child in self.children.active("control"):
            self.spawn()
            child.retiring = True
            self.children.signal(child, signal.SIGTERM)
