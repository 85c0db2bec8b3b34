"""`python -m loadtest media ...` and `relay ...`: a simulator as its own process. It prints one JSON line
when listening (so scripts can wait for it), a status line every few seconds, and its summary as JSON at
the end; it stops on SIGINT/SIGTERM or after --duration seconds."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from collections.abc import Callable, Coroutine
from typing import Any

import uvloop

from loadtest.media.relay import Relay
from loadtest.media.simulator import MediaSimulator


def _print(data: dict[str, Any]) -> None:
    print(json.dumps(data), flush=True)


async def _serve(start: Callable[[], Any], close: Callable[[], None], listening: Callable[[int], dict[str, Any]],
                 status: Callable[[], dict[str, Any]], duration: float, interval: float) -> None:
    loop = asyncio.get_running_loop()
    stopped = asyncio.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(signum, stopped.set)
    _print(listening(await start()))
    deadline = loop.time() + duration if duration else None
    while not stopped.is_set():
        timeout = interval if deadline is None else min(interval, deadline - loop.time())
        if timeout <= 0:
            break
        try:
            await asyncio.wait_for(stopped.wait(), timeout)
        except TimeoutError:
            _print(status())
    close()
    _print({"event": "summary", **status()})


def serve_media(kind: str, host: str, port: int, duration: float, interval: float) -> int:
    simulator = MediaSimulator(kind, host, port)

    def listening(bound: int) -> dict[str, Any]:
        return {"event": "media.listening", "kind": kind, "host": host, "port": bound, "rtcp_port": bound + 1}

    def status() -> dict[str, Any]:
        return {"event": "media.status", **simulator.summary()}

    return _run("media", _serve(simulator.start, simulator.close, listening, status, duration, interval))


def serve_relay(listen: tuple[str, int], target: tuple[str, int], drop_every: int, delay_ms: float,
                direction: str, duration: float, interval: float) -> int:
    relay = Relay(listen, target, drop_every, delay_ms, direction)  # type: ignore[arg-type]

    def listening(bound: int) -> dict[str, Any]:
        return {"event": "relay.listening", "host": listen[0], "port": bound, "to": f"{target[0]}:{target[1]}",
                "drop_every": drop_every, "delay_ms": delay_ms, "direction": direction}

    def status() -> dict[str, Any]:
        return {"event": "relay.status", **relay.counts}

    return _run("relay", _serve(relay.start, relay.close, listening, status, duration, interval))


def _run(what: str, serving: Coroutine[Any, Any, None]) -> int:
    """The exit status: 1 with a message when the sockets cannot be bound."""
    try:
        uvloop.run(serving)
    except OSError as exc:
        print(f"loadtest {what}: {exc}", file=sys.stderr)
        return 1
    return 0
