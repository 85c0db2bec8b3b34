import socket

import pytest

from gateway.dataplane.ports import NoPortAvailable, bind_udp_pair


def test_pairs_are_even_rtp_and_the_next_port_for_rtcp():
    rtp, rtcp = bind_udp_pair(socket.AF_INET, "127.0.0.1", (20000, 29999))
    with rtp, rtcp:
        port = rtp.getsockname()[1]
        assert port % 2 == 0 and 20000 <= port < 29999
        assert rtcp.getsockname()[1] == port + 1
        assert not rtp.getblocking()


def test_a_full_range_says_so():
    taken = bind_udp_pair(socket.AF_INET, "127.0.0.1", (31000, 31002))  # the only pair in the range
    try:
        with pytest.raises(NoPortAvailable, match="no free RTP port pair"):
            bind_udp_pair(socket.AF_INET, "127.0.0.1", (31000, 31002))
    finally:
        for sock in taken:
            sock.close()


def test_a_range_without_a_pair():
    with pytest.raises(NoPortAvailable, match="no even/odd port pair"):
        bind_udp_pair(socket.AF_INET, "127.0.0.1", (31001, 31002))
