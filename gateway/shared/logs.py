"""Structured logs: one JSON object per line on stderr, one line per event, with the call id when there is one."""

from __future__ import annotations

import logging
import sys
import time
from typing import Any

import msgspec

_encode = msgspec.json.Encoder().encode


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "pid": record.process,
            "event": record.getMessage(),
        }
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return _encode(entry).decode()


def setup(level: str) -> None:
    # What a LogRecord would gather and JsonFormatter never writes (the caller's frame, walked up the stack; the
    # thread, process and task names) is not gathered: a call's log lines were among the largest costs of its
    # setup and end (py-spy under churn). The logging HOWTO's "Optimization" section documents these switches;
    # the pid is written, so logProcesses stays on.
    logging._srcfile = None
    logging.logThreads = False
    logging.logMultiprocessing = False
    logging.logAsyncioTasks = False  # Python 3.12+
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    logging.getLogger("picows").setLevel(max(logging.WARNING, root.level))


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """`log_event(log, logging.INFO, "call.answered", call_id=..., rate=16000)`."""
    if logger.isEnabledFor(level):
        logger.log(level, event, extra={"fields": fields})


class RateLimitedEvent:
    """A log event that can repeat in a flood (every upgrade refused while a worker is out of descriptors): one
    line per `interval` seconds at most, and the next line says how many were held back meanwhile."""

    def __init__(self, logger: logging.Logger, level: int, event: str, interval: float = 1.0) -> None:
        self.logger = logger
        self.level = level
        self.event = event
        self.interval = interval
        self._next_at = 0.0
        self._held_back = 0

    def __call__(self, **fields: Any) -> None:
        now = time.monotonic()
        if now < self._next_at:
            self._held_back += 1
            return
        log_event(self.logger, self.level, self.event, held_back=self._held_back, **fields)
        self._held_back = 0
        self._next_at = now + self.interval
