"""DTMF heard in the caller's audio, sent on as RFC 4733 telephone events. Sans-IO.

A `DtmfRelay` feeds a call's upstream PCM to the detector (gateway.core.dtmf) and turns each digit into
`telephone-event` RTP packets on the call's own stream (RFC 4733 §2.1: the audio's SSRC and sequence space, its
clock rate). For one digit (§2.5.1):
- a first packet with the marker bit once the digit is recognised (40 to 60 ms after the key press), its
  timestamp the RTP timestamp of the digit's first sample, its duration what has been heard so far;
- an update with the same timestamp and the duration so far (up to the last 5 ms the tone was heard in) each
  time audio arrives while the key is held;
- when it ends, a packet with the E bit and the final duration, sent three times (§2.5.1.4): at once and
  with the next two chunks of audio.
The audio itself is sent unchanged: the tones stay in it.
"""

from __future__ import annotations

import struct

from gateway.core.dtmf import DtmfDetector, DtmfEvent
from gateway.core.rtp import RtpPacketizer

# RFC 4733 §3.2 (table 7): the DTMF events' codes.
EVENT_CODES = {**{str(digit): digit for digit in range(10)}, "*": 10, "#": 11, "A": 12, "B": 13, "C": 14, "D": 15}
_EVENT = struct.Struct("!BBH")  # §2.3: event, E|R|volume, duration
END_BIT = 0x80
MAX_VOLUME = 63  # §2.3.4: 6 bits, -dBm0
MAX_DURATION = 0xFFFF  # §2.3.5: 16 bits of timestamp units
END_PACKETS = 3  # §2.5.1.4: the final packet is sent three times


def telephone_event_payload(event: int, end: bool, volume: int, duration: int) -> bytes:
    """The 4-octet payload of RFC 4733 §2.3: event code, E bit (R stays 0), volume in -dBm0, duration in
    timestamp units since the event's timestamp."""
    if not 0 <= event <= 255 or not 0 <= volume <= MAX_VOLUME or not 0 <= duration <= MAX_DURATION:
        raise ValueError(f"telephone event {event}, volume {volume}, duration {duration} out of range")
    return _EVENT.pack(event, (END_BIT if end else 0) | volume, duration)


class DtmfRelay:
    """One call's DTMF: its upstream PCM (at `call_rate`) in, telephone-event packets for its RTP stream out.
    `first_timestamp` is the RTP timestamp of the stream's first sample; `wire_rate` the stream's clock."""

    def __init__(self, payload_type: int, call_rate: int, wire_rate: int, packetizer: RtpPacketizer,
                 first_timestamp: int) -> None:
        self.payload_type = payload_type
        self._detector = DtmfDetector(call_rate)
        self._call_rate = call_rate
        self._wire_rate = wire_rate
        self._packetizer = packetizer
        self._first_timestamp = first_timestamp
        self._digit: DtmfEvent | None = None  # the digit being heard: its start event
        self._event = 0
        self._volume = 0
        self._segment = 0  # RTP timestamp of the digit's current segment (§2.5.1.3: the first is the digit's)
        self._repeats: list[tuple[int, bytes]] = []  # final packets (timestamp, payload) to send again

    def feed(self, pcm: bytes | bytearray | memoryview) -> tuple[list[bytes], list[DtmfEvent]]:
        """The next chunk of the caller's audio: the packets to send now, and the digits that ended in it."""
        packets: list[bytes] = []
        if self._repeats:
            packets.append(self._pack(*self._repeats.pop(0), marker=False))
        ended: list[DtmfEvent] = []
        events = self._detector.feed(pcm)
        for event in events:
            if event.ended:
                self._send(packets, event.duration, end=True)
                self._digit = None
                ended.append(event)
            else:
                self._send_repeats(packets)  # the last digit's end goes out before the next one starts
                self._digit = event
                self._event = EVENT_CODES[event.digit]
                self._volume = min(MAX_VOLUME, max(0, round(-event.level)))
                self._segment = self._clock(event.start)
                self._send(packets, event.duration, end=False, first=True)
        if self._digit is not None and not events:
            self._send(packets, self._detector.lasting, end=False)
        return packets, ended

    def _clock(self, samples: int) -> int:
        """The RTP timestamp of a sample of the call's audio (counted from the first)."""
        return (self._first_timestamp + samples * self._wire_rate // self._call_rate) & 0xFFFFFFFF

    def _send(self, packets: list[bytes], samples: int, end: bool, first: bool = False) -> None:
        """A packet for the digit being heard, `samples` (of the call's audio) after its start. A duration past
        the 16-bit field ends the segment and starts another where it ends (RFC 4733 §2.5.1.3)."""
        duration = (self._clock(self._digit.start + samples) - self._segment) & 0xFFFFFFFF
        while duration > MAX_DURATION:
            self._final(packets, MAX_DURATION, end=False)
            self._segment = (self._segment + MAX_DURATION) & 0xFFFFFFFF
            duration -= MAX_DURATION
            first = False
        if end:
            self._final(packets, duration, end=True)
        else:
            payload = telephone_event_payload(self._event, False, self._volume, duration)
            packets.append(self._pack(self._segment, payload, marker=first))

    def _final(self, packets: list[bytes], duration: int, end: bool) -> None:
        """A segment's last packet (the digit's, with the E bit): sent now and again with each of the next two
        chunks (§2.5.1.4). Repeats still due for an earlier segment go first."""
        self._send_repeats(packets)
        payload = telephone_event_payload(self._event, end, self._volume, duration)
        packets.append(self._pack(self._segment, payload, marker=False))
        self._repeats = [(self._segment, payload)] * (END_PACKETS - 1)

    def _send_repeats(self, packets: list[bytes]) -> None:
        packets += [self._pack(*repeat, marker=False) for repeat in self._repeats]
        self._repeats = []

    def _pack(self, timestamp: int, payload: bytes, marker: bool) -> bytes:
        return self._packetizer.pack_event(self.payload_type, marker, timestamp, payload)
