"""A call's forks: copies of its upstream RTP and RTCP for a route's `fork=HOST:PORT` targets (a recorder beside a
bot). Each fork is a stream of its own, from its own port pair, with its own SSRC (RFC 3550 §5.1, §8.2), in the
route's codec and rate. Nothing a fork sends is read: only the route's target is heard. A fork that fails (a send
refused, no port to bind) costs a counted drop and never the call.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterable

from gateway.core.pool import PoolTarget
from gateway.core.rtp import RTCP_APP_TYPE, random_stream_origin, rtcp_with_ssrc, rtp_with_ssrc
from gateway.dataplane.ports import NoPortAvailable, bind_udp_pair
from gateway.shared.config import Config
from gateway.shared.logs import log_event

log = logging.getLogger("gateway.call")

FORK_RCVBUF = 4096  # what a fork sends back is never read: the kernel drops it once this is full


class Fork:
    __slots__ = ("rtcp", "rtp", "ssrc", "target")

    def __init__(self, target: PoolTarget, rtp: socket.socket, rtcp: socket.socket) -> None:
        self.target = target
        self.rtp, self.rtcp = rtp, rtcp
        self.ssrc = random_stream_origin()[0]
        host, port = target.address
        rtp.connect((host, port))
        rtcp.connect((host, port + 1))


class Forks:
    def __init__(self, forks: list[Fork]) -> None:
        self.forks = forks

    @classmethod
    def bind(cls, config: Config, family: socket.AddressFamily, targets: Iterable[PoolTarget],
             route: str) -> Forks | None:
        """A port pair for each fork of a route; a fork that finds none is left out (logged), not the call."""
        forks = []
        for target in targets:
            try:
                rtp, rtcp = bind_udp_pair(family, config.rtp_host, config.rtp_port_range, FORK_RCVBUF)
            except (NoPortAvailable, OSError) as exc:
                log_event(log, logging.WARNING, "fork.unavailable", route=route, fork=target.name, error=str(exc))
                continue
            forks.append(Fork(target, rtp, rtcp))
        return cls(forks) if forks else None

    def send_rtp(self, packet: bytes) -> int:
        """The packet to every fork, as its own stream; how many forks it did not reach."""
        return sum(not _sent(fork.rtp, rtp_with_ssrc(packet, fork.ssrc)) for fork in self.forks)

    def send_rtcp(self, packet: bytes) -> int:
        """The call's reports and BYE, as each fork's own (its APP answers, MARK, are for the route alone); how
        many forks it did not reach."""
        if packet[1] == RTCP_APP_TYPE:
            return 0
        return sum(not _sent(fork.rtcp, rtcp_with_ssrc(packet, fork.ssrc)) for fork in self.forks)

    def restart(self) -> None:
        """The call's RTP starts over (a failover: new sequence numbers and timestamps): new streams here too."""
        for fork in self.forks:
            fork.ssrc = random_stream_origin()[0]

    def close(self) -> None:
        for fork in self.forks:
            fork.rtp.close()
            fork.rtcp.close()


def _sent(sock: socket.socket, packet: bytes) -> bool:
    try:
        sock.send(packet)
    except OSError:
        return False  # ICMP unreachable, buffer full: the fork misses it, the call does not
    return True
