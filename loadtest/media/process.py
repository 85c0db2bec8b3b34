"""The media simulator as a child process of a run or a benchmark, answering its parent over a pipe."""

from __future__ import annotations

import asyncio
from multiprocessing.connection import Connection

import uvloop

from loadtest.media.simulator import MediaSimulator
from loadtest.shared.procs import watch_parent


def media_process(conn: Connection, kind: str, host: str, port: int) -> None:
    """multiprocessing target: a media simulator answering `stats`, `reset` and `stop` from the parent."""
    uvloop.run(_serve_media(conn, kind, host, port))


async def _serve_media(conn: Connection, kind: str, host: str, port: int) -> None:
    loop = asyncio.get_running_loop()
    simulator = MediaSimulator(kind, host, port)
    stopped = loop.create_future()

    def on_message() -> None:
        try:
            command = conn.recv()[0]
        except EOFError:  # the parent is gone
            command = "stop"
        if command == "stats":
            conn.send(("stats", simulator.summary()))
        elif command == "reset":
            simulator.reset()
            conn.send(("reset",))
        elif not stopped.done():
            stopped.set_result(None)

    try:
        port = await simulator.start()
    except (OSError, ValueError) as exc:
        conn.send(("error", f"media {kind} on {host}:{port}: {exc}"))
        return
    conn.send(("ready", port))
    watch_parent(loop, conn, on_message)
    await stopped
    loop.remove_reader(conn.fileno())
    simulator.close()
    conn.send(("stopped", simulator.summary()))
