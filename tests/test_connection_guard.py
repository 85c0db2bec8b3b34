"""The callback port's connection guard in front of a real aiohttp server on loopback, with raw sockets:
pipelined requests, and the cap when every connection is busy in a handler."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from aiohttp import web

from gateway.control.connection_guard import ConnectionGuard
from gateway.shared import metrics
from tests.ports import free_port

REQUEST = b"POST /hook HTTP/1.1\r\nHost: gw\r\nContent-Length: 2\r\n\r\n{}"


@asynccontextmanager
async def guarded(handler: Callable[[web.Request], Awaitable[web.Response]], keepalive: float,
                  max_connections: int) -> AsyncIterator[int]:
    guard = ConnectionGuard(keepalive, max_connections)
    app = web.Application(middlewares=[guard.middleware])
    app.router.add_post("/hook", handler)
    runner = web.AppRunner(app, keepalive_timeout=guard.backstop_keepalive_timeout)
    await runner.setup()
    sock = socket.create_server(("127.0.0.1", free_port()))
    server = await guard.serve(runner.server, sock, None)
    try:
        yield sock.getsockname()[1]
    finally:
        server.close()
        await runner.cleanup()


def dropped(reason: str) -> float:
    return metrics.CALLBACK_CONNECTIONS_DROPPED.labels(reason)._value.get()


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sent until it closed the connection."""
    received = b""
    try:
        while chunk := await reader.read(4096):
            received += chunk
    except ConnectionResetError:
        pass
    return received


def test_pipelined_requests_are_all_answered_and_the_connection_then_idles_out():
    async def ok(_: web.Request) -> web.Response:
        return web.Response(text="ok")

    async def scenario() -> None:
        async with guarded(ok, keepalive=0.3, max_connections=4) as port:
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(REQUEST * 3)  # the second and third wait in aiohttp's queue while the first is handled
            assert (await asyncio.wait_for(closed(reader), 5)).count(b"HTTP/1.1 200 OK") == 3
            writer.close()

    before = dropped("idle_timeout")
    asyncio.run(scenario())
    assert dropped("idle_timeout") == before + 1


def test_with_every_connection_in_a_handler_a_new_one_is_refused_not_a_busy_one_cut():
    release, both_in = asyncio.Event(), asyncio.Event()
    handling = []

    async def slow(request: web.Request) -> web.Response:
        handling.append(request)
        if len(handling) == 2:
            both_in.set()
        await release.wait()
        return web.Response(text="done")

    async def scenario() -> None:
        async with guarded(slow, keepalive=5, max_connections=2) as port:
            busy = [await asyncio.open_connection("127.0.0.1", port) for _ in range(2)]
            for _, writer in busy:
                writer.write(REQUEST)
            await asyncio.wait_for(both_in.wait(), 5)
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(closed(reader), 5) == b""  # refused at once
            writer.close()
            release.set()
            for reader, writer in busy:
                assert (await reader.readuntil(b"done")).startswith(b"HTTP/1.1 200 OK")
                writer.close()

    before = dropped("connection_limit")
    asyncio.run(scenario())
    assert dropped("connection_limit") == before + 1
