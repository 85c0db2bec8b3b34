"""The per-call records the session and its return path share: what was counted, and the media format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from gateway.core.commands import Connect

FRAME_SECONDS = 0.020  # audio to Sinch goes in 20 ms frames (protocol notes §2.4)


class CallOutput:
    """What the session asks its adapter to do; calls happen synchronously inside session methods. A base class
    rather than a Protocol: compiled, the session calls it at C level. The adapter implements it, and so do the
    tests' recording doubles."""

    def send_command(self, message: bytes) -> None:
        raise NotImplementedError

    def send_audio(self, pcm: bytes) -> None:
        raise NotImplementedError

    def send_rtp(self, packet: bytes) -> None:
        raise NotImplementedError

    def send_rtcp(self, packet: bytes) -> None:
        raise NotImplementedError

    def admit(self) -> bool:
        raise NotImplementedError

    def answered(self, connect: Connect, sample_rate: int) -> None:
        raise NotImplementedError

    def close(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def mark_settled(self, mark_id: int, timestamp: int, outcome: str) -> None:
        """A playback mark was `played` or `cleared` (for the call events)."""
        raise NotImplementedError

    def dtmf(self, digit: str, seconds: float) -> None:
        """A DTMF digit heard in the caller's audio has ended, after `seconds` (for the call events)."""
        raise NotImplementedError


class FrameSink:
    """Where a call's return path hands each 20 ms frame for Sinch, and says what became of each playback mark:
    the session (compiled, C-level calls)."""

    def send_frame(self, frame: bytes, now: float) -> None:
        raise NotImplementedError

    def mark_settled(self, mark_id: int, timestamp: int, played: bool) -> None:
        raise NotImplementedError


class CallCounters:
    """Per-call counts; telemetry turns them into metrics (cheaper than touching metrics per frame)."""

    __slots__ = (
        "heartbeats_sent", "ignored_commands", "policed_bytes", "return_queue_dropped_bytes", "rtp_bytes_in",
        "rtp_bytes_out", "rtp_dropped", "rtp_packets_in", "rtp_packets_out", "ws_bytes_in", "ws_bytes_out",
        "ws_frames_in", "ws_frames_out",
    )

    def __init__(self) -> None:
        self.ws_frames_in = 0
        self.ws_bytes_in = 0
        self.ws_frames_out = 0
        self.ws_bytes_out = 0
        self.rtp_packets_out = 0
        self.rtp_bytes_out = 0
        self.rtp_packets_in = 0
        self.rtp_bytes_in = 0
        self.rtp_dropped: Counter[str] = Counter()
        self.return_queue_dropped_bytes = 0
        self.policed_bytes = 0  # upstream audio dropped for coming faster than audio_speed_limit allows
        self.ignored_commands: Counter[str] = Counter()
        self.heartbeats_sent = 0


@dataclass(slots=True, frozen=True)
class MediaFormat:
    """The negotiated shape of one call's media, fixed at answer time."""

    call_rate: int
    wire_rate: int
    payload_type: int
    ptime_ms: int
    wire_bytes_per_sample: int

    @property
    def packet_samples(self) -> int:
        return self.wire_rate * self.ptime_ms // 1000

    @property
    def packet_bytes(self) -> int:
        return self.packet_samples * self.wire_bytes_per_sample

    @property
    def frame_bytes(self) -> int:
        """A 20 ms frame of Sinch audio: 16-bit mono at the call's rate."""
        return round(self.call_rate * FRAME_SECONDS) * 2
