"""RTCP from the tests' side of the wire (RFC 3550): a strict reading of the CNAME the gateway sends, which the
gateway itself never reads."""

from __future__ import annotations

from gateway.core.rtp import RTCP_SDES_TYPE, SDES_CNAME, RtcpError, RtcpPacket

SDES_END = 0


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
