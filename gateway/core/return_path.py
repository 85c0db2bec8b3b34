"""The media service's audio on its way back to Sinch, sans-IO: RTP of the call's stream in (latched source,
receive statistics, jitter buffer), decoded into a capped queue, paced out as 20 ms frames at real time.

Kept apart from the call's state machine (gateway.core.session) as aioquic keeps its pacer apart from the
connection: the session decides what a packet is and when the call ends; this decides when audio is heard.
Frames leave through a FrameSink (the session); `now` is passed in and never goes backwards.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cython

from gateway.core.call import FRAME_SECONDS, CallCounters, FrameSink
from gateway.core.codec import DownstreamDecoder
from gateway.core.rtp import JitterBuffer, PushResult, ReceiveStats, RtpPacket, SourceLatch

CREDIT_EPSILON = cython.declare(cython.double, 1e-6)  # float timer arithmetic: 0.02 s later is one whole frame
FRAME = cython.declare(cython.double, FRAME_SECONDS)  # a C value when compiled: used on every packet


class ReturnPath:
    __slots__ = (
        "_credit",
        "_credit_at",
        "_decoder",
        "_done",
        "_frame_bytes",
        "_lead",
        "_on_played_out",
        "_queue",
        "_queue_cap",
        "_sink",
        "_stall_frames",
        "_waiting_for_gap",
        "counters",
        "jitter_buffer",
        "paused",
        "pending",
        "receive_stats",
        "source",
        "wire_bytes_per_sample",
    )

    def __init__(
        self, decoder: DownstreamDecoder, wire_rate: int, frame_bytes: int, counters: CallCounters,
        sink: FrameSink, now: float, *, jitter_max_wait: float, pacing_lead_frames: int,
        queue_seconds: float,
    ) -> None:
        self._decoder = decoder
        self.wire_bytes_per_sample = decoder.bytes_per_sample
        self._frame_bytes = frame_bytes
        self._queue_cap = round(queue_seconds / FRAME_SECONDS) * frame_bytes
        self._queue = bytearray()
        self._sink = sink
        self.counters = counters
        self.source = SourceLatch()
        self.receive_stats = ReceiveStats(wire_rate)
        self.jitter_buffer = JitterBuffer(wire_rate, max_wait=jitter_max_wait)
        self._lead = pacing_lead_frames
        self._credit = float(pacing_lead_frames)  # frames real time has earned and not yet spent
        self._credit_at = now
        self._stall_frames = math.ceil(jitter_max_wait / FRAME_SECONDS) + 1
        self._waiting_for_gap = False
        self._on_played_out: Callable[[float], None] | None = None
        self._done = False  # the media service said BYE: no more of its RTP is taken
        self.paused = False  # Sinch's connection is not taking data (TCP backpressure)
        self.pending = False  # audio or a gap waits on the clock: the worker's fast tick is needed

    @property
    def queued_bytes(self) -> int:
        return len(self._queue)

    # ---- in ----------------------------------------------------------------------------------------------

    def receive(self, packet: RtpPacket, size: int, now: float) -> None:
        """A packet of the call's payload type from the route; `size` is its datagram's size."""
        counters = self.counters
        if self._done:
            counters.rtp_dropped["after_hangup"] += 1  # the media service said BYE: what it sent since is moot
            return
        if not self.source.accept(packet.ssrc, packet.sequence):
            counters.rtp_dropped["unexpected_ssrc"] += 1
            return
        counters.rtp_packets_in += 1
        counters.rtp_bytes_in += size
        self.receive_stats.update(packet, now)
        samples = len(packet.payload) // self.wire_bytes_per_sample
        if self.jitter_buffer.take_in_order(packet, samples):
            self._play_now(packet.payload, now)
            return
        result = self.jitter_buffer.push(packet, samples, now)
        if result is PushResult.LATE or result is PushResult.DUPLICATE:
            counters.rtp_dropped[result.name.lower()] += 1
            return
        self._play_out(now)

    def play_out_then(self, on_played_out: Callable[[float], None], now: float) -> None:
        """The media service is done, but what it already sent (a TTS burst) must still be heard: take no
        more RTP, release what the jitter buffer holds (no gap will be filled now), play the queue out at real
        time, then call `on_played_out(now)`."""
        self._done = True
        self._on_played_out = on_played_out
        self._play_out(now, flush=True)

    # ---- time and flow -----------------------------------------------------------------------------------

    def on_tick(self, now: float) -> None:
        """Loss declared by time, audio due to Sinch: every few ms while `pending`, and now and then anyway."""
        if self.jitter_buffer:
            self._play_out(now)
        else:
            self._accrue_credit(now, 0)
            self._send_due(now)

    def set_paused(self, paused: bool, now: float) -> None:
        """While paused no audio is sent: it waits in the queue, whose cap bounds what a stalled peer costs."""
        self.paused = paused
        if not paused:
            self._accrue_credit(now, 0)
            self._send_due(now)

    def clear(self) -> None:
        """Barge-in: audio not yet played is dropped."""
        self._queue.clear()

    def stop(self) -> None:
        """The call is over: nothing more is played, and the clock is no longer needed."""
        self._on_played_out = None
        self.pending = False

    # ---- internals ---------------------------------------------------------------------------------------

    def _play_now(self, payload: bytes, now: float) -> None:
        """An in-order packet with nothing held back: straight to Sinch when it is one whole frame and due."""
        pcm = self._decoder.decode(payload)
        self._accrue_credit(now, 0)
        if not self._queue and len(pcm) == self._frame_bytes and self._frame_due and not self.paused:
            self._credit -= 1.0
            self._sink.send_frame(pcm, now)
            return
        self._queue += pcm
        self._trim_queue()
        self._send_due(now)

    def _play_out(self, now: float, flush: bool = False) -> None:
        """Move what the jitter buffer releases (with `flush`, all it holds) into the queue, then pace it."""
        # While packets wait for a missing one, the playout clock keeps running: the frames owed for that
        # wait may go out at once when the gap is filled or concealed, so a loss does not add lasting delay.
        self._accrue_credit(now, self._stall_frames if self._waiting_for_gap else 0)
        decoder = self._decoder
        queue = self._queue
        for payload, samples in self.jitter_buffer.pop(math.inf if flush else now):
            queue += decoder.decode(payload) if payload is not None else decoder.conceal(samples)
        self._waiting_for_gap = bool(self.jitter_buffer)
        self._trim_queue()
        self._send_due(now)

    def _trim_queue(self) -> None:
        queue = self._queue
        overflow = len(queue) - self._queue_cap
        if overflow > 0:
            overflow += -overflow % self._frame_bytes  # drop whole frames, oldest first
            del queue[:overflow]
            self.counters.return_queue_dropped_bytes += overflow

    def _accrue_credit(self, now: float, extra_frames: int) -> None:
        credit = self._credit + (now - self._credit_at) / FRAME
        limit = self._lead + extra_frames
        self._credit = credit if credit < limit else float(limit)
        self._credit_at = now

    @property
    def _frame_due(self) -> bool:
        """Real time has earned at least one more 20 ms frame to Sinch."""
        return self._credit >= 1.0 - CREDIT_EPSILON

    def _send_due(self, now: float) -> None:
        """Whole 20 ms frames at real time, with a small lead so audio leaves as soon as it arrives (design
        notes: faster than real time fills Sinch's 5 MB buffer and adds delay only `clear` removes)."""
        queue = self._queue
        frame_bytes = self._frame_bytes
        while self._frame_due and len(queue) >= frame_bytes and not self.paused:
            frame = bytes(queue[:frame_bytes])
            del queue[:frame_bytes]
            self._credit -= 1.0
            self._sink.send_frame(frame, now)
        if self._on_played_out is not None and len(queue) < frame_bytes and self._frame_due:
            if queue:  # the last partial frame, padded with silence
                self._sink.send_frame(bytes(queue) + bytes(frame_bytes - len(queue)), now)
                queue.clear()
            on_played_out, self._on_played_out = self._on_played_out, None
            on_played_out(now)
            return
        self.pending = len(queue) >= frame_bytes or self._waiting_for_gap or self._on_played_out is not None
