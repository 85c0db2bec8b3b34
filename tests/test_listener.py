"""The worker's listening socket under picows's server (aiofastnet), with the process really out of descriptors:
accepting pauses instead of spinning, and resumes."""

import asyncio
import contextlib
import os
import resource
import socket

import uvloop
from picows import WSListener, ws_create_server

from gateway.dataplane.listener import PausableListener
from tests.ports import free_port


class CountingListener(PausableListener):
    calls = 0
    accepted = 0

    def accept(self):
        CountingListener.calls += 1
        connection = super().accept()
        CountingListener.accepted += 1
        return connection


@contextlib.contextmanager
def no_descriptor_left():
    """The soft open-files limit set just above the highest descriptor held, and the gaps below it filled: the
    next descriptor fails with EMFILE."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(int(name) for name in os.listdir("/proc/self/fd")) + 1, hard))
    fillers = []
    try:
        with contextlib.suppress(OSError):
            while True:
                fillers.append(os.open(os.devnull, os.O_RDONLY))
        yield
    finally:
        for fd in fillers:
            os.close(fd)
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_accept_pauses_out_of_descriptors_and_takes_the_queued_connection_once_resumed():
    async def scenario() -> None:
        paused: list[OSError] = []
        listener = CountingListener(socket.create_server(("127.0.0.1", free_port())), paused.append)
        server = await ws_create_server(lambda _: WSListener(), sock=listener, use_aiofastnet=True)
        client = socket.socket()
        client.setblocking(False)
        try:
            with no_descriptor_left():
                with contextlib.suppress(BlockingIOError):
                    client.connect(listener.getsockname())
                for _ in range(50):  # many rounds of the loop: a spinning accept would run in each
                    await asyncio.sleep(0.001)
                assert [exc.strerror for exc in paused] == ["Too many open files"]
                assert (CountingListener.calls, CountingListener.accepted, listener.paused) == (1, 0, True)
            listener.resume()
            for _ in range(50):
                if CountingListener.accepted:
                    break
                await asyncio.sleep(0.001)
            assert (CountingListener.accepted, listener.paused, len(paused)) == (1, False, 1)
            assert server.is_serving()
        finally:
            client.close()
            server.close()
        assert listener.fileno() == -1  # closing the server closed the gate and the socket

    uvloop.run(scenario())
