"""A timer on the worker's loop that knows when it is due, and can be re-armed or brought forward.

uvloop's `call_at` returns a TimerHandle for a time in the future but a plain Handle, which has no `when()`, for
one that is not: asking the handle broke a failover under load (a 1011) and a second SIGTERM with
`drain_timeout = 0`. So the time is kept here, for every timer that is compared against a new time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable


class LoopTimer:
    """Calls `callback(at)` at `at`, the time it was armed for (a late call can tell how late it is)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, callback: Callable[[float], None]) -> None:
        self._loop = loop
        self._callback = callback
        self._handle: asyncio.Handle | None = None
        self.at = 0.0  # when it is due; meaningful once armed

    @property
    def armed(self) -> bool:
        """Armed at least once (it may have fired since)."""
        return self._handle is not None

    def arm(self, at: float) -> None:
        """Due at `at` instead of whenever it was due (from its own callback too: the handle that fired is done)."""
        if self._handle is not None:
            self._handle.cancel()
        self.at = at
        self._handle = self._loop.call_at(at, self._callback, at)

    def no_later_than(self, at: float) -> None:
        """Due at `at` if it was not armed or was due later; else as it was."""
        if self._handle is None or self.at > at:
            self.arm(at)
