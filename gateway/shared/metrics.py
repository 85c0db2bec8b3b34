"""Every metric, declared once. Prometheus naming: `_total` counters, `_seconds`, `_bytes`.

All processes write to prometheus-client's multiprocess directory (PROMETHEUS_MULTIPROC_DIR, set by the
supervisor before it forks); the control process aggregates them for /metrics. Gauges use `live*` modes so a
dead worker's gauges vanish, while its counter files stay and counters never go backwards.
The data path never touches these per frame: calls keep plain integer counters that the worker flushes.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

from gateway.shared.build import data_plane, package_version

LATENCY_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25)
LAG_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
DURATION_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 14400)
JITTER_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1)

# ---- calls -------------------------------------------------------------------------------------------
CALLS_ACTIVE = Gauge("gateway_calls_active", "Calls in progress (answered), all workers", ["route"],
                     multiprocess_mode="livesum")
# Per-worker series carry the worker's slot (stable across restarts) besides the pid that liveall adds.
WORKER_CALLS_ACTIVE = Gauge("gateway_worker_calls_active", "Calls in progress on each worker", ["slot"],
                            multiprocess_mode="liveall")
# What each worker can take (max_calls, cut to what its open-files limit and its share of rtp_ports allow; 0 once
# it drains): the sum is the gateway's capacity, against which gateway_calls_active is its utilisation.
CALLS_CAPACITY = Gauge("gateway_calls_capacity", "Calls the gateway can take: max_calls x workers, or what the "
                       "open-files limit and rtp_ports allow when lower", multiprocess_mode="livesum")
CALLS = Counter("gateway_calls_total", "Connect commands by outcome: answer, busy, reject", ["route", "outcome"])
UPGRADES_DECLINED = Counter("gateway_upgrades_declined_total", "Websocket upgrades refused, by reason",
                            ["reason"])
CALL_DURATION = Histogram("gateway_call_duration_seconds", "Answered call duration", ["route"],
                          buckets=DURATION_BUCKETS)
WS_CLOSES = Counter("gateway_ws_closes_total", "Websocket closes by code and by who closed",
                    ["code", "initiator"])
CONNECTIONS_ABORTED = Counter("gateway_connections_aborted_total", "Websocket connections dropped without waiting "
                              "for what was queued: output_overflow (the peer stopped reading), close_timeout (no "
                              "close handshake, or no drain, within 2 s)", ["reason"])
COMMANDS_IGNORED = Counter("gateway_commands_ignored_total", "Text messages the gateway has no use for: well-formed "
                           "commands by name (unknown names as other), and not_a_command after the answer",
                           ["command"])

# ---- websocket and RTP traffic -----------------------------------------------------------------------
WS_FRAMES = Counter("gateway_ws_frames_total", "Websocket messages", ["route", "direction"])
WS_BYTES = Counter("gateway_ws_bytes_total", "Websocket message payload bytes", ["route", "direction"])
RTP_PACKETS = Counter("gateway_rtp_packets_total", "RTP packets", ["route", "direction"])
RTP_BYTES = Counter("gateway_rtp_bytes_total", "RTP bytes (headers included)", ["route", "direction"])
RTP_LOST = Counter("gateway_rtp_lost_packets_total", "Return RTP packets declared lost (and concealed)", ["route"])
RTP_DROPPED = Counter("gateway_rtp_dropped_packets_total",
                      "Datagrams dropped: late, duplicate, unexpected_ssrc, too_short, ...", ["route", "reason"])
RTP_REORDERED = Counter("gateway_rtp_reordered_packets_total", "Return RTP packets that arrived out of order",
                        ["route"])
DTMF_DIGITS = Counter("gateway_dtmf_digits_total", "DTMF digits heard in callers' audio and sent on as RFC 4733 "
                      "telephone events (routes with the dtmf option)", ["route"])
RTP_JITTER = Histogram("gateway_rtp_jitter_seconds", "Return RTP interarrival jitter (RFC 3550 A.8), per call "
                       "sampled at each flush", ["route"], buckets=JITTER_BUCKETS)
UPSTREAM_LATENCY = Histogram("gateway_upstream_latency_seconds",
                             "Websocket frame receipt to RTP send (sampled frames)", buckets=LATENCY_BUCKETS)
RETURN_QUEUE = Gauge("gateway_return_queue_bytes", "Audio waiting to be paced back to Sinch",
                     multiprocess_mode="livesum")
RETURN_QUEUE_DROPPED = Counter("gateway_return_queue_dropped_bytes_total",
                               "Return audio dropped because the queue was over its cap (oldest first)", ["route"])
UPSTREAM_POLICED = Counter("gateway_upstream_policed_bytes_total", "Upstream audio dropped for coming faster than "
                           "audio_speed_limit times real time (beyond the audio_burst_seconds in hand)", ["route"])
# ---- media service pools (a route's targets) ----------------------------------------------------------
TARGET_CALLS = Gauge("gateway_target_calls", "Calls in progress on each target of a route", ["route", "target"],
                     multiprocess_mode="livesum")
# Each worker keeps its own view of a target's health: the lowest of them (0 while any worker has it down).
TARGET_UP = Gauge("gateway_target_up", "1 while new calls may go to a target, 0 while it is marked down",
                  ["route", "target"], multiprocess_mode="livemin")
TARGET_DOWN = Counter("gateway_target_down_total", "Times a target was marked down: unreachable (ICMP port "
                      "unreachable), no_rtp (no RTP back for the route's rtp_timeout)", ["route", "target", "reason"])
TARGET_FAILOVERS = Counter("gateway_target_failovers_total", "Calls moved off a target that went down, to another "
                           "target of the route", ["route", "target"])
TARGET_DOWN_REASONS = ("unreachable", "no_rtp")

ALLOCATIONS = Counter("gateway_allocations_total", "Calls whose target was asked of allocate_url: allocated (its "
                      "answer used), or the route's own targets after a timeout, an error or a bad_answer (no "
                      "HOST:PORT, or one that does not resolve), or abandoned (the call ended before the answer)",
                      ["route", "outcome"])
ALLOCATION_OUTCOMES = ("allocated", "timeout", "error", "bad_answer", "abandoned")

# rtp_ports is shared by every worker (and any other process) of the machine: read from /proc/net/udp, so each
# worker's latest reading is the machine's.
RTP_PORT_PAIRS_IN_USE = Gauge("gateway_rtp_port_pairs_in_use", "Port pairs of rtp_ports taken on this machine, by "
                              "any process", multiprocess_mode="livemostrecent")
RTP_PORT_PAIRS_FREE = Gauge("gateway_rtp_port_pairs_free", "Port pairs of rtp_ports free on this machine",
                            multiprocess_mode="livemostrecent")
UDP_RECEIVE_DROPS = Counter("gateway_udp_receive_drops_total",
                            "Datagrams the kernel dropped on full RTP socket receive buffers")

ACCEPTS_PAUSED = Counter("gateway_accepts_paused_total", "Times a worker out of descriptors (EMFILE/ENFILE) "
                         "paused accepting connections; it tries again when a call ends, or 0.25 s later")

INTERNAL_ERRORS = Counter("gateway_internal_errors_total", "Exceptions in the gateway's own code, caught where they "
                          "happened: the call concerned is closed with 1011, the worker goes on", ["where"])

CALL_EVENTS = Counter("gateway_call_events_total", "JSON call events posted to call_events_url: sent, failed, "
                      "dropped (too many in flight)", ["result"])

# ---- control plane -----------------------------------------------------------------------------------
CALLBACKS = Counter("gateway_callbacks_total", "Sinch callbacks answered, by event", ["event"])
CALLBACKS_REJECTED = Counter("gateway_callbacks_rejected_total",
                             "Callbacks refused: unsigned, forged, stale, wrong_key (another application key or "
                             "service id), malformed, replayed, bad body, replay_store_unavailable",
                             ["reason"])
CALLBACK_CONNECTIONS = Gauge("gateway_callback_connections", "Open connections on callback_listen",
                             multiprocess_mode="livesum")
CALLBACK_CONNECTIONS_DROPPED = Counter(
    "gateway_callback_connections_dropped_total", "Connections on callback_listen the gateway closed: idle_timeout "
    "(no request in callback_keepalive_timeout), request_timeout (a request not whole 5 s after its first byte), "
    "connection_limit (over callback_max_connections)", ["reason"])
CALLS_DISCONNECTED = Counter("gateway_calls_disconnected_total", "DiCE events by Sinch's reason and result",
                             ["reason", "result"])
# ---- a fleet's replay store (replay_store = redis://...) ----------------------------------------------------
REPLAY_STORE_UP = Gauge("gateway_replay_store_up", "1 while the replay store answers, 0 from a failed claim until a "
                        "probe reaches it again; the least over processes", ["process"], multiprocess_mode="livemin")
REPLAY_STORE_UNAVAILABLE = Counter(
    "gateway_replay_store_unavailable_total", "Claims the replay store did not answer, by what "
    "replay_store_unavailable did: refused (fail_closed: 503, or close 1013) or accepted (fail_open, unchecked)",
    ["process", "outcome"])
REPLAY_STORE_CLAIM = Histogram("gateway_replay_store_claim_seconds", "Time a claim in the replay store took "
                               "(one round trip: SET NX PXAT GET)", buckets=LATENCY_BUCKETS)
STREAM_AUTH_FAILED = Counter("gateway_stream_auth_failures_total",
                             "Stream upgrades refused for their token: missing, malformed, forged, expired, replayed",
                             ["reason"])

# ---- processes ---------------------------------------------------------------------------------------
LOOP_LAG = Histogram("gateway_event_loop_lag_seconds", "Lateness of the worker's timer tick",
                     buckets=LAG_BUCKETS)
WORKER_LOOP_LAG = Gauge("gateway_worker_event_loop_lag_seconds", "Largest tick lateness in the last second",
                        ["slot"], multiprocess_mode="liveall")
WORKER_CPU = Gauge("gateway_worker_cpu_seconds", "CPU time used by each worker process", ["slot"],
                   multiprocess_mode="liveall")
# prometheus-client's multiprocess mode exports no process_* metrics: each worker publishes its own.
WORKER_MEMORY = Gauge("gateway_worker_resident_memory_bytes", "Resident memory of each worker process", ["slot"],
                      multiprocess_mode="liveall")
WORKER_FDS = Gauge("gateway_worker_open_fds", "Open file descriptors of each worker process", ["slot"],
                   multiprocess_mode="liveall")
WORKER_RESTARTS = Counter("gateway_worker_restarts_total", "Workers replaced by the supervisor", ["reason"])
CONTROL_RESTARTS = Counter("gateway_control_restarts_total",
                           "Control processes (metrics, health, Sinch callbacks) replaced by the supervisor")
RELOADS = Counter("gateway_reloads_total", "SIGHUP reloads: applied (the new workers serve), refused (invalid "
                  "configuration), failed (the new workers could not boot; the old ones go on)", ["result"])
BUILD_INFO = Gauge("gateway_build_info", "1, labelled with the version and the data plane that runs: compiled "
                   "(Cython) or python", ["version", "data_plane"], multiprocess_mode="livemostrecent")
WORKERS = Gauge("gateway_workers", "Worker processes alive", multiprocess_mode="livemostrecent")
DRAINING = Gauge("gateway_draining", "1 while the gateway drains before stopping (SIGTERM, SIGINT)",
                 multiprocess_mode="livemostrecent")

# ---- label values known in advance ---------------------------------------------------------------------
# A labelled series appears at its first increment, so rate() would miss that first event; creating the known
# ones at zero when a process starts makes the first busy call, restart or drop visible.
OUTCOMES = ("answer", "busy", "reject")
DIRECTIONS = ("in", "out")
DECLINE_REASONS = ("not_found", "unknown_route", "bad_target", "bad_version", "draining", "bad_query", "no_rtp_port",
                   "no_fds", "auth", "replay_store_unavailable", "internal_error")
DROP_REASONS = ("late", "duplicate", "unexpected_ssrc", "unexpected_payload_type", "too_short",
                "after_hangup", "rtcp_bye_unknown_ssrc", "cleared", "rtcp_bad_app")
AUTH_FAILURES = ("missing_token", "malformed_token", "forged_token", "expired_token", "token_for_another_route",
                 "token_for_another_instance", "replayed_token")
REPLAY_STORE_OUTCOMES = ("refused", "accepted")
# Where an internal error can be caught (gateway_internal_errors_total{where}).
ERROR_SITES = ("websocket_frame", "datagram", "tick", "metrics", "call_end", "routing", "timer", "failover",
               "allocation")
RESTART_REASONS = ("killed", "exited", "stuck", "boot_failed")
RELOAD_RESULTS = ("applied", "refused", "failed")
# Voice API 1's events, then 2.0's as sinch-sdk-python 2.3 lists them (sinch_events/event_type.py), customEvent
# webhooks (call.webhook.NAME) and any other call.* event.
CALLBACK_EVENTS = ("ice", "ace", "dice", "pie", "notify",
                   "call.incoming", "call.answered", "call.busy", "call.rejected", "call.timeout", "call.hangup",
                   "call.failed", "call.amd.human", "call.amd.machine", "call.amd.beep", "call.amd.unknown",
                   "call.message.finished", "call.recording.finished", "call.recording.failed", "call.menu",
                   "call.webhook", "call.other")
CALLBACK_REJECTIONS = ("unsigned", "forged", "stale", "wrong_key", "malformed", "replayed", "malformed_json",
                       "missing_event", "unknown_event", "bad_ice", "bad_incoming", "replay_store_unavailable")
CALLBACK_CONNECTION_DROPS = ("idle_timeout", "request_timeout", "connection_limit")
# DiCE reason and result as Sinch documents them; anything else is `other`, so a caller cannot mint series.
DICE_REASONS = ("N/A", "TIMEOUT", "CALLERHANGUP", "CALLEEHANGUP", "BLOCKED", "MANAGERHANGUP", "NOCREDITPARTNER",
                "GENERALERROR", "CANCEL", "USERNOTFOUND", "CALLBACKERROR")
DICE_RESULTS = ("N/A", "ANSWERED", "BUSY", "NOANSWER", "FAILED")
# Websocket close codes RFC 6455 §7.4.1 defines or IANA registered; a peer's other codes count as `other`.
KNOWN_CLOSE_CODES = frozenset((*range(1000, 1016), 1005, 1006))


def create_worker_series(routes: list[str]) -> None:
    for route in routes:
        for outcome in OUTCOMES:
            CALLS.labels(route, outcome)
        CALL_DURATION.labels(route)
        CALLS_ACTIVE.labels(route)
        for direction in DIRECTIONS:
            for metric in (WS_FRAMES, WS_BYTES, RTP_PACKETS, RTP_BYTES):
                metric.labels(route, direction)
        for reason in DROP_REASONS:
            RTP_DROPPED.labels(route, reason)
        for metric in (RTP_LOST, RTP_REORDERED, RTP_JITTER, RETURN_QUEUE_DROPPED, UPSTREAM_POLICED, DTMF_DIGITS):
            metric.labels(route)
        for outcome in ALLOCATION_OUTCOMES:
            ALLOCATIONS.labels(route, outcome)
    for reason in DECLINE_REASONS:
        UPGRADES_DECLINED.labels(reason)
    for reason in AUTH_FAILURES:
        STREAM_AUTH_FAILED.labels(reason)
    for result in ("sent", "failed", "dropped"):
        CALL_EVENTS.labels(result)
    for reason in ("output_overflow", "close_timeout"):
        CONNECTIONS_ABORTED.labels(reason)
    for where in ERROR_SITES:
        INTERNAL_ERRORS.labels(where)
    create_replay_store_series("worker")


def create_replay_store_series(process: str) -> None:
    for outcome in REPLAY_STORE_OUTCOMES:
        REPLAY_STORE_UNAVAILABLE.labels(process, outcome)


def create_target_series(route: str, target: str) -> None:
    TARGET_CALLS.labels(route, target).set(0)
    TARGET_UP.labels(route, target).set(1)
    TARGET_FAILOVERS.labels(route, target)
    for reason in TARGET_DOWN_REASONS:
        TARGET_DOWN.labels(route, target, reason)


def create_supervisor_series() -> None:
    for reason in RESTART_REASONS:
        WORKER_RESTARTS.labels(reason)
    for result in RELOAD_RESULTS:
        RELOADS.labels(result)


def create_control_series() -> None:
    BUILD_INFO.labels(package_version(), data_plane()).set(1)
    for event in CALLBACK_EVENTS:
        CALLBACKS.labels(event)
    for reason in CALLBACK_REJECTIONS:
        CALLBACKS_REJECTED.labels(reason)
    for reason in CALLBACK_CONNECTION_DROPS:
        CALLBACK_CONNECTIONS_DROPPED.labels(reason)
    create_replay_store_series("control")
