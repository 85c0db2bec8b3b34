"""When a child that died is replaced, and when replacing it stops making sense: one RestartPolicy for the
workers and one for the control process.

A failure is a death that counts against the child's code: a worker's that never served; any death of the
control process (one that ran for STABLE_AFTER starts the count anew). The wait before a replacement doubles
with each failure in a row past the `spared` ones, from BACKOFF_START to BACKOFF_MAX; MAX_BOOT_FAILURES in a row
mean the child cannot boot (what the supervisor then does depends on what still serves:
gateway.process.supervisor).
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_BOOT_FAILURES = 3  # consecutive children that die before serving: stop instead of crash-looping
BACKOFF_START = 0.1
BACKOFF_MAX = 10.0
STABLE_AFTER = 10.0  # a child running this long has proven itself


@dataclass
class RestartPolicy:
    spared: int = 0  # failures in a row replaced after BACKOFF_START before the wait starts doubling
    failures: int = 0  # in a row
    last_failure_at: float = 0.0
    backoff_until: float = 0.0  # no replacement before this (time.monotonic())

    def child_died(self, now: float, failed: bool) -> None:
        """A child died at `now` (a failure if `failed`): hold its replacement back."""
        self.last_failure_at = now
        if failed:
            self.failures += 1
        self.backoff_until = self.last_failure_at + backoff(self.failures - self.spared)

    def child_stable(self, started: float, now: float) -> None:
        """A child started at `started` serves: once it has run for STABLE_AFTER, the count of failures starts
        again, if it was started after the last failure (one started before proves nothing of its replacements)."""
        if now - started > STABLE_AFTER and started > self.last_failure_at:
            self.failures = 0

    def reset(self) -> None:
        """Forget the failures (of code being replaced: they must not count against the new code)."""
        self.failures = 0
        self.backoff_until = 0.0

    def due(self, now: float) -> bool:
        return now >= self.backoff_until

    @property
    def cannot_boot(self) -> bool:
        return self.failures >= MAX_BOOT_FAILURES


def backoff(doublings: int) -> float:
    """Seconds to wait before replacing a child: BACKOFF_START doubled per recent failure, at most BACKOFF_MAX."""
    return min(BACKOFF_START * 2 ** doublings, BACKOFF_MAX)
