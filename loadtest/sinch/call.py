"""One simulated Sinch call: a picows client listener. Everything on the data path is a callback; the
generator's shared timer calls `tick` to send audio, so there is no coroutine or timer per call."""

from __future__ import annotations

import enum
import json
import time
from typing import Protocol

from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from loadtest.shared import marker
from loadtest.shared.audio import AudioSource
from loadtest.shared.scenario import CallPlan, Scenario
from loadtest.sinch.stats import LoadStats

FRAME_NS = 20_000_000
MAX_CATCH_UP = 5  # frames one tick may send when the generator fell behind; beyond that audio is skipped
CLOSE_WAIT_NS = 2_000_000_000  # the gateway has this long to answer our close frame
MEDIA_HANGUP_GRACE_NS = 3_000_000_000  # the media side's BYE should have ended the call by then
SEEN_WINDOW = 64  # frames behind the newest one still told apart as reordered or duplicate
SEEN_MASK = (1 << SEEN_WINDOW) - 1


class CallHost(Protocol):
    """What a call needs from the generator that runs it (the generator implements it without a call
    importing the generator back)."""

    scenario: Scenario
    stats: LoadStats
    audio: AudioSource

    def call_answered(self, call: Call, now: int) -> None: ...

    def call_done(self, call: Call) -> None: ...


class State(enum.Enum):
    CONNECTING = 1
    AWAITING_ANSWER = 2
    TALKING = 3
    DRAINING = 4  # the caller stopped talking and waits for the rest of its echo
    CLOSING = 5
    DONE = 6


class Call(WSListener):
    def __init__(self, generator: CallHost, plan: CallPlan, call_id: str, tag: int, start_ns: int,
                 audio_offset: int) -> None:
        self.gen = generator
        self.stats = generator.stats
        self.plan = plan
        self.call_id = call_id
        self.tag = tag & 0xFFFFFFFF
        self.state = State.CONNECTING
        self.transport: WSTransport | None = None
        self.deadline_ns = start_ns + round(generator.scenario.connect_timeout * 1e9)
        self.slot = 0
        self.audio_offset = audio_offset  # frames into the speech loop: calls do not talk in unison
        self.close_code = 0
        self.sent = 0
        self.audio_start_ns = 0
        self.talk_end_ns = 0
        self.answered_ns = 0
        self.max_seq = -1
        self.seen = 0
        self.unique = 0
        self.last_transit = -1
        self.jitter = 0.0
        self.last_frame_ns = 0
        self.longest_gap_ns = 0  # between two frames from the gateway: what a failover's silence would show
        self._connect_sent_ns = 0

    async def open(self) -> None:
        url = self.gen.scenario.url
        try:
            await ws_connect(lambda: self, url, websocket_handshake_timeout=self.gen.scenario.connect_timeout,
                             enable_auto_ping=False)
        except Exception as exc:  # refused, HTTP status, timeout: a failed call attempt, whatever the cause
            status = getattr(getattr(exc, "response", None), "status", None)
            self._finish_failed(f"connect:{status.value if status else type(exc).__name__}")

    # ---- picows callbacks ------------------------------------------------------------------------------

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport
        self.state = State.AWAITING_ANSWER
        message = {"command": "connect", "version": 1, "callId": self.call_id, "applicationKey": "loadtest",
                   "codec": "PCM", "sampleRate": self.plan.rate, "callHeaders": {"X-Loadtest": "1"}}
        self._connect_sent_ns = time.monotonic_ns()
        transport.send(WSMsgType.TEXT, json.dumps(message).encode())

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        msg_type = frame.msg_type
        if msg_type is WSMsgType.BINARY:
            self._on_audio(frame.get_payload_as_memoryview())
        elif msg_type is WSMsgType.TEXT:
            self._on_command(frame.get_payload_as_bytes())
        elif msg_type is WSMsgType.CLOSE:
            if self.state is not State.CLOSING:
                self.close_code = frame.get_close_code().value
                self.stats.close_codes[f"{self.close_code} {frame.get_close_reason()}"] += 1
                if not transport.is_close_frame_sent:
                    transport.send_close(frame.get_close_code())  # RFC 6455 §5.5.1: echo the close
            transport.disconnect()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.state in (State.CONNECTING, State.AWAITING_ANSWER):
            reason = "closed_before_answer" if self.state is State.AWAITING_ANSWER else "disconnected"
            self._finish_failed(reason)
            return
        if self.state is State.DONE:
            return
        self._finish_answered(time.monotonic_ns())

    # ---- called by the generator's shared timer ---------------------------------------------------------

    def tick(self, now_ns: int) -> None:
        state = self.state
        if state is State.TALKING:
            if now_ns >= self.talk_end_ns:
                self._stop_talking(now_ns)
            else:
                self._send_due(now_ns)
        elif state is State.DRAINING:
            if self.max_seq + 1 >= self.sent or now_ns >= self.talk_end_ns:
                self._hang_up(now_ns)
        elif state is State.CLOSING and now_ns >= self.talk_end_ns:
            self.transport.disconnect()  # the gateway never answered our close

    def check_answer_timeout(self, now_ns: int) -> None:
        if now_ns >= self.deadline_ns and self.state in (State.CONNECTING, State.AWAITING_ANSWER):
            self._finish_failed("answer_timeout")
            if self.transport is not None:
                self.transport.disconnect()

    def abort(self, interrupted: bool) -> None:
        """The generator ends this call early: the run was interrupted (not the call's failure), or its hard
        end passed (the call is stuck: a failure)."""
        if self.state is not State.DONE:
            if self.state not in (State.CONNECTING, State.AWAITING_ANSWER):
                self.stats.active -= 1
                self.stats.call_spans.append((self.answered_ns, time.monotonic_ns()))
            if interrupted:
                self.stats.calls_interrupted += 1
            else:
                self.stats.fail("stuck")
            self.state = State.DONE
            self.gen.call_done(self)
        if self.transport is not None:
            self.transport.disconnect()

    # ---- internals -----------------------------------------------------------------------------------

    def _on_command(self, text: bytes) -> None:
        try:
            command = str(json.loads(text).get("command", "")).lower()
        except (ValueError, AttributeError):
            command = "malformed"
        if self.state is State.AWAITING_ANSWER:
            if command == "answer":
                now = time.monotonic_ns()
                self.stats.setup.record((now - self._connect_sent_ns) // 1000)
                self.answered_ns = now
                self.stats.calls_answered += 1
                self.stats.active += 1
                self.state = State.TALKING
                self.gen.call_answered(self, now)
                self.talk_end_ns = self.audio_start_ns + round(self.plan.seconds * 1e9)
                if self.plan.media_hangup:
                    self.talk_end_ns += MEDIA_HANGUP_GRACE_NS
            else:
                self._finish_failed(command or "no_command")
                self.transport.send_close(WSCloseCode.OK)
        elif command == "heartbeat":
            self.stats.heartbeats += 1

    def _on_audio(self, payload: memoryview) -> None:
        stats = self.stats
        stats.frames_received += 1
        now = time.monotonic_ns()
        if self.last_frame_ns and now - self.last_frame_ns > self.longest_gap_ns:
            self.longest_gap_ns = now - self.last_frame_ns
        self.last_frame_ns = now
        found = marker.read_le(payload)
        if found is None:
            stats.frames_unmarked += 1  # concealment, silence, or a codec that does not carry the marker
            return
        if found.tag != self.tag:
            stats.frames_crossed += 1  # audio of another call: a routing bug in what is tested
            return
        seq = found.seq
        if seq > self.max_seq:
            self.seen = ((self.seen << (seq - self.max_seq)) | 1) & SEEN_MASK
            self.max_seq = seq
        else:
            back = self.max_seq - seq
            if back >= SEEN_WINDOW or self.seen >> back & 1:
                stats.frames_duplicate += 1
                return
            self.seen |= 1 << back
            stats.frames_reordered += 1
        self.unique += 1
        stats.frames_marked += 1
        transit = marker.elapsed_us(now // 1000, found.sent_us)
        stats.round_trip.record(transit)
        if self.last_transit >= 0:  # RFC 3550 A.8: J += (|D| - J) / 16
            self.jitter += (abs(transit - self.last_transit) - self.jitter) / 16
        self.last_transit = transit

    def _send_due(self, now_ns: int) -> None:
        due = (now_ns - self.audio_start_ns) // FRAME_NS + 1 - self.sent
        if due <= 0:
            return
        if due > MAX_CATCH_UP:
            self.stats.frames_skipped += due - MAX_CATCH_UP
            self.audio_start_ns += (due - MAX_CATCH_UP) * FRAME_NS  # a pause in the caller's audio
            self.talk_end_ns += (due - MAX_CATCH_UP) * FRAME_NS
            due = MAX_CATCH_UP
        send = self.transport.send
        frame = self.gen.audio.frame
        rate, voice = self.plan.rate, self.tag
        for _ in range(due):
            buffer = frame(rate, voice, self.audio_offset + self.sent)
            marker.write_le(buffer, self.tag, self.sent, time.monotonic_ns() // 1000)
            send(WSMsgType.BINARY, buffer)
            self.sent += 1
        self.stats.frames_sent += due

    def _stop_talking(self, now_ns: int) -> None:
        if self.plan.media_hangup:  # the media side should have sent its BYE by now
            self.stats.media_hangup_missed += 1
        self.state = State.DRAINING
        drain = self.gen.scenario.drain if self.gen.scenario.expects_echo else 0.0
        self.talk_end_ns = now_ns + round(drain * 1e9)

    def _hang_up(self, now_ns: int) -> None:
        self.state = State.CLOSING
        self.talk_end_ns = now_ns + CLOSE_WAIT_NS
        self.transport.send_close(WSCloseCode.OK, b"caller hung up")

    def _finish_failed(self, reason: str) -> None:
        if self.state is State.DONE:
            return
        self.state = State.DONE
        self.stats.fail(reason)
        self.gen.call_done(self)

    def _finish_answered(self, now_ns: int) -> None:
        stats = self.stats
        drained = self.state is State.CLOSING
        self.state = State.DONE
        stats.active -= 1
        stats.call_spans.append((self.answered_ns, now_ns))
        stats.hangup_by["caller" if drained else "media" if self.plan.media_hangup else "gateway"] += 1
        if self.gen.scenario.expects_echo:  # (a sink or talker returns nothing of ours: it counts loss itself)
            if drained:  # the caller hung up after waiting for its echo: whatever did not come back is lost
                stats.frames_lost += self.sent - self.unique
            else:  # the far end hung up: frames still in flight were cut, not lost
                stats.frames_lost += self.max_seq + 1 - self.unique
                stats.frames_cut_at_hangup += self.sent - (self.max_seq + 1)
        if drained or self.close_code == WSCloseCode.OK.value:
            stats.calls_completed += 1
        else:  # 1001 shutting down, 1011 internal error, or the connection lost without a close (1006)
            stats.fail(f"dropped:{self.close_code or 1006}")
        if self.unique > 1:
            stats.jitter.record(round(self.jitter))
        if self.longest_gap_ns:
            stats.receive_gap.record(self.longest_gap_ns // 1000)
        self.gen.call_done(self)
