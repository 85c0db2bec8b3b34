"""`gateway serve`: command line -> one Config -> the server. Holds no behaviour of its own."""

from __future__ import annotations

import argparse
import sys

import msgspec

from gateway import logs
from gateway.config import Config, ConfigError, config_keys, load_config
from gateway.supervisor import Supervisor

EXIT_CONFIG_ERROR = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description="Sinch connectStream <-> RTP stream gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the gateway")
    serve.add_argument("--config", metavar="FILE", help="TOML file; GATEWAY_<KEY> env vars and flags override it")
    serve.add_argument("--route", dest="routes", action="append", metavar="NAME=rtp://HOST:PORT?codec=&rate=&ptime=",
                       help="a downstream media service (repeatable); none = the embedded echo route")
    defaults = {field.name: field.default for field in msgspec.structs.fields(Config)}
    for key in config_keys():
        if key not in ("routes", "ice_rules"):  # tables: config file (routes also --route)
            serve.add_argument("--" + key.replace("_", "-"), dest=key, metavar="VALUE",
                               help=f"default: {defaults[key]}")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    overrides = {key: getattr(args, key, None) for key in config_keys()}
    try:
        config = load_config(args.config, overrides=overrides)
    except ConfigError as exc:
        print(f"gateway: config error: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    logs.setup(config.log_level)
    return Supervisor(config).run()


if __name__ == "__main__":
    sys.exit(main())
