"""The control process: HTTP for operators and Prometheus, never on the media path.

- `/metrics`: every process's metrics, aggregated by prometheus-client's multiprocess collector.
- `/healthz`: 200 while this process runs.
- `/readyz`: 200 while the gateway runs and at least one worker serves with a fresh heartbeat; 503 while
  booting or draining, so a load balancer stops sending new calls.
- On its own listener (`callback_listen`), Sinch's callbacks: gateway.callbacks, behind
  gateway.connection_guard.

HTTP comes from aiohttp: maintained, asyncio-native, and it runs on the same uvloop as everything else.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import socket

import uvloop
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess

from gateway.control.callbacks import build_callback_app
from gateway.control.connection_guard import ConnectionGuard
from gateway.shared import metrics
from gateway.shared.config import LOCAL_REPLAY_STORE, Config
from gateway.shared.fleet_replay import FleetReplayStore
from gateway.shared.logs import log_event
from gateway.shared.replay import AnsweredAtOnce, ReplayGuard, ReplayStore
from gateway.shared.scoreboard import Scoreboard
from gateway.shared.tls import server_context

log = logging.getLogger("gateway.control")


def build_app(config: Config, scoreboard: Scoreboard) -> web.Application:
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)

    async def metrics(_: web.Request) -> web.Response:
        body = await asyncio.get_running_loop().run_in_executor(None, generate_latest, registry)
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def readyz(_: web.Request) -> web.Response:
        if scoreboard.ready(max_age=config.worker_timeout):
            return web.Response(text="ready\n")
        return web.Response(status=503, text=f"not ready: {scoreboard.gateway_state.name.lower()}\n")

    app = web.Application()
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    return app


async def serve_control(
    config: Config, metrics_sock: socket.socket, callback_sock: socket.socket, scoreboard: Scoreboard,
    replay_guard: ReplayGuard,
) -> None:
    metrics.create_control_series()
    replay: ReplayStore
    if config.replay_store == LOCAL_REPLAY_STORE:
        replay = AnsweredAtOnce(replay_guard)
    else:
        replay = FleetReplayStore.from_config(config, "control")
        await replay.connect()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    metrics_runner = web.AppRunner(build_app(config, scoreboard), access_log=None)
    await metrics_runner.setup()
    await web.SockSite(metrics_runner, metrics_sock).start()
    # Sinch's callbacks face the internet: slow, idle and crowding clients are bounded (gateway.connection_guard)
    guard = ConnectionGuard(config.callback_keepalive_timeout, config.callback_max_connections)
    callback_runner = web.AppRunner(build_callback_app(config, replay, (guard.middleware,)), access_log=None,
                                    keepalive_timeout=guard.backstop_keepalive_timeout)
    await callback_runner.setup()
    callback_server = await guard.serve(callback_runner.server, callback_sock,
                                        server_context(config.tls_cert, config.tls_key))
    log_event(log, logging.INFO, "control.listening", address=config.metrics_listen,
              callback_address=config.callback_listen,
              callbacks_verified=config.callbacks_signed)
    await stop.wait()
    callback_server.close()
    for runner in (metrics_runner, callback_runner):
        await runner.cleanup()
    if isinstance(replay, FleetReplayStore):
        await replay.close()


def run_control(
    config: Config, metrics_sock: socket.socket, callback_sock: socket.socket, scoreboard: Scoreboard,
    replay_guard: ReplayGuard,
) -> int:
    uvloop.run(serve_control(config, metrics_sock, callback_sock, scoreboard, replay_guard))
    return 0
