"""A SIGHUP's roll from one generation of workers to the next: the new generation starts beside the old one,
which retires (stops accepting, drains) once the new one serves in full. If the new generation cannot boot (a
bad deploy, a file it cannot read), the roll is abandoned and the old generation, which still serves, goes on
with the configuration it was started with; the next SIGHUP tries again. (gunicorn halts the whole arbiter
there, taking every call down with it.)"""

from __future__ import annotations

import signal

from gateway.process.children import Child, ChildTable
from gateway.process.listeners import BOUND_AT_START
from gateway.shared.config import Config


class Roll:
    def __init__(self, children: ChildTable) -> None:
        self.children = children
        self.old_generation: list[Child] = []  # to retire once the new one serves; empty: no roll in progress
        self.before: tuple[Config, int] | None = None  # what the old generation runs with: config, worker target

    @property
    def in_progress(self) -> bool:
        return bool(self.old_generation)

    def begin(self, config: Config, target_workers: int) -> list[Child]:
        """Mark the active workers as replaced (no longer counted as active) and return them: each gets a
        successor on its listener. A roll still in progress (a second SIGHUP) retires with this one, and what
        the first old generation runs with stays what an abandoned roll goes back to."""
        if not self.in_progress:
            self.before = (config, target_workers)
        replaced = self.children.active("worker")
        for child in replaced:
            child.retiring = True
        self.old_generation.extend(replaced)
        return replaced

    def ready(self, active: list[Child], target_workers: int) -> bool:
        """Whether the new generation serves in full."""
        return self.in_progress and len(active) >= target_workers and all(child.served for child in active)

    def finish(self) -> None:
        for child in self.old_generation:
            self.children.retire(child)
        self.old_generation = []
        self.before = None

    def abandon(self, config: Config, target_workers: int) -> tuple[int, Config, int]:
        """Stop the new generation and keep the old one serving; a middle generation (two quick SIGHUPs) that
        never served is stopped with the new one. Returns how many old workers are kept, and the configuration
        and worker target to go on with: the old generation's (a target that SIGTTIN/SIGTTOU set during the roll
        stays, unless the reload changed `workers`)."""
        for child in self.children.active("worker"):  # the new generation: the old one is marked retiring
            if self.children.served(child):
                self.children.retire(child)  # a new worker that did boot leaves gracefully with its calls
            else:
                child.retiring = True
                self.children.signal(child, signal.SIGKILL)
        kept = 0
        for child in (c for c in self.old_generation if c.pid in self.children):
            if child.served:
                child.retiring = False
                kept += 1
            else:
                self.children.signal(child, signal.SIGKILL)
        self.old_generation = []
        if self.before is not None:
            old_config, old_target = self.before
            if old_config.workers != config.workers:
                target_workers = old_target
            config = old_config
            self.before = None
        return kept, config, target_workers


def reloaded_target(current: Config, new: Config, target_workers: int) -> tuple[int, list[str]]:
    """The worker target under `new`, and the keys that changed but take effect only on a restart: those of the
    sockets bound at start, and `workers` under accept=reuseport (one SO_REUSEPORT socket per listener, bound at
    start; see SIGTTOU)."""
    needs_restart = [key for key in BOUND_AT_START if getattr(new, key) != getattr(current, key)]
    if new.workers != current.workers:
        if current.accept == "reuseport":
            needs_restart.append("workers")
        else:
            target_workers = new.worker_count
    return target_workers, needs_restart
