"""RTP/RTCP wire format (RFC 3550), packetizer, receive statistics and jitter buffer.

Sans-IO: no sockets, no clocks (time is passed in as `now`/`arrival` seconds), no codecs, no metrics.
"""

from __future__ import annotations

import enum
import math
import secrets
import struct
from dataclasses import dataclass
from typing import NamedTuple

import cython

from gateway.core.errors import InputError

if cython.compiled:  # C-level names for the compiled data plane; the Python one never reaches them
    from cython.cimports.cpython.bytearray import PyByteArray_AS_STRING
    from cython.cimports.cpython.bytes import PyBytes_AS_STRING, PyBytes_FromStringAndSize
    from cython.cimports.libc.string import memcpy

# RFC 3550 §5.1: fixed header V|P|X|CC, M|PT, sequence, timestamp, SSRC. Constants the per-packet code uses
# are C values when compiled (cython.declare), plain ints as Python.
RTP_VERSION = cython.declare(cython.int, 2)
V2 = cython.declare(cython.int, RTP_VERSION << 6)  # first octet: version 2, no padding/extension, count 0
RTP_HEADER = struct.Struct("!BBHII")
RTP_HEADER_SIZE = cython.declare(cython.Py_ssize_t, 12)
CSRC_SIZE = cython.declare(cython.int, 4)
PADDING_BIT = cython.declare(cython.int, 0x20)
EXTENSION_BIT = cython.declare(cython.int, 0x10)
CC_MASK = cython.declare(cython.int, 0x0F)
MARKER_BIT = cython.declare(cython.int, 0x80)
PT_MASK = cython.declare(cython.int, 0x7F)
# 32-bit timestamp arithmetic; declared, as a literal this large would be a Python int and the arithmetic Python's
TS_MASK = cython.declare(cython.longlong, 0xFFFFFFFF)
HALF_TS_RANGE = cython.declare(cython.longlong, 0x80000000)
COUNT_MASK = 0x1F  # RTCP RC/SC
SEQ_MOD = cython.declare(cython.long, 1 << 16)

# RFC 3550 §6.4-§6.6: common header V|P|RC, PT, length (32-bit words minus one).
RTCP_HEADER = struct.Struct("!BBH")
RTCP_SSRC_HEADER = struct.Struct("!BBHI")  # header + SSRC: RR without report blocks, BYE with one source
RTCP_SR = struct.Struct("!BBHIIIIII")  # header, SSRC, NTP sec, NTP frac, RTP timestamp, packets, octets
RTCP_SR_TYPE = 200
RTCP_RR_TYPE = 201
RTCP_SDES_TYPE = 202
RTCP_BYE_TYPE = 203
RTCP_APP_TYPE = 204
SDES_CNAME = 1
MAX_SDES_TEXT = 255  # RFC 3550 §6.5: 8-bit length field

NTP_UNIX_OFFSET = 2208988800  # seconds from 1900-01-01 (NTP era 0) to 1970-01-01

# RFC 3550 A.1
MAX_DROPOUT = cython.declare(cython.long, 3000)
MAX_MISORDER = cython.declare(cython.long, 100)
# ReceiveStats tells duplicates from reordered packets this far behind: one 64-bit word.
SEEN_WINDOW = cython.declare(cython.long, 64)
_SEEN_MASK = cython.declare(cython.ulonglong, (1 << 64) - 1)


class RtpError(InputError):
    """An undecodable RTP packet."""


class RtcpError(InputError):
    """An undecodable RTCP packet."""


def seq_distance(a: int, b: int) -> int:
    """Signed distance a - b between 16-bit sequence numbers, in [-32768, 32767] (RFC 1982 serial arithmetic:
    a positive distance means a comes after b)."""
    return ((a - b + 0x8000) & 0xFFFF) - 0x8000


def ts_distance(a: int, b: int) -> int:
    """Signed distance a - b between 32-bit RTP timestamps."""
    return ((a - b + HALF_TS_RANGE) & TS_MASK) - HALF_TS_RANGE


# --- RTP ---------------------------------------------------------------------------------------------


class RtpPacket:
    """One parsed packet; `payload` is what follows the CSRCs and header extension, padding removed
    (RFC 3550 §5.1, §5.3.1). Mutable and slotted: one is made per packet."""

    __slots__ = ("marker", "payload", "payload_type", "sequence", "ssrc", "timestamp")

    def __init__(
        self, payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int, payload: bytes
    ) -> None:
        self.payload_type = payload_type
        self.marker = marker
        self.sequence = sequence
        self.timestamp = timestamp
        self.ssrc = ssrc
        self.payload = payload

    def _fields(self) -> tuple[int, bool, int, int, int, bytes]:
        return self.payload_type, self.marker, self.sequence, self.timestamp, self.ssrc, self.payload

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RtpPacket) and self._fields() == other._fields()

    def __repr__(self) -> str:
        return "RtpPacket(payload_type={}, marker={}, sequence={}, timestamp={}, ssrc={}, payload={!r})".format(
            *self._fields())


def _u32(data: bytes, at: int) -> int:
    """The 32-bit unsigned integer in network order at `at` (widened before the shift: compiled, an int would
    overflow)."""
    return cython.cast(cython.ulonglong, data[at]) << 24 | data[at + 1] << 16 | data[at + 2] << 8 | data[at + 3]


def parse_rtp(data: bytes) -> RtpPacket:
    """One datagram as RTP (RFC 3550 §5.1), each length checked before it is used. The fixed header is read
    byte by byte: compiled, that is C; as Python, struct would be a little faster."""
    size = len(data)
    if size < RTP_HEADER_SIZE:
        raise RtpError("too_short", f"RTP packet of {size} bytes, header needs {RTP_HEADER_SIZE}")
    first = data[0]
    second = data[1]
    if first >> 6 != RTP_VERSION:
        raise RtpError("bad_version", f"RTP version {first >> 6}")
    sequence = data[2] << 8 | data[3]
    timestamp = _u32(data, 4)
    ssrc = _u32(data, 8)
    start = RTP_HEADER_SIZE + CSRC_SIZE * (first & CC_MASK)  # RFC 3550 §5.1: CSRC list
    if start > size:
        raise RtpError("bad_csrc", f"{first & CC_MASK} CSRCs do not fit in {size} bytes")
    if first & EXTENSION_BIT:  # RFC 3550 §5.3.1: 16-bit profile, 16-bit length in 32-bit words
        if start + 4 > size:
            raise RtpError("bad_extension", "header extension truncated")
        words = data[start + 2] << 8 | data[start + 3]
        start += 4 + 4 * words
        if start > size:
            raise RtpError("bad_extension", f"header extension of {words} words exceeds packet")
    end = size
    if first & PADDING_BIT:  # RFC 3550 §5.1: last octet counts the padding, itself included
        padding = data[size - 1] if end > start else 0
        if padding == 0 or padding > end - start:
            raise RtpError("bad_padding", f"padding of {padding} octets, {end - start} available")
        end -= padding
    return RtpPacket(second & PT_MASK, (second & MARKER_BIT) != 0, sequence, timestamp, ssrc, data[start:end])


def random_stream_origin() -> tuple[int, int, int]:
    """Random (SSRC, first sequence, first timestamp) for a new stream (RFC 3550 §5.1, §8)."""
    return secrets.randbits(32), secrets.randbits(16), secrets.randbits(32)


class RtpPacketizer:
    """Builds RTP packets for one outgoing stream. The random origin comes from the caller
    (`random_stream_origin()`), so tests are deterministic."""

    __slots__ = (
        "_second_byte",
        "_sequence",
        "_timestamp",
        "last_timestamp",
        "octet_count",
        "packet_count",
        "ssrc",
    )

    def __init__(self, payload_type: int, ssrc: int, first_sequence: int, first_timestamp: int) -> None:
        if not 0 <= payload_type <= PT_MASK:
            raise ValueError(f"RTP payload type {payload_type} outside 0-127")
        self._second_byte = MARKER_BIT | payload_type  # RFC 3551 §4.1: marker on the first packet
        self._sequence = first_sequence
        self._timestamp = first_timestamp
        self.ssrc = ssrc
        self.last_timestamp = first_timestamp  # RTP timestamp of the last packet sent (first one if none)
        self.packet_count = 0  # RFC 3550 §6.4.1 sender's packet count
        self.octet_count = 0  # RFC 3550 §6.4.1 sender's octet count: payload only

    def pack(self, payload: bytes | bytearray, samples: int) -> bytes:
        timestamp = self._timestamp
        if cython.compiled:  # the header written in place before the payload: one allocation, no struct call
            if type(payload) is not bytes and type(payload) is not bytearray:
                payload = bytes(payload)  # any other buffer (a memoryview): copied once, never read blindly
            size, header = len(payload), RTP_HEADER_SIZE
            packet = PyBytes_FromStringAndSize(cython.NULL, header + size)
            out = cython.cast(cython.p_uchar, PyBytes_AS_STRING(packet))
            out[0] = V2
            out[1] = self._second_byte
            out[2], out[3] = self._sequence >> 8, self._sequence & 0xFF
            out[4], out[5], out[6], out[7] = timestamp >> 24, timestamp >> 16 & 0xFF, timestamp >> 8 & 0xFF, \
                timestamp & 0xFF
            out[8], out[9], out[10], out[11] = self.ssrc >> 24, self.ssrc >> 16 & 0xFF, self.ssrc >> 8 & 0xFF, \
                self.ssrc & 0xFF
            source = PyBytes_AS_STRING(payload) if type(payload) is bytes else PyByteArray_AS_STRING(payload)
            memcpy(out + header, source, size)
        else:  # one concatenation of the precompiled header: measured faster than pack_into a bytearray + copy
            packet = RTP_HEADER.pack(V2, self._second_byte, self._sequence, timestamp, self.ssrc) + payload
        self._second_byte &= PT_MASK
        self._sequence = (self._sequence + 1) & 0xFFFF
        self._timestamp = (timestamp + samples) & TS_MASK
        self.last_timestamp = timestamp
        self.packet_count += 1
        self.octet_count += len(payload)
        return packet

    def pack_event(self, payload_type: int, marker: bool, timestamp: int, payload: bytes) -> bytes:
        """A packet of another payload type on this stream (RFC 4733 §2.1: telephone events share the audio's
        SSRC, sequence space and clock): the next sequence number, the timestamp given; the audio's own
        timestamp and marker are left as they are."""
        packet = RTP_HEADER.pack(V2, (MARKER_BIT if marker else 0) | payload_type, self._sequence,
                                 timestamp & TS_MASK, self.ssrc) + payload
        self._sequence = (self._sequence + 1) & 0xFFFF
        self.packet_count += 1
        self.octet_count += len(payload)
        return packet


# --- RTCP --------------------------------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class RtcpPacket:
    packet_type: int  # 200 SR, 201 RR, 202 SDES, 203 BYE, 204 APP, others kept as-is
    count: int  # RC/SC field
    body: bytes  # everything after the 4-byte common header (SSRC first), padding removed


def ntp_from_unix(unix_seconds: float) -> float:
    return unix_seconds + NTP_UNIX_OFFSET


def _sdes_text(text: str) -> bytes:
    """UTF-8, truncated at a character boundary to fit the 8-bit length (RFC 3550 §6.5)."""
    encoded = text.encode()
    if len(encoded) > MAX_SDES_TEXT:
        encoded = encoded[:MAX_SDES_TEXT].decode(errors="ignore").encode()
    return encoded


def _sdes_cname_packet(ssrc: int, cname: str) -> bytes:
    """SDES with one chunk: SSRC, CNAME item, then null octets (at least one) to a 32-bit boundary
    (RFC 3550 §6.5, §6.5.1)."""
    text = _sdes_text(cname)
    item = bytes((SDES_CNAME, len(text))) + text
    chunk_size = 4 + len(item)
    nulls = 4 - chunk_size % 4
    words = (chunk_size + nulls) // 4
    return b"".join((RTCP_SSRC_HEADER.pack(V2 | 1, RTCP_SDES_TYPE, words, ssrc), item, bytes(nulls)))


def build_sender_report(
    ssrc: int, ntp_time: float, rtp_timestamp: int, packet_count: int, octet_count: int, cname: str
) -> bytes:
    """Compound RTCP: SR without report blocks + SDES CNAME (RFC 3550 §6.4.1, §6.5, §6.1).
    `ntp_time` is seconds since 1900-01-01 (see `ntp_from_unix`), sent as 32.32 fixed point."""
    fraction, seconds = math.modf(ntp_time)
    sr = RTCP_SR.pack(
        V2,
        RTCP_SR_TYPE,
        RTCP_SR.size // 4 - 1,
        ssrc,
        int(seconds) & 0xFFFFFFFF,  # wraps at the 2036 NTP era boundary
        int(fraction * 2**32),
        rtp_timestamp & 0xFFFFFFFF,
        packet_count & 0xFFFFFFFF,  # RFC 3550 §6.4.1: the counts wrap
        octet_count & 0xFFFFFFFF,
    )
    return sr + _sdes_cname_packet(ssrc, cname)


def build_bye(ssrc: int, cname: str, reason: str = "") -> bytes:
    """Compound RTCP ending a stream: empty RR + SDES CNAME + BYE with optional reason
    (RFC 3550 §6.6, §6.1: a compound packet starts with SR/RR and carries a CNAME)."""
    rr = build_empty_receiver_report(ssrc)
    text = _sdes_text(reason)
    reason_field = bytes((len(text),)) + text + bytes(-(1 + len(text)) % 4) if text else b""
    bye = RTCP_SSRC_HEADER.pack(V2 | 1, RTCP_BYE_TYPE, 1 + len(reason_field) // 4, ssrc)
    return b"".join((rr, _sdes_cname_packet(ssrc, cname), bye, reason_field))


def build_empty_receiver_report(ssrc: int) -> bytes:
    """An RR without report blocks (RFC 3550 §6.4.2): says nothing, harmless to any RTCP receiver."""
    return RTCP_SSRC_HEADER.pack(V2, RTCP_RR_TYPE, 1, ssrc)


def rtp_with_ssrc(packet: bytes, ssrc: int) -> bytes:
    """An RTP packet as another stream's (a fork's copy): the same but for its SSRC (RFC 3550 §5.1)."""
    return packet[:8] + ssrc.to_bytes(4, "big") + packet[12:]


def rtcp_with_ssrc(compound: bytes, ssrc: int) -> bytes:
    """A compound RTCP packet the gateway built (SR or RR, SDES of one chunk, BYE of one source) as another
    stream's: the SSRC each of its packets starts with replaced (RFC 3550 §6.4.1, §6.5, §6.6)."""
    data = bytearray(compound)
    at = 0
    while at + 8 <= len(data):
        data[at + 4:at + 8] = ssrc.to_bytes(4, "big")
        at += (RTCP_HEADER.unpack_from(data, at)[2] + 1) * 4
    return bytes(data)


def parse_rtcp(data: bytes | memoryview) -> list[RtcpPacket]:
    """Splits a compound RTCP packet, checking version and length fields (RFC 3550 §6.1, A.2)."""
    size = len(data)
    if size == 0:
        raise RtcpError("too_short", "empty RTCP packet")
    packets: list[RtcpPacket] = []
    offset = 0
    while offset < size:
        if offset + RTCP_HEADER.size > size:
            raise RtcpError("too_short", f"{size - offset} trailing bytes at offset {offset}")
        first, packet_type, words = RTCP_HEADER.unpack_from(data, offset)
        if first >> 6 != RTP_VERSION:
            raise RtcpError("bad_version", f"RTCP version {first >> 6} at offset {offset}")
        end = offset + 4 * (words + 1)
        if end > size:
            raise RtcpError("bad_length", f"length of {words} words at offset {offset} exceeds {size} bytes")
        body_end = end
        if first & PADDING_BIT:  # RFC 3550 §6.4.1: last octet counts the padding, itself included
            padding = data[end - 1]
            if padding == 0 or padding > end - offset - RTCP_HEADER.size:
                raise RtcpError("bad_padding", f"padding of {padding} octets at offset {offset}")
            body_end -= padding
        body = bytes(data[offset + RTCP_HEADER.size : body_end])
        packets.append(RtcpPacket(packet_type, first & COUNT_MASK, body))
        offset = end
    return packets


def bye_sources(packets: list[RtcpPacket]) -> set[int] | None:
    """The SSRCs a BYE in this compound packet says goodbye for (RFC 3550 §6.6: SC of them first in its body),
    or None when it holds no BYE."""
    sources: set[int] | None = None
    for packet in packets:
        if packet.packet_type == RTCP_BYE_TYPE:
            count = min(packet.count, len(packet.body) // 4)
            sources = (sources or set()) | {int.from_bytes(packet.body[4 * i:4 * i + 4], "big") for i in range(count)}
    return sources


def build_app(ssrc: int, name: bytes, data: bytes = b"", subtype: int = 0) -> bytes:
    """RTCP APP (RFC 3550 §6.7): a 5-bit subtype, 4 ASCII octets of name, application data in whole 32-bit
    words. Sent alone, not in a compound packet, as RFC 3550 §6.1 permits for application-specific signalling."""
    if len(name) != 4 or len(data) % 4 or not 0 <= subtype <= COUNT_MASK:
        raise ValueError("APP name is 4 octets, data a multiple of 4, subtype 0-31")
    return RTCP_SSRC_HEADER.pack(V2 | subtype, RTCP_APP_TYPE, 2 + len(data) // 4, ssrc) + name + data


def app_messages(packets: list[RtcpPacket]) -> list[tuple[bytes, int, bytes]]:
    """(name, subtype, data) of each APP packet (RFC 3550 §6.7); one too short to hold a name is left out."""
    return [(packet.body[4:8], packet.count, packet.body[8:])
            for packet in packets if packet.packet_type == RTCP_APP_TYPE and len(packet.body) >= 8]


# --- Which stream a call plays ----------------------------------------------------------------------------

MIN_SEQUENTIAL = cython.declare(cython.long, 2)  # RFC 3550 A.1: packets in sequence before a new source is valid
NO_SSRC = cython.declare(cython.longlong, -1)  # no source yet (an SSRC is 32 bits unsigned, so never this)


class SourceLatch:
    """The one RTP stream a call plays, latched on the first valid packet. The address is checked before this
    (symmetric RTP); here the SSRC is: a packet of another SSRC from that address is a new source (RFC 3550
    §8.2), taken only as a restart of the media service: MIN_SEQUENTIAL packets of the new SSRC in sequence,
    with none of the latched one between them (RFC 3550 A.1 probation). Until then its packets are refused."""

    __slots__ = ("_candidate", "_candidate_seq", "_in_sequence", "ssrc")

    def __init__(self) -> None:
        self.ssrc = NO_SSRC
        self._candidate = NO_SSRC
        self._candidate_seq = 0
        self._in_sequence = 0

    def accept(self, ssrc: int, sequence: int) -> bool:
        if ssrc == self.ssrc:
            self._candidate = NO_SSRC  # the latched source is alive: a probation starts over
            return True
        if self.ssrc == NO_SSRC:
            self.ssrc = ssrc
            return True
        if ssrc == self._candidate and sequence == (self._candidate_seq + 1) & 0xFFFF:
            self._in_sequence += 1
        else:
            self._candidate, self._in_sequence = ssrc, 1
        self._candidate_seq = sequence
        if self._in_sequence < MIN_SEQUENTIAL:
            return False
        self.ssrc, self._candidate = ssrc, NO_SSRC
        return True

    def says_goodbye(self, byes: set[int]) -> bool:
        """An RTCP BYE for these SSRCs ends the call's stream: it names the latched one, or none is latched yet
        (a media service that never sent RTP may still hang up)."""
        return self.ssrc == NO_SSRC or self.ssrc in byes


# --- Receive statistics ------------------------------------------------------------------------------


class ReceiveStats:
    """RFC 3550 A.1 sequence tracking (probation skipped: the first packet is the base) and A.8
    interarrival jitter, for one source; everything restarts when the SSRC changes.

    As in RFC 3550 §6.4.1, `received` includes duplicates and reordered packets, so `expected - received`
    can go negative; the `lost` getter clamps it at 0. Duplicates are recognised within SEEN_WINDOW packets;
    further behind (up to MAX_MISORDER), a packet counts as reordered.
    `duplicates` and `reordered` count over the whole call, across SSRC changes: they feed counters that never
    go backwards."""

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_clock_rate",
        "_cycles",
        "_jitter",
        "_last_arrival",
        "_last_timestamp",
        "_max_seq",
        "_seen",
        "_ssrc",
        "duplicates",
        "received",
        "reordered",
    )

    def __init__(self, clock_rate: int) -> None:
        self._clock_rate = clock_rate
        self.duplicates = 0
        self.reordered = 0
        self._start(NO_SSRC, 0)

    def _start(self, ssrc: int, seq: int) -> None:
        self._ssrc = ssrc
        self._jitter = 0.0  # RFC 3550 A.8 J, in timestamp units
        self._init_seq(seq)

    def _init_seq(self, seq: int) -> None:  # RFC 3550 A.1 init_seq()
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = SEQ_MOD + 1  # so seq == bad_seq is false
        self._cycles = 0
        self.received = 0
        self._seen = 1  # bit i: max_seq - i received
        self._last_arrival = -1.0  # none yet: no transit time to compare with (arrival times are >= 0)
        self._last_timestamp = 0

    @property
    def expected(self) -> int:
        if self._ssrc == NO_SSRC:
            return 0
        return self._cycles + self._max_seq - self._base_seq + 1

    @property
    def lost(self) -> int:
        return max(0, self.expected - self.received)

    @property
    def jitter_seconds(self) -> float:
        return self._jitter / self._clock_rate

    def update(self, packet: RtpPacket, arrival: float) -> None:
        seq = packet.sequence
        if packet.ssrc != self._ssrc:
            self._start(packet.ssrc, seq)
        else:
            # RFC 3550 A.1 update_seq()
            udelta = (seq - self._max_seq) & 0xFFFF
            if udelta == 0:
                self.duplicates += 1
            elif udelta < MAX_DROPOUT:  # in order, with permissible gap
                if seq < self._max_seq:
                    self._cycles += SEQ_MOD
                self._max_seq = seq
                self._seen = ((self._seen << udelta) | 1) & _SEEN_MASK if udelta < SEEN_WINDOW else 1
            elif udelta <= SEQ_MOD - MAX_MISORDER:  # very large jump
                if seq != self._bad_seq:
                    self._bad_seq = (seq + 1) & 0xFFFF
                    return
                # Two sequential packets: the sender restarted without telling us, re-sync.
                self._init_seq(seq)
            else:  # duplicate or reordered packet, behind max_seq by less than MAX_MISORDER
                behind = SEQ_MOD - udelta
                bit = cython.cast(cython.ulonglong, 1) << behind if behind < SEEN_WINDOW else 0
                if self._seen & bit:
                    self.duplicates += 1
                else:
                    self._seen |= bit
                    self.reordered += 1
        self.received += 1
        # RFC 3550 A.8: D(i-1,i) = (Rj - Ri) - (Sj - Si) in timestamp units; J += (|D| - J) / 16.
        if self._last_arrival >= 0:
            transit_delta = (arrival - self._last_arrival) * self._clock_rate - ts_distance(
                packet.timestamp, self._last_timestamp
            )
            self._jitter += (abs(transit_delta) - self._jitter) / 16
        self._last_arrival = arrival
        self._last_timestamp = packet.timestamp


# --- Jitter buffer -----------------------------------------------------------------------------------


class PushResult(enum.Enum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    LATE = "late"
    RESET = "reset"


class _Buffered(NamedTuple):
    timestamp: int
    payload: bytes
    samples: int
    arrival: float


class JitterBuffer:
    """Reorders RTP by sequence number and declares loss after a bounded wait. Sans-IO: `now` is passed in
    and must not go backwards.

    push() stores a packet: one before the playout point is LATE, one already buffered is a DUPLICATE.
    A new SSRC, a sequence jump beyond MAX_DROPOUT or a timestamp jump beyond `max_gap_seconds` (both
    measured from the playout point, either direction) drops whatever is buffered and makes the packet the
    new base (RESET): nothing is concealed across a reset.

    pop(now) returns the items ready now, in order: (payload, samples) for a packet, (None, samples) for a
    declared loss. The next expected packet is released as soon as it is present. A gap is declared lost
    once the oldest buffered packet has waited `max_wait` seconds, or the buffer holds more than `capacity`
    packets; its duration is the timestamp distance to the first present packet, clamped to
    [0, max_gap_seconds]."""

    __slots__ = (
        "_expected_timestamp",
        "_max_gap",
        "_next_seq",
        "_packets",
        "_ssrc",
        "capacity",
        "duplicates",
        "late",
        "lost_packets",
        "max_wait",
        "resets",
    )

    def __init__(
        self, clock_rate: int, max_wait: float = 0.06, capacity: int = 50, max_gap_seconds: float = 1.0
    ) -> None:
        self.max_wait = max_wait
        self.capacity = capacity
        self._max_gap = round(max_gap_seconds * clock_rate)  # in timestamp units
        self._ssrc = NO_SSRC
        self._next_seq = 0  # playout point: the sequence number to release next
        self._expected_timestamp = 0  # its timestamp: last released timestamp + its samples
        self._packets: dict[int, _Buffered] = {}  # by sequence; insertion order = arrival order
        self.late = 0
        self.duplicates = 0
        self.lost_packets = 0
        self.resets = 0

    def __len__(self) -> int:
        return len(self._packets)

    def push(self, packet: RtpPacket, samples: int, now: float) -> PushResult:
        seq = packet.sequence
        result = PushResult.ACCEPTED
        if self._ssrc == NO_SSRC:
            self._ssrc = packet.ssrc
            self._rebase(packet)
        else:
            distance = seq_distance(seq, self._next_seq)
            if (
                packet.ssrc != self._ssrc
                or abs(distance) > MAX_DROPOUT
                or abs(ts_distance(packet.timestamp, self._expected_timestamp)) > self._max_gap
            ):
                self._ssrc = packet.ssrc
                self._rebase(packet)
                self.resets += 1
                result = PushResult.RESET
            elif distance < 0:
                self.late += 1
                return PushResult.LATE
            elif seq in self._packets:
                self.duplicates += 1
                return PushResult.DUPLICATE
        self._packets[seq] = _Buffered(packet.timestamp, packet.payload, samples, now)
        return result

    def take_in_order(self, packet: RtpPacket, samples: int) -> bool:
        """The common case, without buffering: nothing is held and this is the next packet of the current
        stream, so it plays at once (True). Anything else (False) goes through push() and pop()."""
        if (
            self._packets
            or packet.sequence != self._next_seq
            or packet.ssrc != self._ssrc
            or abs(ts_distance(packet.timestamp, self._expected_timestamp)) > self._max_gap
        ):
            return False
        self._next_seq = (self._next_seq + 1) & 0xFFFF
        self._expected_timestamp = (packet.timestamp + samples) & TS_MASK
        return True

    def _rebase(self, packet: RtpPacket) -> None:
        self._packets.clear()
        self._next_seq = packet.sequence
        self._expected_timestamp = packet.timestamp

    def _first_buffered(self) -> int:
        """The buffered sequence number nearest after the playout point."""
        first, nearest = self._next_seq, SEQ_MOD
        for seq in self._packets:
            distance = seq_distance(seq, self._next_seq)
            if distance < nearest:
                first, nearest = seq, distance
        return first

    def pop(self, now: float) -> list[tuple[int, bytes | None, int]]:
        """What is ready now, in order: (timestamp, payload, samples) for a packet, (timestamp, None, samples)
        for a gap declared lost."""
        ready: list[tuple[int, bytes | None, int]] = []
        packets = self._packets
        while packets:
            buffered = packets.pop(self._next_seq, None)
            if buffered is None:
                oldest = next(iter(packets.values()))
                if now - oldest.arrival < self.max_wait and len(packets) <= self.capacity:
                    break
                # Declare the gap up to the first present packet lost.
                first_seq = self._first_buffered()
                gap = ts_distance(packets[first_seq].timestamp, self._expected_timestamp)
                ready.append((self._expected_timestamp, None, min(max(gap, 0), self._max_gap)))
                self.lost_packets += seq_distance(first_seq, self._next_seq)
                self._next_seq = first_seq
                continue
            ready.append((buffered.timestamp, buffered.payload, buffered.samples))
            self._next_seq = (self._next_seq + 1) & 0xFFFF
            self._expected_timestamp = (buffered.timestamp + buffered.samples) & TS_MASK
        return ready

    def drop_through(self, timestamp: int) -> None:
        """Barge-in: what is held with a timestamp at or before `timestamp` is never to be played. The playout
        point moves past it, so nothing of it is waited for or concealed: a later packet held plays next."""
        packets = self._packets
        dropped = [seq for seq, held in packets.items() if ts_distance(held.timestamp, timestamp) <= 0]
        if dropped:
            last, furthest = dropped[0], -SEQ_MOD
            for seq in dropped:  # the one furthest after the playout point
                if seq_distance(seq, self._next_seq) > furthest:
                    last, furthest = seq, seq_distance(seq, self._next_seq)
            held = packets[last]
            self._next_seq = (last + 1) & 0xFFFF
            self._expected_timestamp = (held.timestamp + held.samples) & TS_MASK
            for seq in dropped:
                del packets[seq]
        if packets and (dropped or ts_distance(self._expected_timestamp, timestamp) <= 0):
            first = self._first_buffered()  # the audio between is the one cleared, not a loss
            self._next_seq, self._expected_timestamp = first, packets[first].timestamp

    def pass_over(self, packet: RtpPacket, samples: int) -> None:
        """A packet of the stream that is not to be played (at or before a barge-in's point): the playout point
        moves past it when nothing is held, so what follows it plays without waiting for it."""
        if (
            not self._packets
            and packet.ssrc == self._ssrc
            and seq_distance(packet.sequence, self._next_seq) >= 0
        ):
            self._next_seq = (packet.sequence + 1) & 0xFFFF
            self._expected_timestamp = (packet.timestamp + samples) & TS_MASK
