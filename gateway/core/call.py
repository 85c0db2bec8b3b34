"""The per-call records the session and its return path share: what was counted, and the media format."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

FRAME_SECONDS = 0.020  # audio to Sinch goes in 20 ms frames (protocol notes §2.4)


@dataclass(slots=True)
class CallCounters:
    """Per-call counts; the adapter turns them into metrics (cheaper than touching metrics per frame)."""

    ws_frames_in: int = 0
    ws_bytes_in: int = 0
    ws_frames_out: int = 0
    ws_bytes_out: int = 0
    rtp_packets_out: int = 0
    rtp_bytes_out: int = 0
    rtp_packets_in: int = 0
    rtp_bytes_in: int = 0
    rtp_dropped: Counter[str] = field(default_factory=Counter)
    return_queue_dropped_bytes: int = 0
    policed_bytes: int = 0  # upstream audio dropped for coming faster than audio_speed_limit allows
    ignored_commands: Counter[str] = field(default_factory=Counter)
    heartbeats_sent: int = 0


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
