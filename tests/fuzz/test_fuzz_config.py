"""The config loader under any TOML file, environment and flags an operator could write: a Config, or a
ConfigError whose message starts with the key (or variable, or file) it is about. Anything else would reach the
operator as a traceback and exit status 1 instead of 2 (issue 14.6)."""

from __future__ import annotations

import json
import math
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gateway.shared.config import ENV_ALIASES, ENV_PREFIX, FILE_SUFFIX, Config, ConfigError, config_keys, load_config
from tests.fuzz.strategies import any_text, batch, budget, feed, mostly, seeds, with_mutations

KEYS = config_keys()
FILES = Path(tempfile.mkdtemp(prefix="gateway-fuzz-config-"))
(FILES / "secret").write_text("a-stream-token-key-of-32-chars!!\n")
(FILES / "binary").write_bytes(b"\xff\xfe\x00")
(FILES / "dir").mkdir()
PATHS = [str(FILES / name) for name in ("secret", "binary", "dir", "missing")] + ["", "bad\x00path", "/"]
TOML = FILES / "gateway.toml"
# An error names what it is about first: a key (`routes.asr`, `ice_rules[0].rate`), a variable, the file, or the
# unknown key itself.
NAMED = re.compile(rf"^(?:(?:{'|'.join(KEYS)}|route)\b|(?:{ENV_PREFIX}|SINCH_)[A-Z_]+\b|config file |.*: unknown key)",
                   re.DOTALL)

hosts = st.sampled_from(["10.0.0.5", "127.0.0.1", "[::1]", "::1", "[::1", "host.example", "", "[fe80::1%eth0]"])
ports = st.sampled_from(["5004", "99999", "0", "-1", "65536", "", "5004x", "00005004"]) | st.integers().map(str)
route_options = st.builds(lambda key, value: f"{key}={value}",
                          st.sampled_from(["codec", "rate", "ptime", "pt", "token"]) | st.text(max_size=4),
                          st.sampled_from(["PCMU", "pcma", "L16", "16000", "20", "96", "-1", "1e3"]) | any_text)
route_urls = st.builds(lambda scheme, host, port, options: f"{scheme}://{host}:{port}?{'&'.join(options)}",
                       st.sampled_from(["rtp", "rtp", "udp", ""]), hosts, ports, st.lists(route_options, max_size=3))
route_specs = st.builds(lambda name, url: f"{name}={url}", st.sampled_from(["asr", "bot", ""]) | any_text, route_urls)
scalars = st.none() | st.booleans() | st.integers() | st.floats() | any_text
plausible = st.sampled_from(["127.0.0.1:8080", "[::1]:99999", "0.0.0.0:", ":80", "16384-32767", "9-5", "a-b",
                             "ws://gw", "wss://[::1", "http://[::1", "https://x:99999/p", "5", "0", "-1", "1e309",
                             "nan", "true", "shared", "info", "hangup", "BeIukql3pTKJ8RGL5zo0DA==", *PATHS])
routes_values = st.one_of(
    st.lists(route_specs, max_size=3), st.lists(route_specs, max_size=3).map(" ".join),
    st.dictionaries(st.sampled_from(["asr", "bot"]) | any_text, route_urls | scalars, max_size=2), scalars,
    st.lists(scalars, max_size=2),
)
ice_rules = st.lists(st.fixed_dictionaries(
    {"route": st.sampled_from(["asr", "echo", "nope"]) | scalars},
    optional={"rate": st.sampled_from([8000, 11025]) | scalars, "max_duration": st.integers(),
              "match": scalars | st.fixed_dictionaries({}, optional={"to": any_text,
                                                                      "headers": st.dictionaries(any_text, scalars)}),
              "call_headers": st.dictionaries(any_text, scalars) | scalars, "forward_headers": st.lists(scalars)}),
    max_size=2) | scalars
values = st.one_of(plausible, scalars, st.lists(scalars, max_size=2), st.dictionaries(any_text, scalars, max_size=2))
settings_by_key = st.dictionaries(st.sampled_from(KEYS) | st.text(max_size=8), values, max_size=4)
overrides = st.builds(lambda rest, routes, rules: {**rest, **routes, **rules}, settings_by_key,
                      st.dictionaries(st.just("routes"), routes_values, max_size=1),
                      st.dictionaries(st.just("ice_rules"), ice_rules, max_size=1))
variables = st.sampled_from([ENV_PREFIX + key.upper() for key in KEYS] + list(ENV_ALIASES))
environments = st.dictionaries(
    variables | variables.map(lambda name: name + FILE_SUFFIX), plausible | any_text | route_specs, max_size=3)


@pytest.fixture(scope="module", autouse=True)
def remove_files() -> Iterator[None]:
    yield
    shutil.rmtree(FILES)


def toml_literal(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and not math.isfinite(value):
        return "nan" if math.isnan(value) else "inf" if value > 0 else "-inf"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "[" + ", ".join(toml_literal(item) for item in value if item is not None) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(key)} = {toml_literal(item)}" for key, item in value.items()
                               if item is not None) + "}"
    return json.dumps(value)  # a TOML basic string (a \\u escape of a lone surrogate is a TOMLDecodeError)


def toml_file(settings: dict) -> bytes:
    lines = [f"{json.dumps(key)} = {toml_literal(value)}" for key, value in settings.items() if value is not None]
    return "\n".join(lines).encode("utf-8", "surrogatepass")


def load(case: tuple[bytes | None, dict, dict]) -> None:
    toml, environment, flags = case
    if toml is not None:
        TOML.write_bytes(toml)
    try:
        config = load_config(str(TOML) if toml is not None else None, env=environment, overrides=flags)
    except ConfigError as exc:
        assert NAMED.match(str(exc)), f"a config error that does not name its key: {exc}"
        return
    assert isinstance(config, Config)


@budget(70)
@given(batch(mostly(overrides.map(toml_file), st.binary(max_size=40)), 6), batch(environments, 6),
       batch(overrides, 6), seeds)
def test_the_config_loader_raises_only_config_errors_naming_the_key(files, environments, flags, seed):
    """Each file, also mutated byte by byte; and every environment with every set of flags (each layer can
    undo or break what the one below set)."""
    cases = [(file, {}, {}) for file in with_mutations(files, seed, 4)]
    cases += [(None, env, flag) for env in environments for flag in flags]
    cases += [(file, env, flag) for file, env, flag in zip(files, environments, flags, strict=True)]
    feed("config", cases, load)

