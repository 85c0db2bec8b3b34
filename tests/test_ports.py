import socket

import pytest

from gateway.dataplane.ports import NoPortAvailable, bind_udp_pair, pairs_taken


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


def test_pairs_taken_counts_a_pair_once_whichever_of_its_ports_is_bound():
    assert pairs_taken({20000, 20001, 20003, 20004, 19999, 20010}, (20000, 20009)) == 3  # 20000, 20002, 20004
    assert pairs_taken(set(), (20000, 20009)) == 0


def test_the_last_pair_of_a_range_ending_on_an_odd_port_is_used():
    rtp, rtcp = bind_udp_pair(socket.AF_INET, "127.0.0.1", (31010, 31011))
    with rtp, rtcp:
        assert (rtp.getsockname()[1], rtcp.getsockname()[1]) == (31010, 31011)
