"""A configuration that is valid but will not do what its operator most likely wants: logged when the gateway
starts and printed by `gateway check`, each with its fix. Errors stop the gateway (gateway.shared.config);
these do not, because a test or a local trial runs them on purpose."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from urllib.parse import urlsplit

from gateway.shared.config import Config, closest, env_names, unknown_env

LOOPBACK_NAMES = ("localhost", "localhost.localdomain", "ip6-localhost")


@dataclass(frozen=True)
class ConfigWarning:
    key: str  # the config key, or the environment variable, the warning is about
    message: str
    fix: str

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def config_warnings(config: Config, environ: Mapping[str, str]) -> list[ConfigWarning]:
    return [*_unknown_variables(environ), *_unreachable_stream_url(config), *_unverified_callbacks(config)]


def _unknown_variables(environ: Mapping[str, str]) -> list[ConfigWarning]:
    """A GATEWAY_* variable the gateway does not read is ignored, not refused: the environment is shared with
    other software (Kubernetes sets GATEWAY_PORT, GATEWAY_SERVICE_HOST, ... for a Service named gateway)."""
    found = []
    for name in unknown_env(environ):
        close = closest(name, env_names())
        found.append(ConfigWarning(name, f"{name} is not a variable the gateway reads: it is ignored",
                                   f"did you mean {close}?" if close else f"unset {name}"))
    return found


def _unreachable_stream_url(config: Config) -> list[ConfigWarning]:
    """The ICE answer's connectStream endpoint starts with public_url, or is made from `listen`: a loopback or
    wildcard host there sends Sinch to connect to itself."""
    base = config.stream_base_url
    local = _is_local(urlsplit(base).hostname or "")
    if config.public_url and not local:
        return []
    said = f"public_url is {config.public_url}" if config.public_url else "public_url is not set"
    where = ("a loopback or wildcard address Sinch cannot connect to, so the calls this gateway's callbacks route "
             "fail" if local else "made from listen: no load balancer or TLS in front is taken into account")
    return [ConfigWarning("public_url", f"{said}: the stream endpoints in ICE answers start with {base}, {where}",
                          "public_url = the wss://HOST[:PORT] address at which Sinch reaches listen")]


def _is_local(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return False  # a DNS name
    return address.is_loopback or address.is_unspecified


def _unverified_callbacks(config: Config) -> list[ConfigWarning]:
    if config.callbacks_signed:
        return []
    has_secret = bool(config.sinch_application_secret or config.sinch_service_secret)
    why = ("verify_callbacks is false" if has_secret
           else "neither sinch_application_secret nor sinch_service_secret is set")
    return [ConfigWarning(
        "verify_callbacks" if has_secret else "sinch_application_secret",
        f"{why}: callbacks are accepted unverified, so anyone who reaches callback_listen "
        f"({config.callback_listen}) can have calls connected to the routes"
        + (" and get stream tokens" if config.token_key else ""),
        "verify_callbacks = true" if has_secret
        else "SINCH_APPLICATION_SECRET = the application's secret (Voice API 1), or SINCH_SERVICE_ID and "
             "SINCH_SERVICE_SECRET = the service's (Voice API 2.0), as Sinch issues them")]
