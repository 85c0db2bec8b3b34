import asyncio
import os
from multiprocessing.connection import Connection

import uvloop

from loadtest.shared.procs import Child, watch_parent

BIG = 4 * 1024 * 1024  # far beyond a socket buffer, like the final stats of a long run with many calls


def _report_while_watched(conn: Connection) -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        watch_parent(loop, conn, lambda: None)
        conn.send(("blocking", os.get_blocking(conn.fileno())))
        conn.send(("big", b"x" * BIG))
        loop.remove_reader(conn.fileno())

    uvloop.run(main())


def test_a_child_watching_its_pipe_can_still_send_a_message_bigger_than_the_buffer():
    child = Child(_report_while_watched)
    try:
        assert child.expect("blocking", 30)[1] is True
        assert len(child.expect("big", 30)[1]) == BIG
    finally:
        child.stop()
