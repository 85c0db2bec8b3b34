"""`gateway serve`: command line -> one Config -> the server. Holds no behaviour of its own."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from urllib.parse import urlsplit, urlunsplit

import msgspec

from gateway.control.callouts import CalloutClient
from gateway.control.calls_v2 import RING_TIMEOUT, VoiceV2Client
from gateway.control.sinch_http import CalloutError
from gateway.control.svaml_v2 import BRIDGE
from gateway.process.supervisor import Supervisor
from gateway.shared import logs
from gateway.shared.build import data_plane, package_version
from gateway.shared.config import EMBEDDED_ECHO_ROUTE, SECRET_KEYS, Config, ConfigError, config_keys
from gateway.shared.config_reference import reference
from gateway.shared.config_warnings import config_warnings
from gateway.shared.exit_codes import EXIT_CONFIG_ERROR
from gateway.shared.host_limits import read_host_limits
from gateway.shared.logs import log_event
from gateway.shared.resolve import load_resolved_config

MASK = "***"
log = logging.getLogger("gateway.cli")
CONFIG_EPILOG = ("Every key is also an environment variable and a key of the --config file: a flag wins over the "
                 "environment, which wins over the file. Reference: docs/configuration.md")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Sinch connectStream <-> RTP stream gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_config_options(commands.add_parser("serve", help="run the gateway", epilog=CONFIG_EPILOG))
    _add_config_options(commands.add_parser(
        "check", help="validate the configuration (as serve would load it, TLS files included) and print it with "
                      "secrets masked, and the host limits that bound its capacity under `host_limits`; exit 0, "
                      "or 2 naming the key: for deploy pipelines, before a SIGHUP", epilog=CONFIG_EPILOG))
    _add_callout_parser(commands)
    return parser


def _add_config_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--config", metavar="FILE", help="TOML file; GATEWAY_<KEY> env vars and flags override it")
    for ref in reference():
        if not ref.flag:
            continue
        values = ref.values or None
        command.add_argument(ref.flag, dest=ref.key, choices=values, metavar=None if values else ref.unit,
                             action="append" if ref.key == "routes" else "store", help=ref.help().replace("%", "%%"))


def _add_callout_parser(commands: argparse._SubParsersAction) -> None:
    callout = commands.add_parser("callout", help="place an outbound call through Sinch's Callouts API (Voice API "
                                                  "1) or its calls endpoint (Voice API 2.0: callout v2)")
    callout.add_argument("--config", metavar="FILE", help="TOML file with credentials, public_url, token_key")
    kinds = callout.add_subparsers(dest="kind", required=True)
    stream = kinds.add_parser("stream", help="customCallout: a stream leg to this gateway (connectStream)")
    _add_stream_options(stream)
    stream.add_argument("--conference", default="", help="join the leg to this conference once answered")
    stream.add_argument("--cli", default="")
    v2 = kinds.add_parser("v2", help="Voice API 2.0: a session with a stream leg to this gateway; with --to, a "
                                     "phone leg that, once answered, is bridged to the stream leg")
    _add_stream_options(v2)
    v2.add_argument("--to", default="", help="the phone number (E.164) to dial and bridge to the stream")
    v2.add_argument("--cli", default="", help="the number the phone leg is called from (E.164)")
    v2.add_argument("--ring-timeout", type=int, default=RING_TIMEOUT, help="seconds the phone leg may ring")
    v2.add_argument("--bridge", default=BRIDGE, help="the bridge a stream leg alone joins (for legs added later)")
    conference = kinds.add_parser("conference", help="conferenceCallout: dial a party into a conference")
    conference.add_argument("--to", required=True, help="the number (or SIP/in-app endpoint) to dial")
    conference.add_argument("--conference", required=True)
    conference.add_argument("--cli", default="")
    conference.add_argument("--type", default="number", choices=("number", "username", "sip"))
    conference.add_argument("--greeting", default="")


def _add_stream_options(command: argparse.ArgumentParser) -> None:
    command.add_argument("--route", required=True)
    command.add_argument("--rate", type=int, default=8000)
    command.add_argument("--max-duration", type=int, default=0)
    command.add_argument("--header", action="append", default=[], metavar="KEY=VALUE", help="callHeaders")


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {key: getattr(args, key, None) for key in config_keys()} if args.command != "callout" else {}
    try:
        config = load_resolved_config(args.config, overrides)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    if args.command == "callout":
        return _callout(config, args)
    warnings = config_warnings(config, os.environ)
    if args.command == "check":
        limits = read_host_limits(config)
        build = {"version": package_version(), "data_plane": data_plane()}
        print(json.dumps({**masked(config), "warnings": [warning.as_dict() for warning in warnings],
                          "host_limits": limits.as_dict(), "build": build}, indent=1))
        for warning in warnings:
            print(f"gateway: warning: {warning.message}; to fix: {warning.fix}", file=sys.stderr)
        print(f"gateway: capacity: {limits.verdict}", file=sys.stderr)
        return 0
    logs.setup(config.log_level)
    for warning in warnings:
        log_event(log, logging.WARNING, "config.warning", key=warning.key, message=warning.message, fix=warning.fix)
    return Supervisor(config, reload=lambda: load_resolved_config(args.config, overrides)).run()


def masked(config: Config) -> dict[str, object]:
    """The configuration as a dict with what may hold a credential masked: the secrets, each route's static
    token, the password and query of call_events_url and replay_store, and the values of the headers ICE rules
    pass on; a route's hold sound is shown by its path. Without routes, the embedded echo route the workers
    add is shown in their place."""
    data = msgspec.to_builtins(config)
    for key in SECRET_KEYS:
        if data[key]:
            data[key] = MASK
    for route in data["routes"].values():
        if route["token"]:
            route["token"] = MASK
        if route["hold_sound"]:
            route["hold_sound"] = route["hold_sound"]["path"]  # not its samples
    if not data["routes"]:
        data["routes"] = {EMBEDDED_ECHO_ROUTE: "embedded: each worker's echo service sends a call's RTP back to it "
                                               "over loopback (no route is configured)"}
    for key in ("call_events_url", "replay_store"):
        data[key] = _masked_url(data[key])
    for rule in data["ice_rules"]:
        rule["call_headers"] = dict.fromkeys(rule["call_headers"], MASK)
    return data


def _masked_url(text: str) -> str:
    """A URL with its password and query masked (either may hold a credential); not a URL: as it is."""
    url = urlsplit(text)
    if not url.netloc:
        return text
    host_port = url.netloc.rpartition("@")[2]  # as written: IPv6 brackets and the port kept
    netloc = f"{url.username or ''}:{MASK}@{host_port}" if url.password is not None else url.netloc
    return urlunsplit((url.scheme, netloc, url.path, MASK if url.query else "", ""))


def _callout(config: Config, args: argparse.Namespace) -> int:
    try:
        if args.kind == "conference":
            result = CalloutClient(config).conference(args.to, args.conference, args.cli, args.type, args.greeting)
        else:
            headers = dict(item.partition("=")[::2] for item in args.header)
            result = _stream_callout(config, args, headers)
    except CalloutError as exc:
        print(f"gateway: callout failed: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(result))
    return 0


def _stream_callout(config: Config, args: argparse.Namespace, headers: dict[str, str]) -> dict[str, object]:
    if args.kind == "stream":
        return CalloutClient(config).stream(args.route, args.rate, args.conference, args.cli, args.max_duration,
                                            headers)
    client = VoiceV2Client(config)
    if args.to:
        return client.call(args.to, args.route, args.rate, args.cli, args.max_duration, headers, args.ring_timeout)
    return client.stream(args.route, args.rate, args.max_duration, headers, args.bridge)


if __name__ == "__main__":
    sys.exit(main())
