"""Just enough RTP/RTCP (RFC 3550) for the simulators and the naive baseline, written independently of the
gateway's own `gateway.rtp` so that a harness measuring the gateway does not share its bugs."""

from __future__ import annotations

import struct
import time
from typing import NamedTuple

HEADER = struct.Struct("!BBHII")  # RFC 3550 §5.1: V|P|X|CC, M|PT, sequence, timestamp, SSRC
HEADER_SIZE = HEADER.size
V2 = 0x80
MARKER_BIT = 0x80
RTCP_HEADER = struct.Struct("!BBH")
RTCP_SR = struct.Struct("!BBHIIIIII")
RTCP_SSRC = struct.Struct("!BBHI")
SR, RR, SDES, BYE = 200, 201, 202, 203
CNAME = 1
NTP_UNIX_OFFSET = 2208988800


class RtpHeader(NamedTuple):
    payload_type: int
    marker: bool
    sequence: int
    timestamp: int
    ssrc: int
    payload_offset: int


class RtcpInfo(NamedTuple):
    ssrc: int | None
    cname: str | None
    bye: bool


def parse_header(data: bytes | memoryview) -> RtpHeader | None:
    """The fixed header and where the payload starts; None when it is not RTP version 2."""
    if len(data) < HEADER_SIZE:
        return None
    first, second, sequence, timestamp, ssrc = HEADER.unpack_from(data)
    if first >> 6 != 2:
        return None
    offset = HEADER_SIZE + 4 * (first & 0x0F)  # CSRC list
    if first & 0x10 and len(data) >= offset + 4:  # RFC 3550 §5.3.1 header extension
        offset += 4 + 4 * struct.unpack_from("!H", data, offset + 2)[0]
    return RtpHeader(second & 0x7F, bool(second & MARKER_BIT), sequence, timestamp, ssrc, offset)


def pack_header(payload_type: int, marker: bool, sequence: int, timestamp: int, ssrc: int) -> bytes:
    return HEADER.pack(V2, payload_type | (MARKER_BIT if marker else 0), sequence & 0xFFFF,
                       timestamp & 0xFFFFFFFF, ssrc)


def _sdes(ssrc: int, cname: str) -> bytes:
    text = cname.encode()[:255]
    item = bytes((CNAME, len(text))) + text
    nulls = 4 - (4 + len(item)) % 4  # RFC 3550 §6.5: at least one null octet, then to a 32-bit boundary
    return RTCP_SSRC.pack(V2 | 1, SDES, (4 + len(item) + nulls) // 4, ssrc) + item + bytes(nulls)


def sender_report(ssrc: int, rtp_timestamp: int, packets: int, octets: int, cname: str) -> bytes:
    """Compound SR (no report blocks) + SDES CNAME (RFC 3550 §6.4.1, §6.5)."""
    ntp = time.time() + NTP_UNIX_OFFSET
    seconds = int(ntp)
    fraction = int((ntp - seconds) * 2**32)
    sr = RTCP_SR.pack(V2, SR, 6, ssrc, seconds & 0xFFFFFFFF, fraction, rtp_timestamp & 0xFFFFFFFF,
                      packets & 0xFFFFFFFF, octets & 0xFFFFFFFF)
    return sr + _sdes(ssrc, cname)


def bye(ssrc: int, cname: str) -> bytes:
    """Compound empty RR + SDES CNAME + BYE (RFC 3550 §6.6: a compound packet starts with SR or RR)."""
    return RTCP_SSRC.pack(V2, RR, 1, ssrc) + _sdes(ssrc, cname) + RTCP_SSRC.pack(V2 | 1, BYE, 1, ssrc)


def parse_rtcp(data: bytes) -> RtcpInfo:
    """The sender SSRC, the first CNAME and whether a BYE is in a compound packet; tolerant of junk."""
    ssrc: int | None = None
    cname: str | None = None
    saw_bye = False
    offset = 0
    while offset + RTCP_HEADER.size <= len(data):
        first, packet_type, words = RTCP_HEADER.unpack_from(data, offset)
        end = offset + 4 * (words + 1)
        if first >> 6 != 2 or end > len(data):
            break
        if packet_type in (SR, RR) and ssrc is None and end >= offset + 8:
            ssrc = struct.unpack_from("!I", data, offset + 4)[0]
        elif packet_type == SDES and cname is None:
            cname = _first_cname(data[offset + 8:end])
        elif packet_type == BYE:
            saw_bye = True
        offset = end
    return RtcpInfo(ssrc, cname, saw_bye)


def _first_cname(items: bytes) -> str | None:
    """CNAME of the first SDES chunk (its SSRC already skipped)."""
    offset = 0
    while offset + 2 <= len(items) and items[offset] != 0:
        kind, length = items[offset], items[offset + 1]
        if kind == CNAME:
            return items[offset + 2:offset + 2 + length].decode(errors="replace")
        offset += 2 + length
    return None
