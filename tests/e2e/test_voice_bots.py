"""What voice bots need (issue 12), end to end: the example media service (examples/media_service.py) as a
process behind the real gateway, a Sinch-like call in front: its prompt heard and its playback mark answered,
a barge-in that clears the prompt, Sinch's clear and the mark answered cleared; a key press heard as an RFC 4733
event; a text message that is not a command after the answer leaves the call up."""

from __future__ import annotations

import asyncio
import json
import queue
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.aio import run
from tests.dtmf_tones import FFMPEG, NOISE_DBM0, ffmpeg_pcm, sequence, white_noise
from tests.gateway_process import GatewayProcess, scrape, stop_process, value
from tests.ports import free_port_pair
from tests.sinch_client import SinchCall, sine

EXAMPLE = Path(__file__).parents[2] / "examples" / "media_service.py"
RATE = 16000


class ExampleService:
    """examples/media_service.py as a process; its JSON lines are its events."""

    def __init__(self, prompt_seconds: float) -> None:
        self.port = free_port_pair()
        self.process = subprocess.Popen(
            [sys.executable, str(EXAMPLE), "--listen", f"127.0.0.1:{self.port}", "--rate", str(RATE),
             "--prompt-seconds", str(prompt_seconds)], stdout=subprocess.PIPE, text=True)
        self.events: queue.Queue[dict[str, Any]] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()
        assert self.next_event()["event"] == "listening"

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.events.put(json.loads(line))

    def next_event(self, timeout: float = 10.0) -> dict[str, Any]:
        return self.events.get(timeout=timeout)

    async def wait_event(self, name: str, timeout: float = 10.0) -> dict[str, Any]:
        while (event := await asyncio.to_thread(self.next_event, timeout))["event"] != name:
            pass
        return event


@pytest.fixture
def bot(request) -> Iterator[tuple[ExampleService, GatewayProcess]]:
    service = ExampleService(prompt_seconds=request.param)
    gateway = GatewayProcess("--route", f"bot=rtp://127.0.0.1:{service.port}?dtmf=101").start()
    yield service, gateway
    gateway.stop()
    stop_process(service.process)


def level(pcm: bytes) -> float:
    return float(np.sqrt(np.mean(np.frombuffer(pcm, "<i2").astype(float) ** 2)))


@pytest.mark.parametrize("bot", [1.0], indirect=True)
def test_the_prompt_is_heard_then_its_mark_is_answered_played(bot):
    service, gateway = bot
    prompt_bytes = int(RATE * 1.0) * 2

    async def scenario() -> None:
        call = await SinchCall.open(gateway.url + "/stream/bot")
        assert await call.connect("bot-1") == {"command": "answer"}
        await call.ws.send(json.dumps({"event": "dtmf", "digit": "5"}))  # not a command: counted, call goes on
        await call.ws.send(bytes(640))  # the caller's first frame: the media service learns of the call
        assert (await service.wait_event("call.started"))["event"] == "call.started"
        heard = await call.receive_audio(prompt_bytes)
        assert level(heard) > 1000  # the tone, not silence
        assert await service.wait_event("mark.played") == {"event": "mark.played", "mark_id": 1}
        await call.ws.close(1000, "caller hung up")
        await service.wait_event("call.ended")

    run(scenario())
    gateway.wait_for("call.text_ignored", call_id="bot-1")
    ended = gateway.wait_for("call.ended", call_id="bot-1")
    assert ended["close_code"] == 1000 and ended["by_peer"]
    assert value(scrape(gateway), "gateway_commands_ignored_total", command="not_a_command") == 1


@pytest.mark.parametrize("bot", [5.0], indirect=True)
def test_talking_over_the_prompt_clears_it_here_and_at_sinch_and_its_mark(bot):
    service, gateway = bot

    async def scenario() -> None:
        call = await SinchCall.open(gateway.url + "/stream/bot")
        assert await call.connect("bot-2") == {"command": "answer"}
        await call.ws.send(bytes(640))
        await call.receive_audio(RATE // 5 * 2)  # 200 ms of the 5 s prompt heard
        talking = asyncio.ensure_future(call.send_paced(sine(RATE, 2.0, amplitude=0.5), RATE))
        await service.wait_event("barge_in")
        assert await service.wait_event("mark.cleared") == {"event": "mark.cleared", "mark_id": 1}
        while {"command": "clear"} not in call.commands:
            await call.next_command()
        heard = len(call.audio)
        talking.cancel()
        await call.ws.close(1000, "caller hung up")
        assert heard < RATE * 2 * 4  # far less than the 5 s prompt reached the caller

    run(scenario())
    gateway.wait_for("call.ended", call_id="bot-2")


@pytest.mark.skipif(FFMPEG is None, reason="ffmpeg not installed (scripts/test installs it)")
@pytest.mark.parametrize("bot", [1.0], indirect=True)
def test_a_key_press_reaches_the_bot_as_a_telephone_event(bot):
    service, gateway = bot
    terms, length = sequence("7", 0.15, 0.2)
    pcm = ffmpeg_pcm([*terms, white_noise(NOISE_DBM0)], RATE, length)

    async def scenario() -> None:
        call = await SinchCall.open(gateway.url + "/stream/bot")
        assert await call.connect("bot-3", rate=RATE) == {"command": "answer"}
        await call.send_paced(pcm, RATE)
        key = await service.wait_event("dtmf")
        assert key["key"] == "7" and key["seconds"] == pytest.approx(0.15, abs=0.01)
        await call.ws.close(1000, "caller hung up")

    run(scenario())
    gateway.wait_for("call.ended", call_id="bot-3")
