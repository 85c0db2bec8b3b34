"""Entry points run inside a forked child: a worker on uvloop. The supervisor names it as a target."""

from __future__ import annotations

import logging
import socket

import uvloop

from gateway.config import Config
from gateway.logs import log_event
from gateway.replay import ReplayGuard
from gateway.scoreboard import Scoreboard
from gateway.supervisor import EXIT_BOOT_FAILURE
from gateway.worker import Worker

log = logging.getLogger("gateway.worker")


def run_worker(
    config: Config, sock: socket.socket, slot: int, scoreboard: Scoreboard, replay_guard: ReplayGuard
) -> int:
    try:
        uvloop.run(Worker(config, slot, scoreboard, replay_guard).run(sock))
    except OSError as exc:
        log_event(log, logging.ERROR, "worker.boot_failed", error=str(exc))
        return EXIT_BOOT_FAILURE
    return 0
