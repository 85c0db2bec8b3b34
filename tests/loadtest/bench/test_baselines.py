"""The bench's subjects bridge a call alike: the naive Python bridge, the native floor (C, compiled here with the
system compiler as the bench does) and the gateway as the bench starts it (here with `--workers 2`), each against
the bench's own media echo."""

import pytest

from loadtest.bench.subjects import build_native, gateway, naive, native
from loadtest.media.process import media_process
from loadtest.shared.procs import Child
from tests.aio import run
from tests.sinch_client import SinchCall, frames, sine

RATE = 16000


@pytest.fixture(scope="module")
def echo_port():
    media = Child(media_process, "echo", [("127.0.0.1", 0)])
    try:
        yield media.expect("ready", 30)[1][0]
    finally:
        media.conn.send(("stop",))
        media.stop()


@pytest.mark.parametrize("kind", ["naive", "native", "gateway"])
def test_a_subject_echoes_a_call_bit_exact(kind, echo_port, tmp_path):
    subject = {
        "naive": lambda: naive(echo_port),
        "native": lambda: native(echo_port, build_native(tmp_path)),
        "gateway": lambda: gateway(echo_port, workers=2),
    }[kind]()
    assert kind != "gateway" or subject.command[subject.command.index("--workers") + 1] == "2"

    async def scenario() -> None:
        call = await SinchCall.open(subject.url)
        assert await call.connect(f"{kind}-1", rate=RATE) == {"command": "answer"}
        pcm = sine(RATE, 0.4, freq=880)
        for frame in frames(pcm, RATE):
            await call.ws.send(frame)
        assert await call.receive_audio(len(pcm)) == pcm
        await call.ws.close()

    subject.start()
    try:
        run(scenario())
    finally:
        subject.stop()


def test_the_native_floor_names_a_compiler_that_fails(tmp_path, monkeypatch):
    monkeypatch.setenv("CC", "false")
    with pytest.raises(RuntimeError, match=r"could not build native_bridge\.c"):
        build_native(tmp_path)
