"""The media service's audio on its way back to Sinch, sans-IO: RTP of the call's stream in (latched source,
receive statistics, jitter buffer), decoded into a capped queue, paced out as 20 ms frames at real time.

Kept apart from the call's state machine (gateway.core.session) as aioquic keeps its pacer apart from the
connection: the session decides what a packet is and when the call ends; this decides when audio is heard.
Frames leave through a FrameSink (the session); `now` is passed in and never goes backwards.

It also knows which of the media service's RTP timestamps Sinch has been sent: the queue's head has one, each
20 ms frame is `wire_rate / 50` of them, so a playback mark is answered once the frame that holds its timestamp
has gone out, and a barge-in can drop exactly the audio at or before a timestamp, queued, held or still to come
(issue 12: RTCP APP `MARK` and `CLER`).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import cython

from gateway.core.call import FRAME_SECONDS, CallCounters, FrameSink
from gateway.core.codec import DownstreamDecoder
from gateway.core.rtp import JitterBuffer, PushResult, ReceiveStats, RtpPacket, SourceLatch

if cython.compiled:  # a C call when compiled
    from cython.cimports.gateway.core.rtp import ts_distance
else:
    from gateway.core.rtp import ts_distance

CREDIT_EPSILON = cython.declare(cython.double, 1e-6)  # float timer arithmetic: 0.02 s later is one whole frame
FRAME = cython.declare(cython.double, FRAME_SECONDS)  # a C value when compiled: used on every packet
NO_TS = cython.declare(cython.longlong, -1)  # no timestamp yet (RTP timestamps are 32 bits unsigned)
TS_MASK = cython.declare(cython.longlong, 0xFFFFFFFF)


class ReturnPath:
    __slots__ = (
        "_credit",
        "_credit_at",
        "_decoder",
        "_discard_until",
        "_done",
        "_frame_bytes",
        "_frame_ts",
        "_head_ts",
        "_hold_offset",
        "_hold_sound",
        "_holding",
        "_lead",
        "_marks",
        "_on_played_out",
        "_played_until",
        "_queue",
        "_queue_cap",
        "_received_until",
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
        self._frame_ts = wire_rate // 50  # RTP timestamp units in one 20 ms frame, at every rate Sinch allows
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
        self._head_ts = NO_TS  # the RTP timestamp of the queue's first byte, while it holds any
        self._played_until = NO_TS  # just after the last audio sent to Sinch
        self._received_until = NO_TS  # just after the latest audio received
        self._discard_until = NO_TS  # a barge-in's point: packets at or before it are never played
        self._marks: list[tuple[int, int]] = []  # (mark id, timestamp) not yet answered
        self._holding = False  # hold audio is paced to Sinch until the first frame of the media service's audio
        self._hold_sound = b""  # what is held: whole frames of PCM, looped; empty: silence
        self._hold_offset = 0  # where in it the next frame starts
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
        timestamp = packet.timestamp
        samples = len(packet.payload) // self.wire_bytes_per_sample
        if self._discard_until != NO_TS and ts_distance(timestamp, self._discard_until) <= 0:
            counters.rtp_dropped["cleared"] += 1  # sent before a barge-in's point, arriving after it
            self.jitter_buffer.pass_over(packet, samples)
            return
        end = (timestamp + samples) & TS_MASK
        if self._received_until == NO_TS or ts_distance(end, self._received_until) > 0:
            self._received_until = end
        if self.jitter_buffer.take_in_order(packet, samples):
            self._play_now(packet.payload, timestamp, samples, now)
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

    def clear_received(self) -> None:
        """Barge-in without a timestamp: everything received so far is never played."""
        if self._received_until != NO_TS:  # else nothing was received: nothing to clear
            self.clear_through((self._received_until - 1) & TS_MASK)

    def clear_through(self, through: int) -> None:
        """Barge-in: the audio at or before RTP timestamp `through` is never played, whether queued here, held
        by the jitter buffer or arriving later. Marks in it are answered cleared."""
        queue = self._queue
        if queue and ts_distance(through, self._head_ts) >= 0:
            frames = ts_distance(through, self._head_ts) // self._frame_ts + 1  # whole frames, from the head
            drop = min(frames * self._frame_bytes, len(queue))
            del queue[:drop]
            self._head_ts = (self._head_ts + frames * self._frame_ts) & TS_MASK
        self.jitter_buffer.drop_through(through)
        self._decoder.forget_last()
        self._waiting_for_gap = bool(self.jitter_buffer)
        self._discard_until = through
        self._settle_marks(through)
        self.pending = len(queue) >= self._frame_bytes or self._waiting_for_gap or self._on_played_out is not None

    def add_mark(self, mark_id: int, timestamp: int) -> None:
        """A playback mark: answered played once the frame holding `timestamp` has been sent to Sinch, or
        cleared when a barge-in (or the queue's cap, or the call's end) drops it first."""
        self._marks.append((mark_id, timestamp))
        self._settle_marks(NO_TS)

    def hold(self, sound: bytes) -> None:
        """Pace `sound` (whole frames of Sinch's PCM, looped; empty: silence) to Sinch until the media service's
        first audio is played (a failover: the call's new target has sent nothing yet), so Sinch hears the
        call go on."""
        self._holding = True
        self._hold_sound = sound
        self._hold_offset = 0
        self.pending = True

    def stop(self) -> None:
        """The call is over: nothing more is played, the clock is no longer needed, and every mark still
        pending is answered cleared."""
        self._on_played_out = None
        self._holding = False
        self.pending = False
        marks, self._marks = self._marks, []
        for mark_id, timestamp in marks:
            self._sink.mark_settled(mark_id, timestamp, False)

    # ---- internals ---------------------------------------------------------------------------------------

    def _play_now(self, payload: bytes, timestamp: int, samples: int, now: float) -> None:
        """An in-order packet with nothing held back: straight to Sinch when it is one whole frame and due."""
        pcm = self._decoder.decode(payload)
        self._accrue_credit(now, 0)
        if not self._queue and len(pcm) == self._frame_bytes and self._earned_frame() and not self.paused:
            self._credit -= 1.0
            self._sink.send_frame(pcm, now)
            self._played_until = (timestamp + samples) & TS_MASK
            if self._marks:
                self._settle_marks(NO_TS)
            return
        if not self._queue:
            self._head_ts = timestamp
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
        for timestamp, payload, samples in self.jitter_buffer.pop(math.inf if flush else now):
            if not queue:
                self._head_ts = timestamp
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
            self._head_ts = (self._head_ts + overflow // self._frame_bytes * self._frame_ts) & TS_MASK
            if self._marks:
                self._settle_marks((self._head_ts - 1) & TS_MASK)  # never to be played: cleared

    def _accrue_credit(self, now: float, extra_frames: int) -> None:
        credit = self._credit + (now - self._credit_at) / FRAME
        limit = self._lead + extra_frames
        self._credit = credit if credit < limit else float(limit)
        self._credit_at = now

    def _earned_frame(self) -> bool:
        """Real time has earned at least one more 20 ms frame to Sinch (a method: compiled, a C call)."""
        return self._credit >= 1.0 - CREDIT_EPSILON

    def _send_due(self, now: float) -> None:
        """Whole 20 ms frames at real time, with a small lead so audio leaves as soon as it arrives (design
        notes: faster than real time fills Sinch's 5 MB buffer and adds delay only `clear` removes)."""
        queue = self._queue
        frame_bytes = self._frame_bytes
        while self._earned_frame() and len(queue) >= frame_bytes and not self.paused:
            frame = bytes(queue[:frame_bytes])
            del queue[:frame_bytes]
            self._credit -= 1.0
            self._sink.send_frame(frame, now)
            self._head_ts = self._played_until = (self._head_ts + self._frame_ts) & TS_MASK
            if self._marks:
                self._settle_marks(NO_TS)
        if self._on_played_out is not None and len(queue) < frame_bytes and self._earned_frame():
            if queue:  # the last partial frame, padded with silence
                self._sink.send_frame(bytes(queue) + bytes(frame_bytes - len(queue)), now)
                queue.clear()
            on_played_out, self._on_played_out = self._on_played_out, None
            on_played_out(now)
            return
        if self._holding:
            self._send_hold(now)
        self.pending = (len(queue) >= frame_bytes or self._waiting_for_gap or self._on_played_out is not None
                        or self._holding)

    def _send_hold(self, now: float) -> None:
        """While holding: a frame of the hold sound (or silence) in each 20 ms slot real time has earned and no
        audio took."""
        if self._played_until != NO_TS:
            self._holding = False  # the media service's audio is playing
            return
        frame_bytes = self._frame_bytes
        sound = self._hold_sound
        while self._earned_frame() and not self.paused and len(self._queue) < frame_bytes:
            self._credit -= 1.0
            if sound:
                start = self._hold_offset
                self._hold_offset = (start + frame_bytes) % len(sound)
                self._sink.send_frame(sound[start:start + frame_bytes], now)
            else:
                self._sink.send_frame(bytes(frame_bytes), now)

    def _settle_marks(self, cleared_through: int) -> None:
        """Answer the marks whose frame has been sent (played), and those at or before `cleared_through` (a
        barge-in's point: cleared), each exactly once."""
        pending: list[tuple[int, int]] = []
        for mark_id, timestamp in self._marks:
            if self._played_until != NO_TS and ts_distance(timestamp, self._played_until) < 0:
                self._sink.mark_settled(mark_id, timestamp, True)
            elif cleared_through != NO_TS and ts_distance(timestamp, cleared_through) <= 0:
                self._sink.mark_settled(mark_id, timestamp, False)
            else:
                pending.append((mark_id, timestamp))
        self._marks = pending
