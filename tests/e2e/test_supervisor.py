"""The prefork server under faults and operations: kill -9, a stuck loop, SIGTERM, SIGHUP, scaling, orphans,
and metrics that equal what the test did. Real gateway process, real sockets."""

from __future__ import annotations

import asyncio
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from pathlib import Path

import pytest
import websockets

import gateway as gateway_package
from tests.aio import run
from tests.gateway_process import GatewayProcess, scrape, value
from tests.ports import free_port
from tests.sinch_client import SinchCall, sine

RATE = 8000


def http_status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait for any process (not only a child) to end, on its pidfd: an event, not a poll."""
    try:
        fd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        ready, _, _ = select.select([fd], [], [], timeout)
        return bool(ready)
    finally:
        os.close(fd)


async def answered_calls(gateway: GatewayProcess, prefix: str, count: int) -> list[tuple[SinchCall, int]]:
    """Open `count` calls; each with the pid of the worker that answered it (from the gateway's log)."""
    calls = []
    for index in range(count):
        call = await SinchCall.open(gateway.url + "/stream/echo")
        assert await call.connect(f"{prefix}-{index}", rate=RATE) == {"command": "answer"}
        event = await asyncio.to_thread(gateway.wait_for, "call.answered", call_id=f"{prefix}-{index}")
        calls.append((call, event["pid"]))
    return calls


async def stream(call: SinchCall, pcm: bytes, flowing: asyncio.Event | None = None) -> bytes | None:
    """Send `pcm` paced at real time and collect the echo; None if the connection dropped.
    `flowing` is set once half a second of audio has come back."""
    sender = asyncio.ensure_future(call.send_paced(pcm, RATE))
    try:
        await call.receive_audio(RATE // 2 * 2)
        if flowing:
            flowing.set()
        received = await call.receive_audio(len(pcm), timeout=len(pcm) / RATE / 2 + 10)
        await sender
        await call.ws.close()
        return received
    except (websockets.ConnectionClosed, ConnectionError, TimeoutError):
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)  # its own error is this one: already handled
        if flowing:
            flowing.set()  # a dropped call is as far as it will get
        return None


def test_kill_9_of_one_worker_leaves_the_other_workers_calls_whole():
    gateway = GatewayProcess(workers=2).start()

    async def scenario() -> None:
        calls = await answered_calls(gateway, "k", 24)
        pids = {pid for _, pid in calls}
        if len(pids) < 2:
            pytest.skip("the kernel put every call on one worker")  # never seen; shared queue spreads them
        victim = calls[0][1]
        pcm = sine(RATE, 3.0, freq=600)
        flowing = [asyncio.Event() for _ in calls]
        streams = [
            asyncio.ensure_future(stream(call, pcm, event)) for (call, _), event in zip(calls, flowing, strict=True)
        ]
        await asyncio.gather(*(event.wait() for event in flowing))
        before = scrape(gateway)
        os.kill(victim, signal.SIGKILL)
        results = await asyncio.gather(*streams)
        for (_, pid), received in zip(calls, results, strict=True):
            if pid == victim:
                assert received is None
            else:
                assert received == pcm  # not one frame lost or changed
        spawned = await asyncio.to_thread(gateway.wait_count, "worker.listening", 3)
        replacement = spawned[-1]["pid"]
        for index in range(40):
            (call, pid), = await answered_calls(gateway, f"after-{index}", 1)
            await call.ws.close()
            if pid == replacement:
                break
        else:
            raise AssertionError("the replacement worker took no new call")
        after = scrape(gateway)
        assert value(after, "gateway_worker_restarts_total", reason="killed") == 1
        for key, count in before.items():  # counters never go backwards, even with a worker gone
            if key[0].endswith("_total"):
                assert after.get(key, 0) >= count, key

    try:
        run(scenario())
    finally:
        gateway.stop()


def test_a_stuck_worker_is_replaced():
    # 3 s, six heartbeats: a loaded machine can delay a healthy worker's beat past 1 s, and its replacement was
    # then counted stuck too.
    gateway = GatewayProcess("--worker-timeout", "3", workers=1).start()
    try:
        stuck = gateway.wait_for("worker.listening")["pid"]
        os.kill(stuck, signal.SIGSTOP)  # its loop stops beating
        gateway.wait_for("supervisor.worker_stuck", child_pid=stuck)
        gateway.wait_count("worker.listening", 2)
        gateway.wait_for("supervisor.child_exited", child_pid=stuck)
        samples = scrape(gateway)
        assert value(samples, "gateway_worker_restarts_total", reason="stuck") == 1
        assert value(samples, "gateway_worker_restarts_total", reason="killed") == 0  # counted once
    finally:
        gateway.stop()


def test_sigterm_drains_live_calls_declines_new_ones_and_exits_0():
    gateway = GatewayProcess("--drain-timeout", "20", workers=2).start()

    async def scenario() -> None:
        calls = await answered_calls(gateway, "t", 6)
        pcm = sine(RATE, 2.0, freq=450)
        streams = [asyncio.ensure_future(stream(call, pcm)) for call, _ in calls]
        gateway.proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(gateway.wait_count, "worker.draining", 2)
        assert http_status(gateway.metrics_url + "/readyz") == 503
        with pytest.raises(websockets.InvalidStatus) as declined:
            await websockets.connect(gateway.url + "/stream/echo")
        assert declined.value.response.status_code == 503
        assert await asyncio.gather(*streams) == [pcm] * len(calls)

    run(scenario())
    assert gateway.proc.wait(timeout=15) == 0


def test_drain_timeout_closes_remaining_calls_with_1001():
    gateway = GatewayProcess("--drain-timeout", "0.5", workers=1).start()

    async def scenario() -> None:
        (call, _), = await answered_calls(gateway, "slow", 1)
        gateway.proc.send_signal(signal.SIGTERM)
        assert await call.closed(timeout=10) == (1001, "drain timeout")

    run(scenario())
    assert gateway.proc.wait(timeout=15) == 0


def test_a_reload_waits_for_calls_past_drain_timeout_and_a_sigterm_then_ends_them_at_it():
    """Issue 12.4: retiring workers wait up to reload_drain_timeout, not SIGTERM's drain_timeout; a SIGTERM
    during that wait brings the deadline back to drain_timeout."""
    gateway = GatewayProcess("--drain-timeout", "0.5", workers=1).start()

    async def scenario() -> None:
        (call, old), = await answered_calls(gateway, "long", 1)
        gateway.proc.send_signal(signal.SIGHUP)
        draining = await asyncio.to_thread(gateway.wait_for, "worker.draining", mode="retire", pid=old)
        assert draining["timeout"] == 14400
        pcm = sine(RATE, 2.0, freq=610)  # four times drain_timeout, after the retire
        sender = asyncio.ensure_future(call.send_paced(pcm, RATE))
        assert await call.receive_audio(len(pcm)) == pcm
        await sender
        gateway.proc.send_signal(signal.SIGTERM)
        assert await call.closed(timeout=10) == (1001, "drain timeout")

    run(scenario())
    assert gateway.proc.wait(timeout=15) == 0


@pytest.mark.parametrize("accept", ["shared", "reuseport"])
def test_sighup_rolls_workers_without_dropping_calls(accept):
    gateway = GatewayProcess("--accept", accept, workers=2).start()

    async def scenario() -> None:
        calls = await answered_calls(gateway, "h", 6)
        old = {pid for _, pid in calls}
        pcm = sine(RATE, 3.0, freq=520)
        streams = [asyncio.ensure_future(stream(call, pcm)) for call, _ in calls]
        gateway.proc.send_signal(signal.SIGHUP)
        await asyncio.to_thread(gateway.wait_count, "worker.draining", 2, mode="retire")  # no longer accepting
        fresh = {e["pid"] for e in gateway.events if e.get("event") == "worker.listening"} - old
        (call, pid), = await answered_calls(gateway, "h-new", 1)
        await call.ws.close()
        assert pid in fresh  # the old generation stopped accepting
        assert await asyncio.gather(*streams) == [pcm] * len(calls)
        for pid in old:  # and left once its calls ended
            assert await asyncio.to_thread(wait_exit, pid, 10)
        assert value(scrape(gateway), "gateway_worker_restarts_total", reason="killed") == 0

    try:
        run(scenario())
    finally:
        gateway.stop()


def test_two_quick_sighups_retire_every_older_generation():
    gateway = GatewayProcess(workers=1).start()
    try:
        first = gateway.wait_for("worker.listening")["pid"]
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_count("supervisor.spawned", 2, kind="worker")  # the second generation is booting
        gateway.proc.send_signal(signal.SIGHUP)  # before it serves
        spawned = [e["child_pid"] for e in gateway.wait_count("supervisor.spawned", 3, kind="worker")]
        assert spawned[0] == first
        assert wait_exit(first, 10)
        assert wait_exit(spawned[1], 10)  # the middle generation retires too, served or not
        assert gateway.wait_for("worker.listening", pid=spawned[2])
    finally:
        gateway.stop()


def test_ttou_is_refused_under_reuseport():
    gateway = GatewayProcess("--accept", "reuseport", workers=2).start()
    try:
        gateway.proc.send_signal(signal.SIGTTOU)
        gateway.wait_for("supervisor.scale_down_refused")
        assert value(scrape(gateway), "gateway_workers") == 2
    finally:
        gateway.stop()


def test_ttin_and_ttou_scale_workers():
    gateway = GatewayProcess(workers=1).start()
    try:
        gateway.proc.send_signal(signal.SIGTTIN)
        gateway.wait_count("worker.listening", 2)
        assert value(scrape(gateway), "gateway_workers") == 2
        gateway.proc.send_signal(signal.SIGTTOU)
        retired = gateway.wait_for("supervisor.retiring")["child_pid"]
        assert wait_exit(retired, 10)
    finally:
        gateway.stop()


def test_metrics_equal_what_the_test_did():
    gateway = GatewayProcess("--max-calls", "2", workers=1).start()
    frames_per_call = 25

    async def scenario() -> None:
        answered = [call for call, _ in await answered_calls(gateway, "m", 2)]
        busy = await SinchCall.open(gateway.url + "/stream/echo")
        assert await busy.connect("m-busy") == {"command": "busy"}
        assert await busy.closed() == (1000, "busy: gateway at capacity")
        rejected = await SinchCall.open(gateway.url + "/stream/echo")
        assert await rejected.connect("m-bad", rate=12345) == {"command": "reject"}
        await rejected.closed()
        for path in ("/stream/nope", "/stream/nope", "/elsewhere"):
            with pytest.raises(websockets.InvalidStatus):
                await websockets.connect(gateway.url + path)
        pcm = sine(RATE, frames_per_call * 0.02)
        for call in answered:
            await call.ws.send(pcm[: len(pcm) // 2])
            await call.ws.send(pcm[len(pcm) // 2:])
            await call.receive_audio(len(pcm))
            await call.ws.close(1000, "caller hung up")

    run(scenario())
    try:
        gateway.wait_count("call.ended", 4)
        samples = scrape(gateway)
        expected = {
            ("gateway_calls_total", "answer"): 2, ("gateway_calls_total", "busy"): 1,
            ("gateway_calls_total", "reject"): 1,
        }
        for (name, outcome), count in expected.items():
            assert value(samples, name, route="echo", outcome=outcome) == count
        assert value(samples, "gateway_upgrades_declined_total", reason="unknown_route") == 2
        assert value(samples, "gateway_upgrades_declined_total", reason="not_found") == 1
        assert value(samples, "gateway_ws_closes_total", code="1000", initiator="sinch") == 2
        assert value(samples, "gateway_ws_closes_total", code="1000", initiator="gateway") == 1
        assert value(samples, "gateway_ws_closes_total", code="1008", initiator="gateway") == 1
        # Messages in: 4 connects + 2 audio messages on each answered call.
        assert value(samples, "gateway_ws_frames_total", route="echo", direction="in") == 4 + 2 * 2
        assert value(samples, "gateway_ws_bytes_total", route="echo", direction="in") >= 2 * frames_per_call * 320
        assert value(samples, "gateway_rtp_packets_total", route="echo", direction="out") == 2 * frames_per_call
        assert value(samples, "gateway_rtp_packets_total", route="echo", direction="in") == 2 * frames_per_call
        # Messages out: answer/busy/reject + the echoed 20 ms frames.
        assert value(samples, "gateway_ws_frames_total", route="echo", direction="out") == 4 + 2 * frames_per_call
        assert value(samples, "gateway_call_duration_seconds_count", route="echo") == 2
        assert value(samples, "gateway_calls_active", route="echo") == 0
        assert value(samples, "gateway_rtp_lost_packets_total", route="echo") == 0
    finally:
        gateway.stop()


@pytest.mark.parametrize("taken", ["listen", "metrics_listen", "callback_listen"])
def test_a_taken_port_stops_with_a_message_naming_the_listener(taken):
    addresses = {key: f"127.0.0.1:{free_port()}" for key in ("listen", "metrics_listen", "callback_listen")}
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", int(addresses[taken].rpartition(":")[2])))
        squatter.listen()
        flags = [arg for key, address in addresses.items() for arg in ("--" + key.replace("_", "-"), address)]
        result = subprocess.run([sys.executable, "-m", "gateway", "serve", *flags],
                                capture_output=True, text=True, timeout=30)
    assert result.returncode == 3
    assert f"gateway: cannot listen: {taken} {addresses[taken]}: Address already in use\n" in result.stderr


def test_what_the_configuration_will_not_do_is_logged_at_start():
    """Issue 14.7: no public_url (SVAML would send Sinch to 127.0.0.1) and no application secret (callbacks
    taken unverified) each get a warning with the fix when the gateway starts."""
    gateway = GatewayProcess().start()
    try:
        warnings = {event["key"]: event for event in gateway.events if event.get("event") == "config.warning"}
        assert set(warnings) >= {"public_url", "sinch_application_secret"}
        assert f"ws://127.0.0.1:{gateway.port}" in warnings["public_url"]["message"]
        assert warnings["public_url"]["level"] == "warning" and warnings["public_url"]["fix"]
    finally:
        gateway.stop()


def test_workers_do_not_outlive_the_supervisor():
    gateway = GatewayProcess(workers=2).start()
    workers = [e["pid"] for e in gateway.events if e.get("event") == "worker.listening"]
    gateway.proc.kill()
    gateway.proc.wait()
    assert all(wait_exit(pid, 10) for pid in workers)


def test_a_killed_supervisor_frees_its_ports_at_once_and_its_call_goes_on_to_its_end(tmp_path):
    """Issue 9.10: orphaned workers kept the listening sockets (theirs and the ones every child inherited) for
    the drain time, so a gateway restarted at once exited 3; every killed start left its metrics directory."""
    env = {"TMPDIR": str(tmp_path)}  # where the gateways make their metrics directories
    old = GatewayProcess(workers=1, env=env).start()
    orphan = old.wait_for("worker.listening")["pid"]
    control = old.wait_for("control.listening")["pid"]
    [old_metrics] = tmp_path.glob("gateway-metrics-*")
    started: list[GatewayProcess] = []

    async def scenario() -> None:
        (call, _), = await answered_calls(old, "orphaned", 1)
        pcm = sine(RATE, 2.0, freq=520)
        flowing = asyncio.Event()
        live = asyncio.ensure_future(stream(call, pcm, flowing))
        await flowing.wait()
        old.proc.kill()
        await asyncio.to_thread(old.wait_for, "worker.orphaned")  # logged once its listener is closed
        assert await asyncio.to_thread(wait_exit, control, 10)
        started.append(new := GatewayProcess(workers=1, env=env, ports_of=old))
        await asyncio.to_thread(new.start)  # exited 3 before: the ports were still held
        (fresh, _), = await answered_calls(new, "fresh", 1)
        assert await live == pcm  # the orphaned call went on, bit-exact, to its end
        await fresh.ws.close()

    try:
        run(scenario())
        assert wait_exit(orphan, 10)  # it left once its call had ended
        assert old_metrics.exists()  # kept while the orphan lived (it holds the directory's lock)
        started.append(third := GatewayProcess(workers=1, env=env).start())
        assert third.wait_for("supervisor.stale_metrics_removed")["directories"] == [str(old_metrics)]
        assert not old_metrics.exists()
        assert len(list(tmp_path.glob("gateway-metrics-*"))) == 2  # the live gateways' directories stay
    finally:
        old.proc.wait()
        for gateway in started:
            gateway.stop()
    assert not list(tmp_path.glob("gateway-metrics-*"))  # each removed its own at exit


def test_sighup_reloads_the_config_file_and_refuses_a_bad_one(tmp_path):
    config = tmp_path / "gateway.toml"
    config.write_text('[routes]\nfirst = "rtp://127.0.0.1:9"\n')
    gateway = GatewayProcess("--config", str(config), workers=1).start()

    async def status_of(route: str) -> int:
        """101 when a call on the route is answered, else the status the upgrade was declined with."""
        try:
            call = await SinchCall.open(f"{gateway.url}/stream/{route}")
        except websockets.InvalidStatus as exc:
            return exc.response.status_code
        assert await call.connect(f"reload-{route}") == {"command": "answer"}
        await call.ws.close()
        return 101

    try:
        assert run(status_of("second")) == 404
        config.write_text('[routes]\nfirst = "rtp://127.0.0.1:9"\nsecond = "rtp://127.0.0.1:11"\n')
        gateway.proc.send_signal(signal.SIGHUP)
        retired = gateway.wait_for("supervisor.retiring")["child_pid"]
        gateway.wait_for("worker.draining", pid=retired, mode="retire")  # the old worker no longer accepts
        assert run(status_of("second")) == 101
        config.write_text("connect_timeout = -1\n")
        gateway.proc.send_signal(signal.SIGHUP)
        refused = gateway.wait_for("supervisor.reload_refused")
        assert "connect_timeout" in refused["error"]
        assert run(status_of("second")) == 101  # still the last good configuration
    finally:
        gateway.stop()


def deployable_copy(directory: Path) -> Path:
    """A copy of the gateway package that `python -m gateway` run in `directory` imports, so a test can break
    its code on disk as a bad deploy would; the path of its worker entry module (imported after the fork)."""
    shutil.copytree(Path(gateway_package.__file__).parent, directory / "gateway",
                    ignore=shutil.ignore_patterns("__pycache__"))
    return directory / "gateway" / "dataplane" / "worker.py"


def break_module(module: Path) -> None:
    module.write_text(module.read_text() + "\nraise RuntimeError('bad deploy')\n")


def test_workers_that_cannot_boot_stop_the_gateway_with_a_clear_message(tmp_path):
    break_module(deployable_copy(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0",
         "--callback-listen", "127.0.0.1:0", "--workers", "2"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert result.returncode == 3
    assert "a worker could not boot (exit 1); stopping, see the log above" in result.stderr
    assert "bad deploy" in result.stderr  # the traceback that says why is in the log


def test_a_replacement_that_cannot_boot_does_not_take_the_other_workers_calls_down(tmp_path):
    server = deployable_copy(tmp_path)
    good = server.read_text()
    gateway = GatewayProcess(workers=2, cwd=str(tmp_path)).start()

    async def scenario() -> None:
        calls = await answered_calls(gateway, "sibling", 2)
        workers = {e["pid"] for e in gateway.events if e.get("event") == "worker.listening"}
        victim = next(pid for pid in workers if pid != calls[0][1])  # the first call's worker survives
        survivors = [(call, pid) for call, pid in calls if pid != victim]
        pcm = sine(RATE, 3.0, freq=540)
        flowing = [asyncio.Event() for _ in survivors]
        streams = [asyncio.ensure_future(stream(call, pcm, event))
                   for (call, _), event in zip(survivors, flowing, strict=True)]
        await asyncio.gather(*(event.wait() for event in flowing))
        break_module(server)
        os.kill(victim, signal.SIGKILL)
        await asyncio.to_thread(gateway.wait_for, "supervisor.replacement_failing", 15)
        assert gateway.proc.poll() is None
        server.write_text(good)  # the fix is deployed: the next attempt boots
        assert await asyncio.gather(*streams) == [pcm] * len(survivors)

    try:
        run(scenario())
        gateway.wait_count("worker.listening", 3, timeout=30)
    finally:
        gateway.stop()


def test_a_reload_whose_workers_cannot_boot_keeps_the_old_ones_serving(tmp_path):
    """A bad deploy: the code on disk is broken, then `systemctl reload`. The new workers import it after the
    fork and die; the old ones must go on serving (gunicorn would halt, dropping every call)."""
    server = deployable_copy(tmp_path)
    good = server.read_text()
    gateway = GatewayProcess(workers=1, cwd=str(tmp_path)).start()
    old = gateway.wait_for("worker.listening")["pid"]

    async def scenario() -> None:
        (call, pid), = await answered_calls(gateway, "deploy", 1)
        assert pid == old
        pcm = sine(RATE, 3.0, freq=610)
        flowing = asyncio.Event()
        live = asyncio.ensure_future(stream(call, pcm, flowing))
        await flowing.wait()
        break_module(server)
        gateway.proc.send_signal(signal.SIGHUP)
        failed = await asyncio.to_thread(gateway.wait_for, "supervisor.reload_failed")
        assert failed["workers_kept"] == 1
        assert "bad deploy" in "".join(gateway.raw_lines)  # the new worker's traceback says why
        (after, pid), = await answered_calls(gateway, "after-bad-deploy", 1)
        assert pid == old  # the old worker still takes new calls
        await after.ws.close()
        assert await live == pcm  # and the call in progress went on whole

    try:
        run(scenario())
        assert gateway.proc.poll() is None
        assert value(scrape(gateway), "gateway_reloads_total", result="failed") == 1
        server.write_text(good)  # the fix is deployed: the next reload goes through
        gateway.proc.send_signal(signal.SIGHUP)
        gateway.wait_for("supervisor.reload_applied")
        gateway.wait_for("worker.draining", pid=old, mode="retire")
        assert wait_exit(old, 10)
        assert value(scrape(gateway), "gateway_reloads_total", result="applied") == 1
    finally:
        gateway.stop()


def test_a_killed_control_process_is_replaced_and_calls_do_not_notice():
    gateway = GatewayProcess(workers=1).start()

    async def scenario() -> None:
        (call, _), = await answered_calls(gateway, "control", 1)
        pcm = sine(RATE, 2.0, freq=430)
        flowing = asyncio.Event()
        live = asyncio.ensure_future(stream(call, pcm, flowing))
        await flowing.wait()
        control = gateway.wait_for("control.listening")["pid"]
        os.kill(control, signal.SIGKILL)
        await asyncio.to_thread(gateway.wait_count, "control.listening", 2)  # its replacement serves
        assert await live == pcm

    try:
        run(scenario())
        samples = scrape(gateway)
        assert value(samples, "gateway_control_restarts_total") == 1
        assert value(samples, "gateway_worker_restarts_total", reason="killed") == 0
        assert http_status(gateway.metrics_url + "/readyz") == 200
    finally:
        gateway.stop()


def test_sigusr2_leaves_the_rotation_and_still_answers_calls():
    """A Kubernetes preStop hook's first step: /readyz fails so load balancers stop sending calls, while the calls
    already on their way (a load balancer notices a probe later) are still answered; SIGTERM then drains."""
    gateway = GatewayProcess().start()
    assert http_status(gateway.metrics_url + "/readyz") == 200
    gateway.proc.send_signal(signal.SIGUSR2)
    gateway.wait_for("supervisor.signal", signal="SIGUSR2")
    assert http_status(gateway.metrics_url + "/readyz") == 503

    async def late_call() -> None:
        call = await SinchCall.open(gateway.url + "/stream/echo")
        assert await call.connect("late", rate=RATE) == {"command": "answer"}
        pcm = sine(RATE, 1.0)
        assert await stream(call, pcm) == pcm

    run(late_call())
    assert gateway.stop() == 0
