"""One call's state machine, sans-IO: Sinch websocket messages and RTP datagrams in, what to send out.

The adapter (gateway.dataplane.media) feeds it bytes and `now` (seconds, monotonic) and implements `CallOutput`;
tests drive it with a fake clock and a recording output. States: awaiting connect -> answered -> closed.
"""

from __future__ import annotations

import enum
import struct

from gateway.core import commands
from gateway.core.call import CallCounters, CallOutput, FrameSink, MediaFormat
from gateway.core.codec import DownstreamDecoder, UpstreamEncoder
from gateway.core.commands import CommandError, Connect
from gateway.core.hold import hold_frames
from gateway.core.policing import UpstreamBudget
from gateway.core.return_path import ReturnPath
from gateway.core.rtp import (
    RtcpError,
    RtpError,
    RtpPacketizer,
    app_messages,
    build_app,
    build_bye,
    build_sender_report,
    bye_sources,
    ntp_from_unix,
    parse_rtcp,
    parse_rtp,
    random_stream_origin,
)
from gateway.core.telephone_event import DtmfRelay
from gateway.shared.config import Config, Route

# RTCP APP packets (RFC 3550 §6.7) of the documented RTP conventions (docs/protocol.md), on the call's RTCP port:
# from the media service, CLER (barge-in: data empty, or the RTP timestamp to clear through) and MARK (data: mark
# id, RTP timestamp), subtype 0; from the gateway, MARK with subtype 1 (played) or 2 (cleared) and the same data.
CLEAR_APP_NAME = b"CLER"
MARK_APP_NAME = b"MARK"
MARK_PLAYED, MARK_CLEARED = 1, 2
_U32 = struct.Struct("!I")
_MARK = struct.Struct("!II")


class CloseCode(enum.IntEnum):
    """Websocket close codes (RFC 6455 §7.4.1) and what the gateway means by them."""

    NORMAL = 1000  # call ended: by the media service (RTCP BYE), the maximum duration, or after busy/reject
    GOING_AWAY = 1001  # gateway draining or shutting down
    PROTOCOL_ERROR = 1002  # the websocket protocol broken (RFC 6455): reserved bits, bad fragments, bad codes
    ABNORMAL = 1006  # connection lost without a close frame (never sent, only recorded)
    INVALID_PAYLOAD = 1007  # text that is not a valid command
    POLICY_VIOLATION = 1008  # audio before answer, no connect in time, bad connect, audio far faster than real time
    MESSAGE_TOO_BIG = 1009  # frame over max_frame_bytes
    INTERNAL_ERROR = 1011  # the gateway failed on this call


class CallState(enum.Enum):
    AWAITING_CONNECT = "awaiting_connect"
    ANSWERED = "answered"
    CLOSED = "closed"


# The states as module names: a global the compiled module caches, not an attribute looked up on every packet.
AWAITING_CONNECT, ANSWERED, CLOSED = CallState.AWAITING_CONNECT, CallState.ANSWERED, CallState.CLOSED


class CallSession(FrameSink):
    """One call's state machine. Larger than the project's ~250-line guide on purpose: it is the one place that
    decides what every input means for the call (connect, audio, commands, RTP, RTCP, time), so each decision
    reads in one file; what it delegates already has a class of its own (ReturnPath, UpstreamBudget,
    RtpPacketizer, the codecs), and it is compiled as one extension type, so splitting it further would add
    calls on the per-frame path."""

    def __init__(
        self,
        config: Config,
        route: Route,
        output: CallOutput,
        now: float,
        url_rate: int | None = None,
        unix_offset: float = 0.0,
        expected_call_id: str = "",
    ) -> None:
        self.config = config
        self.route = route
        self.output = output
        self.url_rate = url_rate
        self.unix_offset = unix_offset  # unix time = now + unix_offset (RTCP NTP timestamps)
        self.expected_call_id = expected_call_id  # from the stream token; "" = any
        self.state = AWAITING_CONNECT
        self.counters = CallCounters()
        self.call_id = ""
        self.started_at = now
        self.close_code: int | None = None
        self.close_reason = ""
        self.closed_by_peer = False
        self.outcome: str | None = None  # answer, busy or reject, once the connect is handled
        self.format: MediaFormat | None = None
        self._connect_deadline = now + config.connect_timeout
        self._odd_byte = b""
        self._output_paused = False  # Sinch's connection is not taking data
        self._upstream = bytearray()
        self._dtmf: DtmfRelay | None = None  # the route's DTMF detection, from the answer on
        self.return_path: ReturnPath | None = None  # from the answer on

    # ---- websocket side -------------------------------------------------------------------------------

    def on_text(self, text: bytes, now: float) -> None:
        self.counters.ws_frames_in += 1
        self.counters.ws_bytes_in += len(text)
        if self.state is CLOSED:
            return
        try:
            command = commands.parse_command(text)
        except CommandError as exc:
            if self.state is ANSWERED and exc.reason != "bad_connect":
                # Not a command at all (not JSON, not an object, no "command"): Sinch may add messages to the
                # stream at any time, so after the answer one is counted and the call goes on.
                self.counters.ignored_commands[commands.NOT_A_COMMAND] += 1
                return
            code = CloseCode.INVALID_PAYLOAD if exc.reason != "bad_connect" else CloseCode.POLICY_VIOLATION
            if self.state is AWAITING_CONNECT:
                self._refuse(commands.REJECT, code, str(exc), now)
            else:
                self._close(code, str(exc), now)
            return
        if isinstance(command, Connect):
            if self.state is not AWAITING_CONNECT:
                self._close(CloseCode.POLICY_VIOLATION, "second connect command", now)
            elif self.expected_call_id and command.call_id != self.expected_call_id:
                self._refuse(commands.REJECT, CloseCode.POLICY_VIOLATION, "call id does not match the stream token",
                             now)
            elif self.output.admit():
                self._answer(command, now)
            else:
                self.call_id = command.call_id
                self._refuse(commands.BUSY, CloseCode.NORMAL, "busy: gateway at capacity", now)
            return
        self.counters.ignored_commands[command.name] += 1

    def on_audio(self, pcm: bytes | memoryview, now: float) -> None:
        """A binary message: 16-bit LE mono PCM at the call's rate, any length (protocol notes §2.4)."""
        counters = self.counters
        counters.ws_frames_in += 1
        counters.ws_bytes_in += len(pcm)
        if self.state is not ANSWERED:
            if self.state is AWAITING_CONNECT:
                self._close(CloseCode.POLICY_VIOLATION, "audio before connect", now)
            return
        if not self._budget.take(len(pcm), now):
            self._police(len(pcm), now)
            return
        if self._odd_byte or len(pcm) & 1:
            pcm = self._keep_whole_samples(pcm)
        if self._dtmf is not None:
            self._relay_dtmf(pcm)
        wire = self._encoder.encode(pcm)
        packet_bytes = self._packet_bytes
        if not self._upstream and len(wire) == packet_bytes:
            self._send_rtp(wire, now)
            return
        self._upstream += wire
        while len(self._upstream) >= packet_bytes:
            self._send_rtp(self._upstream[:packet_bytes], now)
            del self._upstream[:packet_bytes]

    def on_closed(self, code: int, reason: str, now: float, by_peer: bool = True) -> None:
        """The websocket is closed: by Sinch (a hangup), by the connection dropping (1006), or by the
        websocket layer itself (e.g. 1009 for an oversized frame). Either way the call is over."""
        if self.state is CLOSED:
            return
        self.closed_by_peer = by_peer
        self._end(code, reason, now)

    # ---- RTP side ------------------------------------------------------------------------------------

    def on_rtp(self, data: bytes, now: float) -> None:
        """A datagram on the call's RTP port. Only the route sends there: the adapter's sockets are connected to
        it (symmetric RTP), so the kernel drops anyone else's."""
        counters = self.counters
        if self.state is not ANSWERED:
            counters.rtp_dropped["not_answered" if self.state is AWAITING_CONNECT else "after_hangup"] += 1
            return
        try:
            packet = parse_rtp(data)
        except RtpError as exc:
            counters.rtp_dropped[exc.reason] += 1
            return
        if packet.payload_type != self._payload_type:
            counters.rtp_dropped["unexpected_payload_type"] += 1
            return
        self.return_path.receive(packet, len(data), now)

    def on_rtcp(self, data: bytes, now: float) -> None:
        """A datagram on the call's RTCP port (the route's port + 1, connected like the RTP one)."""
        if self.state is not ANSWERED:
            self.counters.rtp_dropped["unexpected_rtcp"] += 1
            return
        try:
            packets = parse_rtcp(data)
        except RtcpError as exc:
            self.counters.rtp_dropped["rtcp_" + exc.reason] += 1
            return
        byes = bye_sources(packets)
        if byes is not None and self.return_path.source.says_goodbye(byes):
            self.return_path.play_out_then(self._media_service_done, now)  # what it sent is heard first
        elif byes is not None:
            self.counters.rtp_dropped["rtcp_bye_unknown_ssrc"] += 1  # another stream's goodbye, not this call's
        for name, subtype, data in app_messages(packets):
            self._on_app(name, subtype, data, now)

    # ---- time ------------------------------------------------------------------------------------------

    def on_pacing_tick(self, now: float) -> None:
        """Called every few ms while `pacing_pending`: loss declared by time, audio due to Sinch."""
        if self.state is ANSWERED:
            self.return_path.on_tick(now)

    def on_tick(self, now: float) -> None:
        """Called by the worker for every call about ten times a second: deadlines, heartbeats, reports."""
        if self.state is ANSWERED:
            if self._max_end and now >= self._max_end:
                self._close(CloseCode.NORMAL, "maximum call duration reached", now)
                return
            self.on_pacing_tick(now)
            if now - self._last_sent_to_sinch >= self.config.heartbeat_interval:
                self._send_command(commands.HEARTBEAT, now)
                self.counters.heartbeats_sent += 1
            if now >= self._next_rtcp:
                self._send_sender_report(now)
        elif self.state is AWAITING_CONNECT and now >= self._connect_deadline:
            self._close(CloseCode.POLICY_VIOLATION, f"no connect command within {self.config.connect_timeout:g}s",
                        now)

    def set_output_paused(self, paused: bool, now: float) -> None:
        """Sinch's connection stopped (or resumed) taking data: TCP backpressure. While paused no audio is sent;
        it waits in the return queue, whose cap bounds the memory a stalled peer can cost."""
        self._output_paused = paused
        if self.state is ANSWERED:
            self.return_path.set_paused(paused, now)

    def clear(self, now: float, through: int | None = None) -> None:
        """Barge-in: drop the audio received so far (or at or before RTP timestamp `through`) that is not yet
        played here, queued, held or still to come, and ask Sinch to drop what it has buffered."""
        if self.state is ANSWERED:
            if through is None:
                self.return_path.clear_received()
            else:
                self.return_path.clear_through(through)
            self._send_command(commands.CLEAR, now)

    def mark_settled(self, mark_id: int, timestamp: int, played: bool) -> None:
        """The return path's answer to a playback mark: an RTCP APP MARK back to the media service."""
        self.output.send_rtcp(build_app(self.packetizer.ssrc, MARK_APP_NAME, _MARK.pack(mark_id, timestamp),
                                        MARK_PLAYED if played else MARK_CLEARED))
        self.output.mark_settled(mark_id, timestamp, "played" if played else "cleared")

    def shutdown(self, code: int, reason: str, now: float) -> None:
        """The gateway ends the call (drain deadline, shutdown)."""
        if self.state is not CLOSED:
            self._close(code, reason, now)

    def pacing_pending(self) -> bool:
        """Audio or a gap waits on the clock: the worker's fast tick is needed. A method, not a property: the
        compiled worker's timer and adapter call it at C level."""
        return self.return_path is not None and self.return_path.pending

    @property
    def return_queue_bytes(self) -> int:
        return self.return_path.queued_bytes if self.return_path is not None else 0

    # ---- internals -------------------------------------------------------------------------------------

    def _refuse(self, reply: bytes, code: int, reason: str, now: float) -> None:
        """Answer the connect with busy or reject (protocol notes §2.3), then end the call."""
        self.outcome = "busy" if reply is commands.BUSY else "reject"
        self._send_command(reply, now)
        self._close(code, reason, now)

    def _answer(self, connect: Connect, now: float) -> None:
        call_rate = connect.sample_rate or self.url_rate or self.config.default_rate
        route = self.route
        wire_rate = route.wire_rate(call_rate)
        self._encoder = UpstreamEncoder(route.codec, call_rate, wire_rate)
        self.format = fmt = MediaFormat(
            call_rate=call_rate,
            wire_rate=wire_rate,
            payload_type=route.payload_type_for(wire_rate),
            ptime_ms=route.ptime_for(wire_rate, self.config.mtu_budget),
            wire_bytes_per_sample=self._encoder.bytes_per_sample,
        )
        self._packet_bytes = fmt.packet_bytes
        self._payload_type = fmt.payload_type  # a C value, compared on every packet
        self._packet_samples = fmt.packet_samples
        self._new_stream(now)
        config = self.config
        self._budget = UpstreamBudget(call_rate * 2, config.audio_speed_limit, config.audio_burst_seconds, now)
        self._policed_bytes_limit = call_rate * 2 * config.audio_burst_seconds
        self.call_id = connect.call_id
        self.state = ANSWERED
        self.outcome = "answer"
        self.answered_at = now
        self._max_end = now + self.config.max_call_duration if self.config.max_call_duration else 0.0
        self._next_rtcp = now + self.config.rtcp_interval
        self._send_command(commands.ANSWER, now)
        self.output.answered(connect, call_rate)

    def restart_stream(self, now: float) -> None:
        """The call moved to another media service (failover): a new RTP stream to it, with its own SSRC and
        origin (RFC 3550 §8.2: a new source), and a new return path latched on the new service's stream."""
        if self.state is ANSWERED:
            self.return_path.stop()  # marks pending are answered (cleared) before the old stream goes
            self._new_stream(now)
            # Sinch hears the route's hold sound (or silence) until the new target's audio
            self.return_path.hold(hold_frames(self.route.hold_sound, self.format.call_rate))

    def _new_stream(self, now: float) -> None:
        fmt = self.format
        ssrc, sequence, timestamp = random_stream_origin()
        self.packetizer = RtpPacketizer(fmt.payload_type, ssrc, sequence, timestamp)
        if self.route.dtmf:  # telephone events go on the call's stream: a new stream, a new relay
            self._dtmf = DtmfRelay(self.route.dtmf, fmt.call_rate, fmt.wire_rate, self.packetizer, timestamp)
        config = self.config
        self.return_path = ReturnPath(
            DownstreamDecoder(self.route.codec, fmt.call_rate, fmt.wire_rate), fmt.wire_rate, fmt.frame_bytes,
            self.counters, self, now, jitter_max_wait=config.jitter_max_wait,
            pacing_lead_frames=config.pacing_lead_frames, queue_seconds=config.return_queue_seconds,
        )
        self.return_path.paused = self._output_paused

    def _police(self, size: int, now: float) -> None:
        """Audio over the call's budget is dropped; a call that keeps sending that fast (another burst's worth
        dropped) is no real-time caller and is closed, so it cannot starve the worker's other calls."""
        self.counters.policed_bytes += size
        if self.counters.policed_bytes > self._policed_bytes_limit:
            self._close(CloseCode.POLICY_VIOLATION, "audio far faster than real time", now)

    def _on_app(self, name: bytes, subtype: int, data: bytes, now: float) -> None:
        if name == CLEAR_APP_NAME and subtype == 0 and len(data) in (0, 4):
            self.clear(now, _U32.unpack(data)[0] if data else None)
        elif name == MARK_APP_NAME and subtype == 0 and len(data) == 8:
            mark_id, timestamp = _MARK.unpack(data)
            self.return_path.add_mark(mark_id, timestamp)
        elif name in (CLEAR_APP_NAME, MARK_APP_NAME):
            self.counters.rtp_dropped["rtcp_bad_app"] += 1  # ours, but not in the documented layout

    def _media_service_done(self, now: float) -> None:
        self._close(CloseCode.NORMAL, "media service sent RTCP BYE", now)

    def _keep_whole_samples(self, pcm: bytes | memoryview) -> bytes:
        """Carry an odd trailing byte to the next message: chunk sizes are not fixed (protocol notes §2.4)."""
        data = self._odd_byte + bytes(pcm)
        cut = len(data) & ~1
        self._odd_byte = data[cut:]
        return data[:cut]

    def _send_rtp(self, payload: bytes | bytearray, now: float) -> None:
        self._send_packet(self.packetizer.pack(payload, self._packet_samples))
        if self.packetizer.packet_count == 1:
            # Announce the CNAME (= Sinch CallId) with the first packet rather than 5 s later.
            self._send_sender_report(now)

    def _relay_dtmf(self, pcm: bytes | memoryview) -> None:
        """The route's DTMF detection (route option dtmf): the telephone events this chunk completes go out
        before its audio, and each digit that ended is reported."""
        packets, digits = self._dtmf.feed(pcm)
        for packet in packets:
            self._send_packet(packet)
        for digit in digits:
            self.output.dtmf(digit.digit, digit.duration / self.format.call_rate)

    def _send_packet(self, packet: bytes) -> None:
        """One RTP packet of the call's stream to the media service, counted."""
        self.output.send_rtp(packet)
        self.counters.rtp_packets_out += 1
        self.counters.rtp_bytes_out += len(packet)

    def _send_sender_report(self, now: float) -> None:
        self._next_rtcp = now + self.config.rtcp_interval
        packetizer = self.packetizer
        if packetizer.packet_count == 0:
            return  # RFC 3550 §6.4: an SR describes a sender; nothing sent yet
        report = build_sender_report(
            packetizer.ssrc, ntp_from_unix(now + self.unix_offset), packetizer.last_timestamp,
            packetizer.packet_count, packetizer.octet_count, self.call_id,
        )
        self.output.send_rtcp(report)

    def send_frame(self, frame: bytes, now: float) -> None:
        """A 20 ms frame of the return path for Sinch."""
        self.output.send_audio(frame)
        self.counters.ws_frames_out += 1
        self.counters.ws_bytes_out += len(frame)
        self._last_sent_to_sinch = now

    def _send_command(self, message: bytes, now: float) -> None:
        self.output.send_command(message)
        self.counters.ws_frames_out += 1
        self.counters.ws_bytes_out += len(message)
        self._last_sent_to_sinch = now

    def _close(self, code: int, reason: str, now: float) -> None:
        self._end(code, reason, now)
        self.output.close(code, reason)

    def _end(self, code: int, reason: str, now: float) -> None:
        if self.return_path is not None:
            self.return_path.stop()  # marks still pending are answered before the BYE
        if self.state is ANSWERED and self.packetizer.packet_count:
            self.output.send_rtcp(build_bye(self.packetizer.ssrc, self.call_id, reason[:255]))
        self.state = CLOSED
        self.close_code = code
        self.close_reason = reason
        self.ended_at = now
