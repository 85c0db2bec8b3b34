"""The host's limits that bound how many calls the gateway can carry, read (and the open-files one raised) at
start and reported by `gateway check`: open files, the RTP port range, UDP socket buffers, the listen backlog.

Each call holds three descriptors (its TCP connection, an RTP and an RTCP socket) and one port pair of
`rtp_ports`, which every worker of the machine shares. The kernel cuts socket buffers and the listen backlog
to its sysctls without an error, so the effective values are read back and compared with what was asked.
"""

from __future__ import annotations

import os
import resource
import socket
from dataclasses import asdict, dataclass, field
from typing import Any

from gateway.shared.config import Config

DESCRIPTORS_PER_CALL = 3  # the websocket's TCP connection, the RTP socket, the RTCP socket
# Descriptors a worker keeps free beyond its calls: connections accepted and not yet routed, the /proc reads of
# the housekeeping timer, metrics files opened late. A worker declines new upgrades (503 no_fds) past this.
DESCRIPTOR_HEADROOM = 32
# What a worker holds at idle (stdio, its event loop, the listener, metrics files, the embedded echo route):
# 30 measured on Linux with the echo route. Workers measure their own at start; `gateway check` cannot, and
# uses this figure.
WORKER_IDLE_DESCRIPTORS = 32
# Requested of listen(2); the kernel cuts it to net.core.somaxconn (4096 by default since Linux 5.4).
LISTEN_BACKLOG = 4096
# Connections of the pool that posts call events (call_events_url): aiohttp's default limit, made explicit as the
# descriptors a worker sets aside for them.
CALL_EVENT_CONNECTIONS = 100
ALLOCATION_CONNECTIONS = 100  # the same, of the pool that asks allocate_url
SYSCTL_ROOT = "/proc/sys/"
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class OpenFiles:
    soft: int
    hard: int
    soft_before: int  # before raise_open_files_limit(); the same as soft if it was not raised


@dataclass(frozen=True)
class HostWarning:
    limit: str
    message: str
    fix: str


@dataclass
class HostLimits:
    """What `gateway check` prints under `host_limits`, and what the supervisor warns about at start."""

    open_files: dict[str, int]
    rtp_ports: dict[str, Any]
    udp_receive_buffer: dict[str, int | None]
    udp_send_buffer: dict[str, int | None]
    listen_backlog: dict[str, int | None]
    capacity: dict[str, Any]
    warnings: list[HostWarning] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        capacity = self.capacity
        line = (f"{capacity['calls']} calls: {capacity['workers']} workers x {capacity['calls_per_worker']}, "
                f"bound by {capacity['bound_by']}")
        if self.warnings:
            line += "; to fix: " + ", ".join(warning.limit for warning in self.warnings)
        return line

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["verdict"] = self.verdict
        return data


def open_files_limit() -> tuple[int, int]:
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def raise_open_files_limit() -> OpenFiles:
    """Raise the soft open-files limit to the hard one, as Go's runtime and nginx's worker_rlimit_nofile do: the
    low soft limit (1024 under systemd, often 256 elsewhere) protects programs that use select(2), which the
    gateway does not for any descriptor a call opens. Children inherit the raised limit at fork."""
    soft, hard = open_files_limit()
    target = _raised(soft, hard)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (OSError, ValueError):
            return OpenFiles(soft, hard, soft)
    return OpenFiles(target, hard, soft)


def _raised(soft: int, hard: int) -> int:
    """The soft limit raise_open_files_limit() sets: the hard one (Linux caps it at fs.nr_open)."""
    if hard == resource.RLIM_INFINITY:
        return max(soft, read_sysctl("fs/nr_open") or soft)
    return max(soft, hard)


def resident_memory_bytes() -> int:
    """Resident memory of this process (proc(5): /proc/self/statm, its second field, in pages); 0 without /proc."""
    try:
        with open("/proc/self/statm") as file:
            return int(file.read().split()[1]) * PAGE_SIZE
    except (OSError, ValueError, IndexError):
        return 0


def descriptors_in_use() -> int:
    """Open descriptors of this process (the listing's own descriptor not counted)."""
    for path in ("/proc/self/fd", "/dev/fd"):
        try:
            return len(os.listdir(path)) - 1
        except OSError:
            continue
    return WORKER_IDLE_DESCRIPTORS


def worker_reserve(config: Config, idle: int) -> int:
    """Descriptors a worker holds besides its calls: what it holds at idle, the headroom, and the connections of
    call events and of the allocation webhook (aiohttp's pools) when they are on."""
    return (idle + DESCRIPTOR_HEADROOM + (CALL_EVENT_CONNECTIONS if config.call_events_url else 0)
            + (ALLOCATION_CONNECTIONS if config.allocate_url else 0))


def calls_for_descriptors(limit: int, reserve: int) -> int:
    """Calls a worker can hold under an open-files limit with `reserve` descriptors set aside."""
    return max(0, (limit - reserve) // DESCRIPTORS_PER_CALL)


def capacity_bounds(config: Config, calls_by_descriptors: int, workers: int) -> dict[str, int]:
    """What bounds the calls one worker can take: max_calls if set, its descriptors, its share of the port pairs
    (max_calls first: it wins a tie, being the bound the operator chose)."""
    bounds = {"max_calls": config.max_calls} if config.max_calls else {}
    return bounds | {"open files": calls_by_descriptors, "RTP ports": config.rtp_port_pairs // max(workers, 1)}


def worker_capacity(config: Config, calls_by_descriptors: int, workers: int) -> int:
    """Calls one worker can take: the lowest of its bounds."""
    return min(capacity_bounds(config, calls_by_descriptors, workers).values())


def read_sysctl(name: str) -> int | None:
    """An integer sysctl such as `net/core/rmem_max`; None where it cannot be read (not Linux, no /proc)."""
    try:
        with open(SYSCTL_ROOT + name) as file:
            return int(file.read().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def granted_receive_buffer(requested: int) -> int:
    """The SO_RCVBUF the kernel grants a UDP socket that asks for `requested` bytes (it cuts the request to
    net.core.rmem_max, and Linux reports twice the value it keeps for bookkeeping: socket(7))."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, requested)
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF) // 2


def default_send_buffer() -> int:
    """The SO_SNDBUF a UDP socket gets (the gateway asks for none: net.core.wmem_default, reported as it is)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)


def read_host_limits(config: Config, open_files: tuple[int, int] | None = None) -> HostLimits:
    """The limits that bound this configuration's capacity on this host. `open_files` is the (soft, hard)
    limit the gateway runs with; by default the hard one, to which the gateway raises the soft one at start."""
    if open_files is None:
        soft, hard = open_files_limit()
        open_files = (_raised(soft, hard), hard)
    soft, hard = open_files
    workers = config.worker_count
    reserve = worker_reserve(config, WORKER_IDLE_DESCRIPTORS)
    by_descriptors = calls_for_descriptors(soft, reserve)
    pairs = config.rtp_port_pairs
    bounds = capacity_bounds(config, by_descriptors, workers)
    per_worker = min(bounds.values())
    limits = HostLimits(
        open_files={"soft_at_start": soft, "hard": hard, "descriptors_per_call": DESCRIPTORS_PER_CALL,
                    "reserved_per_worker": reserve, "calls_per_worker": by_descriptors},
        rtp_ports={"range": config.rtp_ports, "pairs": pairs,
                   "max_calls_x_workers": config.max_calls * workers if config.max_calls else None},
        udp_receive_buffer={"requested": config.udp_rcvbuf_bytes,
                            "granted": granted_receive_buffer(config.udp_rcvbuf_bytes) if config.udp_rcvbuf_bytes
                            else None,
                            "net.core.rmem_max": read_sysctl("net/core/rmem_max")},
        udp_send_buffer={"default": default_send_buffer(), "net.core.wmem_max": read_sysctl("net/core/wmem_max")},
        listen_backlog={"requested": LISTEN_BACKLOG, "net.core.somaxconn": read_sysctl("net/core/somaxconn")},
        capacity={"workers": workers, "calls_per_worker": per_worker, "calls": per_worker * workers,
                  "bound_by": min(bounds, key=lambda name: bounds[name])},
    )
    limits.warnings = _warnings(config, limits)
    return limits


def _warnings(config: Config, limits: HostLimits) -> list[HostWarning]:
    found = []
    receive = limits.udp_receive_buffer
    if receive["granted"] is not None and receive["granted"] < config.udp_rcvbuf_bytes:
        found.append(HostWarning(
            "udp_receive_buffer",
            f"udp_rcvbuf_bytes asks for {config.udp_rcvbuf_bytes} bytes, the kernel grants {receive['granted']} "
            f"(net.core.rmem_max): bursts beyond it are dropped silently",
            f"sysctl -w net.core.rmem_max={config.udp_rcvbuf_bytes}"))
    somaxconn = limits.listen_backlog["net.core.somaxconn"]
    if somaxconn is not None and somaxconn < LISTEN_BACKLOG:
        found.append(HostWarning(
            "listen_backlog",
            f"net.core.somaxconn ({somaxconn}) cuts the listen backlog of {LISTEN_BACKLOG}: in a burst of call "
            f"setups, connections beyond {somaxconn} waiting to be accepted are refused",
            f"sysctl -w net.core.somaxconn={LISTEN_BACKLOG}"))
    needed = limits.rtp_ports["max_calls_x_workers"]
    if needed is not None and needed > config.rtp_port_pairs:
        found.append(HostWarning(
            "rtp_ports",
            f"max_calls x workers = {needed} calls, but rtp_ports {config.rtp_ports} holds "
            f"{config.rtp_port_pairs} port pairs: calls beyond it are declined (503 no_rtp_port)",
            f"rtp_ports = a range of at least {2 * needed} ports"))
    files = limits.open_files
    if config.max_calls and files["calls_per_worker"] < config.max_calls:
        found.append(HostWarning(
            "open_files",
            f"max_calls is {config.max_calls} per worker, but {files['soft_at_start']} open files allow "
            f"{files['calls_per_worker']}: calls beyond it are declined (503 no_fds)",
            f"LimitNOFILE={config.max_calls * DESCRIPTORS_PER_CALL + files['reserved_per_worker']} "
            "(systemd) or ulimit -n"))
    return found
