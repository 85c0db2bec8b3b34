"""The signals the supervisor acts on, queued: a handler only appends (async-signal safety) and the loop does the
work; signal.set_wakeup_fd writes to a pipe the loop waits on, so a signal ends the wait at once."""

from __future__ import annotations

import contextlib
import os
import select
import signal
from collections import deque
from collections.abc import Iterator

HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGUSR2)


class SignalQueue:
    def __init__(self) -> None:
        self._queue: deque[int] = deque()
        self._wakeup_r, self._wakeup_w = os.pipe()

    def install(self) -> None:
        os.set_blocking(self._wakeup_w, False)
        signal.set_wakeup_fd(self._wakeup_w)
        for signum in HANDLED_SIGNALS:
            signal.signal(signum, self._enqueue)
        signal.signal(signal.SIGCHLD, _wake_only)  # the loop reaps children every round

    def wait(self, timeout: float) -> None:
        """Until a signal arrives or `timeout` seconds pass."""
        with contextlib.suppress(InterruptedError):
            ready, _, _ = select.select([self._wakeup_r], [], [], timeout)
            if ready:
                with contextlib.suppress(BlockingIOError):
                    os.read(self._wakeup_r, 4096)

    def take(self) -> Iterator[int]:
        """The queued signals, oldest first, including any that arrive meanwhile."""
        while self._queue:
            yield self._queue.popleft()

    def uninstall_in_child(self) -> None:
        """In a forked child: the default dispositions again, and none of the supervisor's pipe."""
        for signum in (*HANDLED_SIGNALS, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.set_wakeup_fd(-1)
        os.close(self._wakeup_r)
        os.close(self._wakeup_w)

    def _enqueue(self, signum: int, _frame: object) -> None:
        self._queue.append(signum)


def _wake_only(_signum: int, _frame: object) -> None:
    """A Python handler, so that the signal writes to the wakeup pipe; nothing else to do."""
