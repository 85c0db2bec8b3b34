"""Route targets' addresses: an IP address as it is, a DNS name resolved. At load (and so at each SIGHUP's
reload), at a worker's start and on route_resolve_interval (in the loop's executor): never on the data path.
Apart from gateway.shared.config, which the sans-IO core imports and which must not reach for sockets."""

from __future__ import annotations

import socket
from collections.abc import Mapping
from typing import Any

from gateway.shared.config import Config, ConfigError, Target, load_config


def rtp_family(config: Config) -> socket.AddressFamily:
    """The family of the per-call RTP sockets, which the routes' addresses must be of."""
    return socket.AF_INET6 if ":" in config.rtp_host else socket.AF_INET


def resolve(target: Target, family: socket.AddressFamily) -> tuple[str, int]:
    """The first address of `family` the target's host resolves to (socket.gaierror, an OSError, if none)."""
    return address_of(socket.getaddrinfo(target.host, target.port, family, socket.SOCK_DGRAM), target.port)


def address_of(infos: list[tuple], port: int) -> tuple[str, int]:
    """The (IP, port) of getaddrinfo's first answer."""
    return infos[0][4][0], port


def load_resolved_config(path: str | None = None, overrides: Mapping[str, Any] | None = None) -> Config:
    """load_config, then every route's DNS names resolved: a name that does not is a config error naming the
    route (exit 2 at start; a failed reload on SIGHUP), not a call that fails later."""
    config = load_config(path, overrides=overrides)
    family = rtp_family(config)
    for name, route in config.routes.items():
        for target in route.targets + route.forks:
            try:
                resolve(target, family)
            except OSError as exc:
                raise ConfigError(f"routes.{name}: {target.host} does not resolve to an "
                                  f"{'IPv6' if family == socket.AF_INET6 else 'IPv4'} address "
                                  f"({exc.strerror or exc})") from None
    return config
