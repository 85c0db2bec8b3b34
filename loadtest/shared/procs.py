"""Child processes of a run (load generators, the media simulator), each with a pipe to the parent.

`spawn`, not fork: the parent may already run threads (log readers) and a child should start clean."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import signal
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

CONTEXT = multiprocessing.get_context("spawn")


class Child:
    def __init__(self, target: Callable[..., None], *args: Any) -> None:
        self.conn, child_conn = CONTEXT.Pipe()
        self.process = CONTEXT.Process(target=_ignore_sigint, args=(target, child_conn, *args), daemon=True)
        self.process.start()
        child_conn.close()

    def expect(self, kind: str, timeout: float) -> tuple[Any, ...]:
        """The next message, which must be of this kind."""
        if not self.conn.poll(timeout):
            raise TimeoutError(f"no {kind!r} from child process {self.process.pid} within {timeout:g}s")
        try:
            message = self.conn.recv()
        except EOFError:
            raise RuntimeError(f"child process {self.process.pid} exited (code {self.process.exitcode})") from None
        if message[0] == "error":
            raise RuntimeError(message[1])
        if message[0] != kind:
            raise RuntimeError(f"child process {self.process.pid} sent {message[0]!r}, expected {kind!r}")
        return message

    def stop(self, timeout: float = 5.0) -> None:
        self.process.join(timeout)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()
        self.conn.close()


def watch_parent(loop: asyncio.AbstractEventLoop, conn: Connection, on_message: Callable[[], None]) -> None:
    """Call `on_message` when the parent writes. libuv makes a watched descriptor non-blocking, and then a
    send larger than the socket buffer (the final stats of a long run: a span per call) fails with EAGAIN and
    the report is lost; the pipe stays blocking, the loop only polls it."""
    loop.add_reader(conn.fileno(), on_message)
    os.set_blocking(conn.fileno(), True)


def _ignore_sigint(target: Callable[..., None], *args: Any) -> None:
    """Ctrl-C goes to the whole process group: only the parent handles it (and tells the children)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    target(*args)
