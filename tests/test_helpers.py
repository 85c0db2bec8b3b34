"""The tests' own helpers: a flaky helper costs a whole CI run."""

import socket

from tests.ports import GATEWAY_RTP, free_port, free_port_pair


def test_free_ports_are_never_handed_out_twice_and_stay_clear_of_the_gateways_rtp_range():
    ports = [free_port() for _ in range(100)] + [free_port_pair() for _ in range(100)]
    handed_out = ports + [port + 1 for port in ports]
    assert len(set(handed_out)) == len(handed_out)
    assert not any(port in GATEWAY_RTP for port in handed_out)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", ports[0]))  # and free when handed out
