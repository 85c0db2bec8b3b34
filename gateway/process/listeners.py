"""The listening sockets, bound once by the supervisor before it forks: the websocket listener(s) the workers
accept on, the metrics listener and the callback listener the control process serves. Keys that name them take
effect only on a restart (BOUND_AT_START)."""

from __future__ import annotations

import socket
from dataclasses import dataclass

from gateway.shared import host_limits
from gateway.shared.config import Config

BOUND_AT_START = ("listen", "metrics_listen", "callback_listen", "accept")


@dataclass
class Listeners:
    workers: list[socket.socket]  # accept=shared: one for all workers; reuseport: one per worker, each its own queue
    metrics: socket.socket
    callback: socket.socket

    @classmethod
    def bind(cls, config: Config, worker_count: int) -> Listeners:
        host, port = config.listen_address
        if config.accept == "shared":
            workers = [_listen_socket("listen", host, port, reuse_port=False)]
        else:
            first = _listen_socket("listen", host, port, reuse_port=True)
            port = first.getsockname()[1]  # an ephemeral port (0) must be the same for every listener
            workers = [first] + [_listen_socket("listen", host, port, reuse_port=True)
                                 for _ in range(worker_count - 1)]
        return cls(workers, _listen_socket("metrics_listen", *config.metrics_address, reuse_port=False),
                   _listen_socket("callback_listen", *config.callback_address, reuse_port=False))

    def keep_only(self, *served: socket.socket) -> None:
        """In a child: close the listening sockets it inherited but does not serve. A port is free again only
        once every process holding its socket has closed it, so a worker that outlives a killed supervisor must
        hold its own listener alone (and closes it at once: gateway.dataplane.worker)."""
        for sock in (*self.workers, self.metrics, self.callback):
            if sock not in served:
                sock.close()


def _listen_socket(key: str, host: str, port: int, reuse_port: bool) -> socket.socket:
    """A listening socket for the config key `key`; an OSError that names the key and address if it fails."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host or "0.0.0.0", port))
        sock.listen(host_limits.LISTEN_BACKLOG)  # the kernel cuts it to net.core.somaxconn: checked at start
    except OSError as exc:
        sock.close()
        address = f"[{host}]" if ":" in host else host or "0.0.0.0"
        raise OSError(exc.errno, f"{key} {address}:{port}: {exc.strerror}") from None
    sock.setblocking(False)
    return sock
