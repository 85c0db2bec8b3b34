"""RTCP from the tests' side of the wire (RFC 3550): the APP packet a media service sends to the gateway, and a
strict reading of the CNAME the gateway sends. The gateway itself never builds the one nor reads the other."""

from __future__ import annotations

from gateway.core.rtp import RTCP_APP_TYPE, RTCP_SDES_TYPE, RTCP_SSRC_HEADER, SDES_CNAME, V2, RtcpError, RtcpPacket

SDES_END = 0


def build_app(ssrc: int, name: bytes, data: bytes = b"") -> bytes:
    """RTCP APP (RFC 3550 §6.7): 4 ASCII octets of name, application data in whole 32-bit words.
    Sent alone, not in a compound packet, as RFC 3550 §6.1 permits for application-specific signalling."""
    if len(name) != 4 or len(data) % 4:
        raise ValueError("APP name is 4 octets and data a multiple of 4")
    return RTCP_SSRC_HEADER.pack(V2, RTCP_APP_TYPE, 2 + len(data) // 4, ssrc) + name + data


def sdes_cname(packets: list[RtcpPacket]) -> str | None:
    """The first CNAME item of the first SDES packet that has one (RFC 3550 §6.5.1); RtcpError("bad_sdes") for
    a chunk that is truncated or not null-terminated."""
    for packet in packets:
        if packet.packet_type != RTCP_SDES_TYPE:
            continue
        body = packet.body
        offset = 0
        for _ in range(packet.count):
            offset += 4  # chunk SSRC/CSRC
            while True:
                if offset >= len(body):
                    raise RtcpError("bad_sdes", "SDES chunk not terminated")
                item_type = body[offset]
                if item_type == SDES_END:  # null octets pad the chunk to a 32-bit boundary
                    offset = (offset + 4) & ~3
                    break
                if offset + 2 > len(body) or offset + 2 + body[offset + 1] > len(body):
                    raise RtcpError("bad_sdes", f"SDES item {item_type} truncated")
                text = body[offset + 2 : offset + 2 + body[offset + 1]]
                if item_type == SDES_CNAME:
                    return text.decode(errors="replace")
                offset += 2 + len(text)
    return None
