"""A Sinch-like websocket client (the `websockets` library, not picows: an independent implementation)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import websockets

FRAME_SECONDS = 0.02


def sine(rate: int, seconds: float, freq: float = 440.0, amplitude: float = 0.5) -> bytes:
    t = np.arange(round(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype("<i2").tobytes()


def frames(pcm: bytes, rate: int) -> list[bytes]:
    size = round(rate * FRAME_SECONDS) * 2
    return [pcm[i:i + size] for i in range(0, len(pcm), size)]


class SinchCall:
    def __init__(self, ws: websockets.ClientConnection) -> None:
        self.ws = ws
        self.commands: list[dict[str, Any]] = []
        self.audio = bytearray()

    @classmethod
    async def open(cls, url: str, **options: Any) -> SinchCall:
        return cls(await websockets.connect(url, max_size=None, compression=None, **options))

    async def connect(self, call_id: str = "call-1", rate: int | None = 16000, **extra: Any) -> dict[str, Any]:
        message = {"command": "connect", "version": 1, "callId": call_id, "applicationKey": "app",
                   "codec": "PCM", "callHeaders": {"Header1": "Value1"}, **extra}
        if rate is not None:
            message["sampleRate"] = rate
        await self.ws.send(json.dumps(message))
        return await self.next_command()

    async def next_command(self, timeout: float = 5.0) -> dict[str, Any]:
        while True:
            message = await asyncio.wait_for(self.ws.recv(), timeout)
            if isinstance(message, str):
                command = json.loads(message)
                self.commands.append(command)
                return command
            self.audio += message

    async def receive_audio(self, nbytes: int, timeout: float = 10.0) -> bytes:
        """Collect audio until `nbytes` arrived; commands seen meanwhile are kept in `commands`."""
        async def fill() -> None:
            while len(self.audio) < nbytes:
                message = await self.ws.recv()
                if isinstance(message, str):
                    self.commands.append(json.loads(message))
                else:
                    self.audio += message
        await asyncio.wait_for(fill(), timeout)
        return bytes(self.audio[:nbytes])

    async def send_paced(self, pcm: bytes, rate: int) -> None:
        """Send 20 ms frames at real time, as Sinch does."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        for index, frame in enumerate(frames(pcm, rate)):
            await self.ws.send(frame)
            await asyncio.sleep(max(0.0, start + (index + 1) * FRAME_SECONDS - loop.time()))

    async def closed(self, timeout: float = 5.0) -> tuple[int, str]:
        """Wait for the gateway to close; returns its close code and reason."""
        async def drain() -> None:
            try:
                async for message in self.ws:
                    if isinstance(message, bytes):
                        self.audio += message
                    else:
                        self.commands.append(json.loads(message))
            except websockets.ConnectionClosed:
                pass  # a close code other than 1000/1001: the caller asserts it
        await asyncio.wait_for(drain(), timeout)
        return self.ws.close_code, self.ws.close_reason


async def refused_after_upgrade(url: str) -> tuple[int, str]:
    """The upgrade is accepted, and the gateway closes before answering anything (a fleet's replay store
    answering the token's claim: gateway.dataplane.claims)."""
    call = await SinchCall.open(url)
    code, reason = await call.closed()
    assert call.commands == []
    return code, reason
