"""The tests' own helpers: a flaky helper costs a whole CI run."""

import socket

import pytest

from gateway.core.rtp import RtcpError, parse_rtcp
from tests.ports import GATEWAY_RTP, free_port, free_port_pair
from tests.rtcp import sdes_cname


def test_free_ports_are_never_handed_out_twice_and_stay_clear_of_the_gateways_rtp_range():
    ports = [free_port() for _ in range(100)] + [free_port_pair() for _ in range(100)]
    handed_out = ports + [port + 1 for port in ports]
    assert len(set(handed_out)) == len(handed_out)
    assert not any(port in GATEWAY_RTP for port in handed_out)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # and free when handed out


def test_sdes_cname_malformed():
    truncated_item = bytes.fromhex("81 ca 0002 00000001 01 09 6162")
    with pytest.raises(RtcpError) as error:
        sdes_cname(parse_rtcp(truncated_item))
    assert error.value.reason == "bad_sdes"
    unterminated = bytes.fromhex("81 ca 0002 00000001 02 02 6162")  # NAME item, no null octet
    with pytest.raises(RtcpError):
        sdes_cname(parse_rtcp(unterminated))


def test_sdes_cname_skips_other_items_and_chunks():
    chunk1 = bytes.fromhex("00000001 02 01 61 00")  # NAME only
    chunk2 = bytes.fromhex("00000002 02 01 62 01 02 6364 00")  # NAME, then CNAME "cd"
    sdes = bytes.fromhex("82 ca 0005") + chunk1 + chunk2
    rr = bytes.fromhex("80 c9 0001 00000001")
    assert sdes_cname(parse_rtcp(rr + sdes)) == "cd"
    assert sdes_cname(parse_rtcp(rr)) is None


def test_run_returns_what_the_coroutine_returns_and_bounds_one_that_hangs():
    import asyncio

    from tests.aio import run

    async def answer() -> int:
        return 42

    assert run(answer()) == 42
    with pytest.raises(TimeoutError):
        run(asyncio.Event().wait(), deadline=0.05)  # never set
