"""A websocket client on a plain socket that sends frames exactly as built (RFC 6455 §5.2), for the protocol
violations and abuse that no websocket library would commit: reserved bits, interleaved fragments, forbidden
close codes, pings without reading."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct

TEXT, BINARY, CONTINUATION, CLOSE, PING, PONG = 0x1, 0x2, 0x0, 0x8, 0x9, 0xA


def frame(opcode: int, payload: bytes = b"", fin: bool = True, rsv: int = 0) -> bytes:
    """A masked client frame; `rsv` is the three reserved bits as a number 0-7."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    mask = os.urandom(4)
    size = len(payload)
    if size < 126:
        header = struct.pack("!BB", first, 0x80 | size)
    elif size < 1 << 16:
        header = struct.pack("!BBH", first, 0x80 | 126, size)
    else:
        header = struct.pack("!BBQ", first, 0x80 | 127, size)
    masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
    return header + mask + masked


class RawWebsocket:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, port: int, path: str, version: str = "13", receive_buffer: int = 0,
                   pipelined: bytes = b"") -> RawWebsocket:
        """Upgrade `path` on 127.0.0.1:`port`; `receive_buffer` shrinks SO_RCVBUF (a peer that reads nothing
        then backs the gateway's output up quickly); `pipelined`: frames sent with the request, before the
        upgrade's answer (RFC 6455 §4.1 says a client must wait for it)."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if receive_buffer:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
        reader, writer = await asyncio.open_connection(sock=sock)
        key = base64.b64encode(os.urandom(16)).decode()
        writer.write((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
                      f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: {version}\r\n\r\n")
                     .encode() + pipelined)
        ws = cls(reader, writer)
        ws.response = await reader.readuntil(b"\r\n\r\n")
        return ws

    @property
    def status(self) -> int:
        return int(self.response.split(b" ", 2)[1])

    def send(self, data: bytes) -> None:
        self.writer.write(data)

    async def read_frame(self, timeout: float = 5.0) -> tuple[int, bytes]:
        async def read() -> tuple[int, bytes]:
            first, second = await self.reader.readexactly(2)
            size = second & 0x7F
            if size == 126:
                size = struct.unpack("!H", await self.reader.readexactly(2))[0]
            elif size == 127:
                size = struct.unpack("!Q", await self.reader.readexactly(8))[0]
            return first & 0x0F, await self.reader.readexactly(size)
        return await asyncio.wait_for(read(), timeout)

    async def close_code(self, timeout: float = 5.0) -> int | None:
        """Read until the gateway's close frame: its code (None for a close without one)."""
        while True:
            opcode, payload = await self.read_frame(timeout)
            if opcode == CLOSE:
                return struct.unpack("!H", payload[:2])[0] if payload else None

    def close(self) -> None:
        self.writer.transport.abort()
