"""The media simulators of a run or a benchmark as one child process, answering its parent over a pipe: one
simulator per target of the route, any of which the parent can take down and bring back (a media service
killed and restarted mid-run)."""

from __future__ import annotations

import asyncio
import time
from multiprocessing.connection import Connection

import uvloop

from loadtest.media.simulator import MediaSimulator, pooled_summary
from loadtest.shared.procs import watch_parent


def media_process(conn: Connection, kind: str, addresses: list[tuple[str, int]]) -> None:
    """multiprocessing target: simulators answering `stats`, `reset`, `down I`, `up I` and `stop`."""
    uvloop.run(_serve_media(conn, kind, addresses))


async def _serve_media(conn: Connection, kind: str, addresses: list[tuple[str, int]]) -> None:
    loop = asyncio.get_running_loop()
    simulators = [MediaSimulator(kind, host, port) for host, port in addresses]
    stopped = loop.create_future()
    up = set(range(len(simulators)))

    def on_message() -> None:
        try:
            command, *args = conn.recv()
        except EOFError:  # the parent is gone
            command, args = "stop", []
        if command == "stats":
            conn.send(("stats", pooled_summary(simulators)))
        elif command == "reset":
            for simulator in simulators:
                simulator.reset()
            conn.send(("reset",))
        elif command == "down":
            simulators[args[0]].close()  # its sockets close, as when its process is killed
            up.discard(args[0])
            conn.send(("down", time.monotonic_ns()))
        elif command == "up":
            if _started(simulators[args[0]], conn):
                up.add(args[0])
                conn.send(("up", time.monotonic_ns()))
        elif not stopped.done():
            stopped.set_result(None)

    for simulator in simulators:
        if not _started(simulator, conn):
            return
    conn.send(("ready", [simulator.port for simulator in simulators]))
    watch_parent(loop, conn, on_message)
    await stopped
    loop.remove_reader(conn.fileno())
    for index in up:
        simulators[index].close()
    conn.send(("stopped", pooled_summary(simulators)))


def _started(simulator: MediaSimulator, conn: Connection) -> bool:
    """Whether it could bind; if not, the parent is told why."""
    try:
        simulator.open()
    except (OSError, ValueError) as exc:
        conn.send(("error", f"media {simulator.kind} on {simulator.host}:{simulator.port}: {exc}"))
        return False
    return True
