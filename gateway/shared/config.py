"""One frozen configuration object, merged from defaults < TOML file < environment < command line.

Every value is validated by msgspec against the annotations below, so an error names the key and the rule:
`config error: connect_timeout: Expected `float` > 0.0`.
"""

from __future__ import annotations

import base64
import difflib
import functools
import ipaddress
import os
import re
import tomllib
from collections.abc import Iterable, Mapping
from typing import Annotated, Any, Literal, NamedTuple, get_args, get_origin, get_type_hints
from urllib.parse import parse_qs, quote, urlsplit

import msgspec

from gateway.shared.cpus import usable_cpus
from gateway.shared.hold_sound import HoldSound, read_hold_sound
from gateway.shared.tls import TlsError, server_context

# Sample rates Sinch's streamingOptions allows (protocol notes §2.4).
SINCH_RATES = (8000, 16000, 24000, 44100, 48000, 96000)
Codec = Literal["L16", "PCMU", "PCMA"]  # RTP payload formats of a route (RFC 3551 §4.5.11, §4.5.14)
CODECS: tuple[Codec, ...] = get_args(Codec)
G711_RATE = 8000  # RFC 3551 §4.5.14: PCMU/PCMA are 8 kHz only
ENV_PREFIX = "GATEWAY_"
FILE_SUFFIX = "_FILE"  # GATEWAY_TOKEN_KEY_FILE=/run/secrets/token_key reads the value from that file
# Credentials may come from files (NAME_FILE); the secrets among them are never printed (`gateway check`) or logged,
# and of replay_store's URL only its password is (cli.masked).
SECRET_KEYS = ("sinch_application_secret", "sinch_service_secret", "sinch_key_secret", "token_key",
               "token_key_previous")
CREDENTIAL_KEYS = ("sinch_application_key", "sinch_service_id", "sinch_project_id", "sinch_key_id", *SECRET_KEYS,
                   "replay_store")
# Credentials keep the names Sinch's own tools use.
ENV_ALIASES = {"SINCH_APPLICATION_KEY": "sinch_application_key", "SINCH_APPLICATION_SECRET": "sinch_application_secret",
               "SINCH_SERVICE_ID": "sinch_service_id", "SINCH_SERVICE_SECRET": "sinch_service_secret",
               "SINCH_PROJECT_ID": "sinch_project_id", "SINCH_KEY_ID": "sinch_key_id",
               "SINCH_KEY_SECRET": "sinch_key_secret"}
# Voice API 2.0's regions: https://{region}.voice.api.sinch.com ("global": https://voice.api.sinch.com).
VoiceRegion = Literal["global", "us1", "br1", "eu1", "sg1", "au1"]
EMBEDDED_ECHO_ROUTE = "echo"
# GATEWAY_* variables that are not config keys: read by gateway/__init__.py before anything else is imported.
OTHER_ENV = ("GATEWAY_NO_EXTENSIONS",)
BOOL_VALUES = ("true", "false", "1", "0")  # what msgspec takes for a bool from a string (any case)
LOCAL_REPLAY_STORE = "local"
INSTANCE_ID = re.compile(r"[A-Za-z0-9._-]{0,63}")

Seconds = Annotated[float, msgspec.Meta(ge=0)]
PositiveSeconds = Annotated[float, msgspec.Meta(gt=0)]
Port = Annotated[int, msgspec.Meta(ge=1, le=65535)]


class ConfigError(ValueError):
    """A configuration value is invalid; the message names the key."""


Policy = Literal["round_robin", "least_calls"]  # how a new call picks one of a route's targets
POLICIES: tuple[Policy, ...] = get_args(Policy)
# RFC 1123 §2.1 host names (letters, digits, hyphens, dots), or an IP address
_HOST_NAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?")


class Target(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """One media service of a route, as written: its host is an IP address or a DNS name."""

    host: str
    port: Port

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


class Route(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """A downstream media service, or a pool of them: where a call's RTP goes and in which format."""

    name: str
    host: str  # the first target; more_targets are the rest of `rtp://HOST:PORT,HOST:PORT,...`
    port: Port
    codec: Codec = "L16"
    rate: int = 0  # wire sample rate; 0 = the call's own rate (L16 only)
    ptime_ms: int = 0  # packet duration; 0 = the largest of 20/10/5 ms that fits the MTU budget
    payload_type: int = -1  # -1 = static PT where RFC 3551 has one, else dynamic 96
    token: str = ""  # a static stream token for users who write their own ICE handler
    more_targets: tuple[Target, ...] = ()
    policy: Policy = "round_robin"
    rtp_timeout: Seconds = 0.0  # a target that sends no RTP back for this long to a call sending it is down; 0 = off
    forks: tuple[Target, ...] = ()  # get a copy of the upstream RTP (own SSRC and RTCP); their audio is not played
    dtmf: int = 0  # payload type of RFC 4733 telephone events for the DTMF heard in the caller's audio; 0 = off
    hold_sound: HoldSound | None = None  # played to Sinch, looped, while a call fails over; None = silence

    def __post_init__(self) -> None:
        if self.codec != "L16" and self.rate not in (0, G711_RATE):
            raise ValueError(f"route {self.name}: {self.codec} is 8000 Hz only (RFC 3551 §4.5.14)")
        if self.rate and self.rate not in SINCH_RATES:
            raise ValueError(f"route {self.name}: rate must be one of {SINCH_RATES}")
        if self.ptime_ms and self.ptime_ms not in (5, 10, 20, 30, 40, 60):
            raise ValueError(f"route {self.name}: ptime must be one of 5, 10, 20, 30, 40, 60 ms")
        if not -1 <= self.payload_type <= 127:
            raise ValueError(f"route {self.name}: payload type must be 0..127")
        if self.dtmf and not 96 <= self.dtmf <= 127:
            raise ValueError(f"route {self.name}: dtmf must be a dynamic payload type, 96-127 (RFC 3551 §3)")
        if self.dtmf and self.dtmf == self.payload_type_for(self.rate):
            raise ValueError(f"route {self.name}: dtmf={self.dtmf} is the audio's payload type: set another (or pt=)")
        for target in self.targets + self.forks:
            if not (is_ip_address(target.host) or _HOST_NAME.fullmatch(target.host)):
                raise ValueError(f"route {self.name}: host must be an IP address or a DNS name, got {target.host!r}")
        if len(set(self.targets + self.forks)) != len(self.targets) + len(self.forks):
            raise ValueError(f"route {self.name}: a target or fork is listed twice")

    @property
    def targets(self) -> tuple[Target, ...]:
        return (Target(self.host, self.port), *self.more_targets)

    def wire_rate(self, call_rate: int) -> int:
        if self.codec != "L16":
            return G711_RATE
        return self.rate or call_rate

    def payload_type_for(self, wire_rate: int) -> int:
        if self.payload_type >= 0:
            return self.payload_type
        if self.codec == "PCMU":
            return 0  # RFC 3551 table 4
        if self.codec == "PCMA":
            return 8
        if wire_rate == 44100:
            return 11  # RFC 3551 table 4: L16 mono 44.1 kHz
        return 96  # dynamic (RFC 3551 §3)

    def ptime_for(self, wire_rate: int, mtu_budget: int) -> int:
        """Packet duration in ms whose payload fits the MTU budget (design notes: keep under path MTU)."""
        bytes_per_ms = wire_rate * (2 if self.codec == "L16" else 1) / 1000
        if self.ptime_ms:
            return self.ptime_ms
        return next(ms for ms in (20, 10, 5) if ms * bytes_per_ms <= mtu_budget or ms == 5)

    def url(self) -> str:
        forks = "".join(f"&fork={fork}" for fork in self.forks)
        dtmf = f"&dtmf={self.dtmf}" if self.dtmf else ""
        hold = f"&hold_sound={quote(self.hold_sound.path)}" if self.hold_sound else ""
        return f"rtp://{','.join(map(str, self.targets))}?codec={self.codec}{forks}{dtmf}{hold}"


def is_ip_address(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


# Sinch's callHeaders (Voice API 2.0 CallHeader): at most 16, a key of 1-255 and a value of at most 255 printable
# ASCII characters or tabs.
MAX_CALL_HEADERS = 16
MAX_CALL_HEADER_LENGTH = 255
_HEADER_TEXT = re.compile(r"[\x20-\x7e\t]*")


def call_header_problem(key: str, value: str) -> str:
    """What makes a call header one Sinch refuses, or "" when it is fine."""
    for what, text in (("key", key), ("value", value)):
        if len(text) > MAX_CALL_HEADER_LENGTH or not _HEADER_TEXT.fullmatch(text):
            return f"call header {what} {text[:40]!r}: at most {MAX_CALL_HEADER_LENGTH} printable ASCII characters"
    return "" if key else "a call header needs a key"


class IceMatch(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """Shell-style patterns (fnmatch) an ICE must match; every given field must match."""

    to: str = "*"
    cli: str = "*"
    custom: str = "*"
    headers: dict[str, str] = {}


class IceRule(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    """An ICE that matches is answered with connectStream to `route`."""

    route: str
    match: IceMatch = IceMatch()
    rate: int = 8000
    max_duration: Annotated[int, msgspec.Meta(ge=0, le=14400)] = 0  # seconds; Sinch's limit is 14400
    call_headers: dict[str, str] = {}  # passed to the stream's connect message
    forward_headers: list[str] = []  # names of the ICE's callHeaders to pass on too

    def __post_init__(self) -> None:
        if self.rate not in SINCH_RATES:
            raise ValueError(f"ice_rules: rate must be one of {SINCH_RATES}")
        if len(self.call_headers) + len(self.forward_headers) > MAX_CALL_HEADERS:
            raise ValueError(f"ice_rules: at most {MAX_CALL_HEADERS} call_headers and forward_headers together")
        for key, value in [*self.call_headers.items(), *((key, "") for key in self.forward_headers)]:
            if problem := call_header_problem(key, value):
                raise ValueError(f"ice_rules: {problem}")


class Config(msgspec.Struct, frozen=True, forbid_unknown_fields=True):
    listen: str = "0.0.0.0:8080"
    routes: dict[str, Route] = {}
    default_rate: int = 8000  # the call's rate when neither connect nor the URL says
    rtp_host: str = "0.0.0.0"  # local address the per-call RTP sockets bind to
    rtp_ports: str = "16384-32767"  # even RTP port, RTCP on the next (RFC 3550 §11)
    udp_rcvbuf_bytes: Annotated[int, msgspec.Meta(ge=0)] = 262144
    mtu_budget: Annotated[int, msgspec.Meta(ge=160, le=65000)] = 1200
    max_frame_bytes: Annotated[int, msgspec.Meta(ge=1024)] = 256 * 1024
    connect_timeout: PositiveSeconds = 5.0
    heartbeat_interval: PositiveSeconds = 20.0  # Sinch hangs up after 60 s without server audio
    max_call_duration: Seconds = 0.0  # 0 = unlimited
    audio_speed_limit: Seconds = 4.0  # upstream audio faster than this many times real time is dropped; 0 = off
    audio_burst_seconds: PositiveSeconds = 2.0  # audio a call may send ahead of that pace (after a network stall)
    jitter_max_wait: Seconds = 0.06
    return_queue_seconds: PositiveSeconds = 5.0  # cap on audio waiting to be paced back to Sinch
    pacing_lead_frames: Annotated[int, msgspec.Meta(ge=1, le=50)] = 3
    rtcp_interval: PositiveSeconds = 5.0  # RFC 3550 §6.2 minimum
    tick_interval: Annotated[float, msgspec.Meta(ge=0.005, le=0.02)] = 0.01
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    call_events_url: str = ""  # http(s) URL that gets a JSON POST when a call starts and ends; "" = off
    call_events_timeout: PositiveSeconds = 2.0
    # The call's RTP waits (at most this long) for the receiver to answer its call.started; 0 = RTP at once
    call_started_wait: Annotated[float, msgspec.Meta(ge=0, le=5)] = 0.0
    allocate_url: str = ""  # http(s) URL asked for each call's HOST:PORT (issue 15.4); "" = the route's targets
    allocate_timeout: Annotated[float, msgspec.Meta(gt=0, le=5)] = 0.5  # then the call goes to the route's targets
    route_resolve_interval: Seconds = 60.0  # DNS names of routes resolved again this often; 0 = at load only
    target_probe_interval: PositiveSeconds = 1.0  # a target marked down is probed this often
    # ---- processes (prefork server) ----
    workers: Annotated[int, msgspec.Meta(ge=0, le=128)] = 0  # 0 = one per CPU the cgroup's quota allows
    accept: Literal["shared", "reuseport"] = "shared"  # one accept queue for all workers, or one each
    metrics_listen: str = "0.0.0.0:9100"  # control process: /metrics, /healthz, /readyz
    drain_timeout: Seconds = 30.0  # SIGTERM: how long calls in progress may go on
    reload_drain_timeout: Seconds = 14400.0  # SIGHUP: retiring workers wait this long (4 h: Sinch's longest call)
    worker_timeout: PositiveSeconds = 10.0  # a worker whose loop has not beaten for this long is replaced
    max_calls: Annotated[int, msgspec.Meta(ge=0)] = 0  # per worker; over it a connect is answered busy; 0 = no cap
    max_cpu_percent: Annotated[float, msgspec.Meta(ge=0, le=100)] = 0.0  # busy while a worker is this busy; 0 = off
    # ---- control plane (Sinch callbacks, stream tokens, callouts) ----
    callback_listen: str = "0.0.0.0:8081"  # POST /sinch/callback, facing Sinch; apart from metrics_listen
    tls_cert: str = ""  # PEM certificate chain: listen speaks wss:// and callback_listen https://; "" = plain
    tls_key: str = ""  # PEM private key of tls_cert
    public_url: str = ""  # ws(s)://HOST[:PORT] the stream endpoints in SVAML start with; "" = from listen
    sinch_application_key: str = ""  # env SINCH_APPLICATION_KEY
    sinch_application_secret: str = ""  # env SINCH_APPLICATION_SECRET, base64 as Sinch issues it
    sinch_api_base: str = "https://calling.api.sinch.com"
    # Voice API 2.0: webhooks signed by a service; outbound calls with a project's access key
    sinch_service_id: str = ""  # env SINCH_SERVICE_ID
    sinch_service_secret: str = ""  # env SINCH_SERVICE_SECRET, base64 as Sinch issues it
    sinch_project_id: str = ""  # env SINCH_PROJECT_ID
    sinch_key_id: str = ""  # env SINCH_KEY_ID: the project's access key
    sinch_key_secret: str = ""  # env SINCH_KEY_SECRET
    sinch_voice_region: VoiceRegion = "global"
    sinch_voice_api_base: str = ""  # "" = from sinch_voice_region
    sinch_voice_auth: Literal["oauth2", "basic"] = "oauth2"  # Sinch: basic is for testing only
    sinch_auth_url: str = "https://auth.sinch.com/oauth2/token"
    verify_callbacks: bool = True  # when an application or service secret is configured
    callback_max_skew: PositiveSeconds = 300.0  # x-timestamp tolerance
    # Behind a load balancer that pools connections, longer than its idle timeout (AWS ALB: 60 s)
    callback_keepalive_timeout: PositiveSeconds = 5.0  # a connection waiting for a request, then closed
    callback_max_connections: Annotated[int, msgspec.Meta(ge=1)] = 1024  # past it, the longest waiting is closed
    token_key: str = ""  # env GATEWAY_TOKEN_KEY: signs stream URLs; when set, every stream needs a token
    token_key_previous: str = ""  # still accepted (never used to sign) while a token_key rotation settles
    token_ttl: PositiveSeconds = 60.0  # from the ICE answer to Sinch's websocket
    ice_rules: list[IceRule] = []
    ice_no_match: Literal["hangup", "connect"] = "hangup"  # with rules and none matching
    ice_route: str = ""  # route for `connect` answers without a rule; "" = the first route (or echo)
    ice_rate: int = 8000
    # ---- a fleet (docs/fleet.md) ----
    replay_store: str = "local"  # where used tokens are remembered: this machine, or redis(s)://HOST:PORT/DB
    replay_store_unavailable: Literal["fail_closed", "fail_open"] = "fail_closed"
    replay_store_timeout: PositiveSeconds = 0.25  # a claim's deadline, retry included
    instance_id: str = ""  # names this instance in the tokens it issues, which only it then accepts; "" = off

    def __post_init__(self) -> None:
        self._check_listeners_and_urls()
        self._check_media()
        self._check_credentials()
        self._check_ice()

    def _check_listeners_and_urls(self) -> None:
        for key in ("listen", "metrics_listen", "callback_listen"):
            parse_host_port(getattr(self, key), key)
        if self.call_events_url and urlsplit(self.call_events_url).scheme not in ("http", "https"):
            raise ValueError("call_events_url: expected http://... or https://...")
        if self.allocate_url and urlsplit(self.allocate_url).scheme not in ("http", "https"):
            raise ValueError("allocate_url: expected http://... or https://...")
        if self.call_started_wait and not self.call_events_url:
            raise ValueError("call_started_wait: needs call_events_url (the call.started it waits for)")
        if self.public_url and urlsplit(self.public_url).scheme not in ("ws", "wss"):
            raise ValueError("public_url: expected ws://HOST[:PORT] or wss://HOST[:PORT]")
        if self.replay_store != LOCAL_REPLAY_STORE:
            store = urlsplit(self.replay_store)
            if store.scheme not in ("redis", "rediss") or not store.hostname:
                raise ValueError("replay_store: expected local, redis://HOST:PORT/DB or rediss://HOST:PORT/DB")
        if not INSTANCE_ID.fullmatch(self.instance_id):
            raise ValueError("instance_id: up to 63 letters, digits, '.', '_' or '-'")

    def _check_media(self) -> None:
        if 0 < self.audio_speed_limit < 1:
            raise ValueError("audio_speed_limit: 0 (off) or at least 1 (times real time)")
        if self.default_rate not in SINCH_RATES:
            raise ValueError(f"default_rate: must be one of {SINCH_RATES}")
        low, high = self.rtp_port_range
        if not (1024 <= low < high <= 65535):
            raise ValueError("rtp_ports: expected LOW-HIGH within 1024-65535, e.g. 16384-32767")
        try:
            rtp_family = ipaddress.ip_address(self.rtp_host).version
        except ValueError:
            raise ValueError(f"rtp_host: must be an IP address, got {self.rtp_host!r}") from None
        for name, route in self.routes.items():
            if name != route.name:
                raise ValueError(f"routes.{name}: name mismatch")
            if any(is_ip_address(target.host) and ipaddress.ip_address(target.host).version != rtp_family
                   for target in route.targets):
                raise ValueError(f"routes.{name}: an IPv{6 if rtp_family == 4 else 4} media service needs an "
                                 f"IPv{6 if rtp_family == 4 else 4} rtp_host (now {self.rtp_host!r})")

    def _check_credentials(self) -> None:
        if self.token_key and len(self.token_key) < 16:
            raise ValueError("token_key: at least 16 characters")
        if self.token_key_previous and not self.token_key:
            raise ValueError("token_key_previous: only with a token_key (the key it was rotated to)")
        if self.token_key_previous and len(self.token_key_previous) < 16:
            raise ValueError("token_key_previous: at least 16 characters")
        if self.token_key and self.verify_callbacks and not self.callbacks_signed:
            raise ValueError("token_key: needs sinch_application_secret or sinch_service_secret, or anyone who reaches "
                             "callback_listen gets stream tokens from an unsigned ICE or call.incoming (set "
                             "verify_callbacks = false to accept that)")
        for key in ("sinch_application_secret", "sinch_service_secret"):
            try:
                base64.b64decode(getattr(self, key), validate=True)
            except ValueError:  # binascii.Error, or a character that is not ASCII
                raise ValueError(f"{key}: not base64 (use the secret as Sinch issues it)") from None
        if self.sinch_service_secret and not self.sinch_service_id:
            raise ValueError("sinch_service_secret: needs sinch_service_id, the service whose webhooks it signs")
        for key in ("sinch_voice_api_base", "sinch_auth_url"):
            if getattr(self, key) and urlsplit(getattr(self, key)).scheme not in ("http", "https"):
                raise ValueError(f"{key}: expected https://... (or http://)")

    def _check_ice(self) -> None:
        if self.ice_rate not in SINCH_RATES:
            raise ValueError(f"ice_rate: must be one of {SINCH_RATES}")
        known = set(self.routes) or {EMBEDDED_ECHO_ROUTE}
        for rule in self.ice_rules:
            if rule.route not in known:
                raise ValueError(f"ice_rules: route {rule.route!r} is not configured")
        if self.ice_route and self.ice_route not in known:
            raise ValueError(f"ice_route: route {self.ice_route!r} is not configured")

    @property
    def rtp_port_range(self) -> tuple[int, int]:
        low, _, high = self.rtp_ports.partition("-")
        try:
            return int(low), int(high)
        except ValueError:
            raise ValueError("rtp_ports: expected LOW-HIGH, e.g. 16384-32767") from None

    @property
    def rtp_port_pairs(self) -> int:
        return even_odd_pairs(self.rtp_port_range)[1]

    @property
    def listen_address(self) -> tuple[str, int]:
        return parse_host_port(self.listen, "listen")

    @property
    def metrics_address(self) -> tuple[str, int]:
        return parse_host_port(self.metrics_listen, "metrics_listen")

    @property
    def callback_address(self) -> tuple[str, int]:
        return parse_host_port(self.callback_listen, "callback_listen")

    @property
    def callbacks_signed(self) -> bool:
        """Whether callbacks are checked: signed by the application (Voice API 1) or by the service (2.0)."""
        return bool(self.verify_callbacks and (self.sinch_application_secret or self.sinch_service_secret))

    @property
    def voice_api_base(self) -> str:
        """Voice API 2.0's base URL: sinch_voice_api_base, else the region's."""
        if self.sinch_voice_api_base:
            return self.sinch_voice_api_base.rstrip("/")
        region = "" if self.sinch_voice_region == "global" else self.sinch_voice_region + "."
        return f"https://{region}voice.api.sinch.com"

    @property
    def default_ice_route(self) -> str:
        return self.ice_route or next(iter(self.routes), EMBEDDED_ECHO_ROUTE)

    @property
    def stream_base_url(self) -> str:
        if self.public_url:
            return self.public_url.rstrip("/")
        host, port = self.listen_address
        scheme = "wss" if self.tls_cert else "ws"
        return f"{scheme}://{'127.0.0.1' if host in ('', '0.0.0.0', '::') else host}:{port}"

    @property
    def worker_count(self) -> int:
        return self.workers or usable_cpus()


def even_odd_pairs(port_range: tuple[int, int]) -> tuple[int, int]:
    """The first even port of the range and how many even/odd pairs (RTP, RTCP: RFC 3550 §11) fit in it."""
    low, high = port_range
    first_even = low + (low & 1)
    return first_even, max(0, (high - first_even + 1) // 2)


def parse_host_port(value: str, key: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"{key}: expected HOST:PORT, got {value!r}")
    return host.strip("[]"), int(port)


def parse_route(spec: object) -> Route:
    """`NAME=rtp://HOST:PORT?codec=L16|PCMU|PCMA&rate=HZ&ptime=MS&pt=N&dtmf=PT&hold_sound=PATH`."""
    name, sep, url = spec.partition("=") if isinstance(spec, str) else ("", "", "")
    if not sep or not name:
        raise ConfigError(f"route: expected NAME=rtp://HOST:PORT?..., got {spec!r}")
    return route_from_url(name, url)


def route_from_url(name: str, url: object) -> Route:
    """`rtp://HOST:PORT,HOST:PORT,...?OPTIONS`: the targets separated by commas in the URL's authority."""
    try:
        parts = urlsplit(url) if isinstance(url, str) else None
    except ValueError as exc:  # an IPv6 host without its "]"
        raise ConfigError(f"routes.{name}: {exc}, in {url!r}") from None
    if parts is None or parts.scheme != "rtp" or not parts.netloc:
        raise ConfigError(f"routes.{name}: expected rtp://HOST:PORT?..., got {url!r}")
    targets = [_target_from(name, text, url) for text in parts.netloc.split(",")]
    query = parse_qs(parts.query)
    fields: dict[str, Any] = {"name": name, "host": targets[0].host, "port": targets[0].port,
                              "more_targets": targets[1:],
                              "forks": [_target_from(name, text, url) for text in query.pop("fork", [])]}
    if "hold_sound" in query:
        try:
            fields["hold_sound"] = read_hold_sound(query.pop("hold_sound")[-1])
        except ValueError as exc:
            raise ConfigError(f"routes.{name}: {exc}") from None
    renames = {"codec": "codec", "rate": "rate", "ptime": "ptime_ms", "pt": "payload_type", "token": "token",
               "policy": "policy", "rtp_timeout": "rtp_timeout", "fork": "forks", "dtmf": "dtmf",
               "hold_sound": "hold_sound"}
    for key, values in query.items():
        if key not in renames:
            raise ConfigError(f"routes.{name}: unknown option {key!r} (known: {', '.join(renames)})")
        fields[renames[key]] = values[-1].upper() if key == "codec" else values[-1]
    try:
        return msgspec.convert(fields, Route, strict=False)
    except (msgspec.ValidationError, ValueError) as exc:
        raise ConfigError(f"routes.{name}: {exc}") from None


class NotHostPort(ValueError):
    """Text with no host or no port where a `HOST:PORT` was expected."""


def parse_target(text: str) -> Target:
    """`HOST:PORT` (`[IPv6]:PORT` for an IPv6 address): a route's target, or an allocation webhook's answer.
    ValueError for a port that is no number in 0-65535 or an IPv6 host without its "]"; NotHostPort for no
    host or no port."""
    parts = urlsplit(f"//{text}")
    port = parts.port
    if not parts.hostname or port is None:
        raise NotHostPort(f"expected HOST:PORT, got {text!r}")
    return Target(parts.hostname, port)


def _target_from(name: str, text: str, url: str) -> Target:
    """One `HOST:PORT` of a route's authority."""
    try:
        return parse_target(text)
    except NotHostPort:
        raise ConfigError(f"routes.{name}: expected rtp://HOST:PORT?..., got {url!r}") from None
    except ValueError as exc:
        raise ConfigError(f"routes.{name}: {exc}, in {url!r}") from None


def _routes_value(value: Any) -> dict[str, Route]:
    if isinstance(value, str):  # "a=rtp://...,b=rtp://H:P,H:P": a comma before NAME= separates routes
        value = [spec for spec in re.split(r"\s*,\s*(?=[^,=/:?&\s]+=)|\s+", value) if spec]
    if isinstance(value, list):
        routes = [parse_route(spec) for spec in value]
        return {route.name: route for route in routes}
    if isinstance(value, Mapping):
        return {name: route_from_url(name, url) for name, url in value.items()}
    raise ConfigError("routes: expected a table of NAME = \"rtp://...\"")


@functools.cache  # msgspec evaluates the string annotations on every call: milliseconds
def config_keys() -> tuple[str, ...]:
    return tuple(field.name for field in msgspec.structs.fields(Config))


def load_config(
    path: str | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> Config:
    """Merge defaults < TOML file < GATEWAY_* environment < command-line overrides, then validate."""
    merged: dict[str, Any] = read_toml(path, "config file") if path else {}
    environ = os.environ if env is None else env
    for name, key in env_names().items():
        if key not in CREDENTIAL_KEYS and name + FILE_SUFFIX in environ:
            # e.g. GATEWAY_TLS_KEY_FILE: reading a key file's contents in as a path would also print them
            raise ConfigError(f"{name}{FILE_SUFFIX}: only credentials are read from files "
                              f"({', '.join(CREDENTIAL_KEYS)}); set {name} itself")
        if (value := env_value(environ, name)) is not None:
            merged[key] = value
    merged.update({key: value for key, value in (overrides or {}).items() if value is not None})
    unknown = set(merged) - set(config_keys())
    if unknown:
        key = sorted(unknown)[0]
        raise ConfigError(f"{key}: unknown key{did_you_mean(key, config_keys())} "
                          f"(known: {', '.join(config_keys())})")
    for key, value in merged.items():
        _refuse_undecodable(key, value)
    if "routes" in merged:
        merged["routes"] = _routes_value(merged["routes"])
    try:
        config = msgspec.convert(merged, Config, strict=False)
        server_context(config.tls_cert, config.tls_key)  # a certificate that cannot serve fails here, not later
    except (msgspec.ValidationError, TlsError) as exc:
        raise ConfigError(with_hint(name_the_key(exc))) from None
    return config



def _refuse_undecodable(key: str, value: object) -> None:
    """Python keeps bytes of the environment and command line that are not UTF-8 as lone surrogates, which
    no later step can encode (not even an error message)."""
    texts = value if isinstance(value, list) else value.values() if isinstance(value, dict) else (value,)
    for text in texts:
        if isinstance(text, str) and not text.isascii():
            try:
                text.encode()
            except UnicodeEncodeError:
                raise ConfigError(f"{key}: not UTF-8 text") from None


def env_value(environ: Mapping[str, str], name: str) -> str | None:
    """`NAME`, or the contents of the file `NAME_FILE` names (the Docker and Kubernetes secrets convention,
    so credentials need not sit in the environment); one trailing newline is not part of the value."""
    path = environ.get(name + FILE_SUFFIX)
    if path is None:
        return environ.get(name)
    if name in environ:
        raise ConfigError(f"{name} and {name}{FILE_SUFFIX}: set one of them, not both")
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except OSError as exc:
        raise ConfigError(f"{name}{FILE_SUFFIX} {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{name}{FILE_SUFFIX} {path}: not UTF-8 text") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"{name}{FILE_SUFFIX} {path!r}: not a file name") from None
    return text.removesuffix("\n").removesuffix("\r")


def read_toml(path: str, what: str) -> dict[str, Any]:
    """A TOML file as a dict; ConfigError naming the file (`what` says which kind) when unreadable."""
    try:
        with open(path, "rb") as file:
            return tomllib.load(file)
    except OSError as exc:
        raise ConfigError(f"{what} {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{what} {path}: {exc}") from None
    except UnicodeDecodeError:  # TOML is UTF-8 (TOML 1.0 §Spec)
        raise ConfigError(f"{what} {path}: not UTF-8 text") from None
    except ValueError:  # a NUL in the path
        raise ConfigError(f"{what} {path!r}: not a file name") from None


def name_the_key(exc: Exception) -> str:
    """msgspec says `Expected ... - at `$.key``; lead with the key as every other error does."""
    text, sep, where = str(exc).rpartition(" - at `$.")
    if not sep:
        return str(exc)
    return f"{where.rstrip('`')}: {text}"


# The TOML tables of the config, by the name of the key that holds them (for a hint on an unknown field).
TABLES: dict[str, type[msgspec.Struct]] = {"ice_rules": IceRule, "match": IceMatch}


def env_names() -> dict[str, str]:
    """{environment variable: config key}: GATEWAY_<KEY> for every key, and Sinch's own names for credentials."""
    return {ENV_PREFIX + key.upper(): key for key in config_keys()} | ENV_ALIASES


def unknown_env(environ: Mapping[str, str]) -> list[str]:
    """The GATEWAY_* variables the gateway does not read (a typo is otherwise ignored without a word)."""
    known = set(env_names()) | {ENV_PREFIX + key.upper() + FILE_SUFFIX for key in CREDENTIAL_KEYS} | set(OTHER_ENV)
    return sorted(name for name in environ if name.startswith(ENV_PREFIX) and name not in known)


def closest(word: str, candidates: Iterable[str]) -> str | None:
    """The candidate `word` is most likely a typo of (difflib), if any is close."""
    return next(iter(difflib.get_close_matches(word, list(candidates), n=1)), None)


def did_you_mean(word: str, candidates: Iterable[str]) -> str:
    close = closest(word, candidates)
    return f"; did you mean {close}?" if close else ""


def accepted_values(key: str) -> tuple[str, ...]:
    """The values a key takes when it is one of a few (an enum, a bool, a sample rate); () for any other."""
    return typed_values(key) or tuple(str(value) for value in KEY_DOCS[key].choices)


def typed_values(key: str) -> tuple[str, ...]:
    """The values a key's type allows when it is an enum (Literal) or a bool; () for any other type."""
    kind = get_type_hints(Config)[key]
    if get_origin(kind) is Literal:
        return tuple(get_args(kind))
    return BOOL_VALUES if kind is bool else ()


def with_hint(message: str) -> str:
    """A validation error followed by a hint: the values a key accepts when they are few (`log_level: Invalid enum
    value 'verbose' (accepted: debug, ...)`), or the field an unknown one of an ICE rule may be a typo of."""
    where = message.partition(":")[0]
    unknown = re.search(r"unknown field `([^`]*)`", message)
    if unknown:  # ice_rules[0].match: Object contains unknown field `too`
        struct = TABLES.get(re.sub(r"\[\d+\]", "", where).rpartition(".")[2])
        return message + did_you_mean(unknown[1], struct.__struct_fields__) if struct else message
    values = typed_values(where) if where in KEY_DOCS else ()  # the rest say their values in their own errors
    return f"{message} (accepted: {', '.join(values)})" if values else message


class KeyDoc(NamedTuple):
    """A key's unit (the metavar of its flag) and meaning, for `gateway serve --help` and
    docs/configuration.md, both generated from KEY_DOCS; choices when it takes only a few values."""

    unit: str
    meaning: str
    choices: tuple[object, ...] = ()


KEY_DOCS: dict[str, KeyDoc] = {
    "listen": KeyDoc("HOST:PORT", "the websocket listener, where Sinch's connectStream connects"),
    "routes": KeyDoc("NAME=rtp://HOST:PORT?OPTIONS",
                     "the downstream media services, by name (repeatable); several targets, rtp://HOST:PORT,HOST:PORT,"
                     "..., make a pool; none = the embedded echo route"),
    "default_rate": KeyDoc("HZ", "the call's sample rate when neither the connect command nor the stream URL says",
                           SINCH_RATES),
    "rtp_host": KeyDoc("IP", "local IP address the per-call RTP sockets bind to (the family of the routes: :: for "
                             "IPv6)"),
    "rtp_ports": KeyDoc("LOW-HIGH", "range of the per-call UDP ports: RTP on an even port, RTCP on the next "
                                    "(RFC 3550 §11)"),
    "udp_rcvbuf_bytes": KeyDoc("BYTES", "SO_RCVBUF of each RTP socket (the kernel drops silently past it; "
                                        "net.core.rmem_max caps it)"),
    "mtu_budget": KeyDoc("BYTES", "largest RTP payload (160-65000); the packet duration is chosen to fit"),
    "max_frame_bytes": KeyDoc("BYTES", "largest websocket message accepted, reassembled fragments included "
                                       "(close 1009 past it)"),
    "connect_timeout": KeyDoc("SECONDS", "time a new websocket has to send its connect command (close 1008)"),
    "heartbeat_interval": KeyDoc("SECONDS", "time without audio to Sinch before a heartbeat command is sent (Sinch "
                                            "gives up after 60 s)"),
    "max_call_duration": KeyDoc("SECONDS", "then the call is closed with 1000; 0 = unlimited"),
    "audio_speed_limit": KeyDoc("TIMES", "times real time a call may send audio; faster is dropped; 0 = off, else "
                                         "at least 1"),
    "audio_burst_seconds": KeyDoc("SECONDS", "audio a call may send ahead of that pace (catching up after a "
                                             "network stall)"),
    "jitter_max_wait": KeyDoc("SECONDS", "time the return path waits for a missing RTP packet before concealing it"),
    "return_queue_seconds": KeyDoc("SECONDS", "audio waiting to be paced back to Sinch, at most; the oldest is "
                                              "dropped past it"),
    "pacing_lead_frames": KeyDoc("FRAMES", "20 ms frames the return path may run ahead of real time (1-50)"),
    "rtcp_interval": KeyDoc("SECONDS", "time between RTCP sender reports (RFC 3550 §6.2)"),
    "tick_interval": KeyDoc("SECONDS", "the worker's timer for pacing, heartbeats and deadlines (0.005-0.02)"),
    "log_level": KeyDoc("LEVEL", "the least severe log lines written"),
    "call_events_url": KeyDoc("URL", "an http(s):// URL that gets a JSON POST when each call starts and ends; "
                                     "empty = off"),
    "call_events_timeout": KeyDoc("SECONDS", "time each call-event POST may take"),
    "call_started_wait": KeyDoc("SECONDS", "hold each call's RTP until the receiver has answered its call.started "
                                           "(so a media service knows the call's SSRC, port and headers before "
                                           "its audio), at most this long (0-5); 0 = off, RTP at once"),
    "allocate_url": KeyDoc("URL", "an http(s):// URL asked once per call, with its call id, route and headers, "
                                  "for the HOST:PORT its RTP goes to; empty = off (the route's own targets)"),
    "allocate_timeout": KeyDoc("SECONDS", "time the allocation webhook may take (at most 5); past it, an error or "
                                          "an answer that is no HOST:PORT, the call goes to the route's targets"),
    "route_resolve_interval": KeyDoc("SECONDS", "how often the DNS names of route targets are resolved again "
                                                "(besides at start and on SIGHUP); 0 = never again"),
    "target_probe_interval": KeyDoc("SECONDS", "how often a route target marked down is probed (an empty RTCP "
                                               "receiver report to its RTCP port); no ICMP port unreachable back "
                                               "marks it up"),
    "workers": KeyDoc("N", "worker processes (at most 128); 0 = one per CPU this process may use: its CPU "
                           "affinity, cut to its cgroup's CPU quota (a container's CPU limit), rounded down"),
    "accept": KeyDoc("MODE", "shared: one accept queue for all workers; reuseport: one SO_REUSEPORT socket and "
                             "accept queue per worker"),
    "metrics_listen": KeyDoc("HOST:PORT", "the control process's /metrics, /healthz and /readyz (keep it internal)"),
    "drain_timeout": KeyDoc("SECONDS", "on SIGTERM, how long calls in progress may go on before they are closed "
                                       "with 1001"),
    "reload_drain_timeout": KeyDoc("SECONDS", "after a reload (SIGHUP, SIGTTOU), how long retiring workers wait for "
                                              "their calls before closing them with 1001; by default 4 hours, the "
                                              "longest call Sinch allows, so a reload never cuts a call"),
    "worker_timeout": KeyDoc("SECONDS", "a worker whose event loop has sent no heartbeat for this long is killed "
                                        "and replaced"),
    "max_calls": KeyDoc("CALLS", "calls per worker; a connect over it is answered busy; 0 = no cap"),
    "max_cpu_percent": KeyDoc("PERCENT", "answer busy while a worker used more CPU than this over the last second "
                                         "(0-100); 0 = off"),
    "callback_listen": KeyDoc("HOST:PORT", "Sinch's callbacks, POST /sinch/callback (faces Sinch; keep "
                                           "metrics_listen internal)"),
    "tls_cert": KeyDoc("FILE", "PEM certificate chain: the gateway terminates TLS, listen speaks wss:// and "
                               "callback_listen https:// (metrics_listen stays plain); read again on SIGHUP"),
    "tls_key": KeyDoc("FILE", "PEM private key of tls_cert"),
    "public_url": KeyDoc("URL", "wss://HOST[:PORT] (or ws://) the stream endpoints in SVAML start with: set it "
                                "whenever Sinch's callbacks reach this gateway; empty = ws:// (wss:// with "
                                "tls_cert) + listen (127.0.0.1 for a wildcard address)"),
    "sinch_application_key": KeyDoc("KEY", "the Sinch application's key"),
    "sinch_application_secret": KeyDoc("SECRET", "the Sinch application's secret, base64 as Sinch issues it; "
                                                 "turns on callback verification"),
    "sinch_api_base": KeyDoc("URL", "Sinch's Voice API (1), for gateway callout stream and conference"),
    "sinch_service_id": KeyDoc("ID", "the Voice API 2.0 service whose webhooks come here (also serviceId of gateway "
                                     "callout v2)"),
    "sinch_service_secret": KeyDoc("SECRET", "the service's secret, base64 as Sinch issues it; turns on verification "
                                             "of Voice API 2.0 webhooks (Authorization: service ...)"),
    "sinch_project_id": KeyDoc("ID", "the Sinch project, for gateway callout v2"),
    "sinch_key_id": KeyDoc("ID", "the project's access key, for gateway callout v2"),
    "sinch_key_secret": KeyDoc("SECRET", "the access key's secret, for gateway callout v2"),
    "sinch_voice_region": KeyDoc("REGION", "where gateway callout v2 sends calls: https://REGION.voice.api.sinch.com, "
                                           "global = https://voice.api.sinch.com"),
    "sinch_voice_api_base": KeyDoc("URL", "Voice API 2.0's base URL, in place of the region's (a proxy, a test "
                                          "stand-in)"),
    "sinch_voice_auth": KeyDoc("AUTH", "how gateway callout v2 authenticates: oauth2 (a bearer token from "
                                       "sinch_auth_url, cached until it expires) or basic (the access key itself; "
                                       "Sinch says: for testing only)"),
    "sinch_auth_url": KeyDoc("URL", "Sinch's OAuth2 token endpoint (client credentials)"),
    "verify_callbacks": KeyDoc("BOOL", "check callback signatures whenever an application or service secret is "
                                       "configured"),
    "callback_max_skew": KeyDoc("SECONDS", "how far a callback's x-timestamp may be off; a signed callback is "
                                           "accepted once within it"),
    "callback_keepalive_timeout": KeyDoc("SECONDS", "time a connection on callback_listen may wait for a request "
                                                    "(new, or after an answer); behind a load balancer that pools "
                                                    "connections, longer than its idle timeout"),
    "callback_max_connections": KeyDoc("N", "open connections on callback_listen; past it the one that has waited "
                                            "longest for a request is closed"),
    "token_key": KeyDoc("KEY", "signs stream URLs (16+ characters); when set, every stream needs a valid token; "
                               "needs sinch_application_secret or sinch_service_secret, unless verify_callbacks = "
                               "false says you accept tokens for unsigned callbacks"),
    "token_key_previous": KeyDoc("KEY", "a key tokens may still be signed with (never used to sign) while a "
                                        "token_key rotation settles; only with a token_key, 16+ characters"),
    "token_ttl": KeyDoc("SECONDS", "how long a stream token is valid, from the ICE answer to Sinch's websocket"),
    "ice_rules": KeyDoc("TABLES", "TOML [[ice_rules]] tables: which route an ICE is connected to (first match "
                                  "wins)"),
    "ice_no_match": KeyDoc("ANSWER", "with rules and none matching: hangup, or connect to ice_route"),
    "ice_route": KeyDoc("ROUTE", "what an ICE is connected to without a rule; empty = the first route (or echo)"),
    "ice_rate": KeyDoc("HZ", "the sample rate of an ICE connected without a rule", SINCH_RATES),
    "replay_store": KeyDoc("URL", "where used stream tokens and signed callbacks are remembered: local (this "
                                  "machine's shared memory), or redis://HOST:PORT/DB (rediss:// for TLS) that a "
                                  "fleet shares, Redis or Valkey 7.0+; a credential (_FILE), its password masked"),
    "replay_store_unavailable": KeyDoc("POLICY", "when the replay store does not answer: fail_closed refuses new "
                                                 "calls (503), fail_open accepts them unchecked; both counted"),
    "replay_store_timeout": KeyDoc("SECONDS", "how long a call setup waits for the replay store before "
                                              "replay_store_unavailable applies"),
    "instance_id": KeyDoc("NAME", "names this instance in the stream tokens it issues; other instances refuse "
                                  "them (403), for fleets whose instances each have a public_url; empty = off"),
}
