"""Runs a worker on uvloop. (One process for now; the prefork supervisor will fork several.)"""

from __future__ import annotations

import logging
import socket

import uvloop

from gateway.config import Config
from gateway.logs import log_event
from gateway.worker import Worker

log = logging.getLogger("gateway.server")

EXIT_BOOT_FAILURE = 3


def serve(config: Config, sock: socket.socket | None = None) -> int:
    try:
        uvloop.run(Worker(config).run(sock))
    except OSError as exc:  # e.g. the listen port is taken
        log_event(log, logging.ERROR, "worker.boot_failed", error=str(exc), listen=config.listen)
        return EXIT_BOOT_FAILURE
    return 0
