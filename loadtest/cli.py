"""`python -m loadtest run|media|relay|merge|compare|bench|...`: argument parsing and exit statuses; each
command lives in its module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from typing import Any

from loadtest.bench.pinning import cpu_list
from loadtest.media.simulator import KINDS
from loadtest.shared.scenario import ScenarioError, load_scenario
from loadtest.shared.thresholds import THRESHOLDS
from loadtest.shared.udp import parse_host_port

EXIT_OK = 0
EXIT_FAILED = 1  # run: a threshold did not hold; compare: a figure regressed
EXIT_USAGE = 2  # bad flags, scenario or input files (argparse's own status)
EXIT_NOT_RUN = 3  # the run could not start at all: a simulator could not bind, a generator did not come up
EXIT_INTERRUPTED = 130  # Ctrl-C or SIGTERM: 128 + SIGINT, as shells report it
EXIT_STATUSES = (f"exit status: {EXIT_OK} every threshold held; {EXIT_FAILED} a threshold did not hold (without "
                 f"min_answered: no call was answered); {EXIT_USAGE} bad flags or scenario; {EXIT_NOT_RUN} could not "
                 f"run at all; {EXIT_INTERRUPTED} interrupted (Ctrl-C, SIGTERM)")
# Flags of `run` that override the scenario file's keys (None = not given).
SCENARIO_FLAGS = {
    "url": (str, "ws://HOST:PORT/stream/ROUTE"), "calls": (int, "long calls held for the whole run"),
    "duration": (float, "seconds of load"), "ramp": (float, "long calls started per second (0: at once)"),
    "churn_rate": (float, "short calls started per second"), "media": (str, "|".join(("none", *KINDS))),
    "media_listen": (str, "HOST:PORT[,HOST:PORT...] of the media simulators (the gateway's route's targets)"),
    "kill_target_at": (float, "seconds into the run: stop the first media target (needs two)"),
    "restart_target_at": (float, "seconds into the run: start it again"),
    "metrics_url": (str, "the gateway's http://HOST:PORT/metrics: read its failovers"),
    "media_hangup": (float, "fraction of calls the media side ends with RTCP BYE"),
    "procs": (int, "load generator processes"), "phases": (int, "timer slots per 20 ms"),
    "seed": (int, "random seed of the call plan"), "connect_timeout": (float, "seconds for upgrade + answer"),
    "drain": (float, "seconds to wait for the echo after the caller stops"),
    "gateway_pid": (int, "measure CPU/RSS of this pid and its descendants"),
    "progress_interval": (float, "seconds between progress lines"),
}


def _rates(value: str) -> int | list[int]:
    rates = [int(part) for part in value.split(",")]
    return rates[0] if len(rates) == 1 else rates


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m loadtest", description="Load tests for the stream gateway")
    commands = parser.add_subparsers(dest="command", required=True)
    _add_run_options(commands.add_parser("run", help="drive calls, write DIR/report.json, report.md and plots",
                                         epilog=EXIT_STATUSES))
    _add_media_options(commands.add_parser("media", help="run a media simulator (downstream RTP service)"))
    _add_relay_options(commands.add_parser("relay", help="lossy/delaying UDP relay for RTP+RTCP"))
    _add_merge_options(commands.add_parser("merge", help="combine several runs' report.json into one"))
    _add_compare_options(commands.add_parser(
        "compare", help="the change of every figure from report A to report B",
        epilog=f"exit status: {EXIT_OK} no regression; {EXIT_FAILED} a figure regressed; {EXIT_USAGE} bad input"))
    _add_bench_options(commands.add_parser("bench", help="the gateway against the naive baseline, in alternation"))
    _add_setup_bench_options(commands.add_parser(
        "setup-bench", help="call-setup churn: shared accept queue against SO_REUSEPORT"))
    commands.add_parser("session-bench", help="the gateway's per-frame Python cost, without sockets")
    return parser


def _add_run_options(run: argparse.ArgumentParser) -> None:
    run.add_argument("--scenario", metavar="FILE", help="TOML scenario; flags given override its keys")
    run.add_argument("--out", required=True, metavar="DIR")
    run.add_argument("--sample-rate", "--rate", dest="rate", type=_rates, metavar="HZ",
                     help="audio sample rate of each call's PCM (8000, 16000, 24000, 44100, 48000, 96000), or a "
                          "comma list cycled call by call; NOT calls per second (see --ramp, --churn-rate)")
    for key, (kind, text) in SCENARIO_FLAGS.items():
        run.add_argument("--" + key.replace("_", "-"), dest=key, type=kind, help=text)
    limits = run.add_argument_group("thresholds", "pass/fail criteria; any that does not hold fails the run "
                                                  "(also a [thresholds] table in the scenario file)")
    for name, threshold in THRESHOLDS.items():
        limits.add_argument("--" + name.replace("_", "-"), dest=name, type=float, metavar="LIMIT",
                            help=threshold.meaning)
    run.add_argument("--churn-mean", type=float, help="mean churn call duration, seconds")
    run.add_argument("--start-at", type=float, metavar="UNIX_TIME", help="start together with other generators")
    run.add_argument("--no-plots", action="store_true")


def _add_media_options(media: argparse.ArgumentParser) -> None:
    media.add_argument("kind", choices=KINDS)
    media.add_argument("--listen", default="127.0.0.1:40100", help="HOST:PORT, even port (RTCP on the next)")
    media.add_argument("--duration", type=float, default=0.0, help="seconds, 0 = until SIGINT/SIGTERM")
    media.add_argument("--interval", type=float, default=5.0, help="seconds between status lines")


def _add_relay_options(relay: argparse.ArgumentParser) -> None:
    relay.add_argument("--listen", required=True, help="HOST:PORT (even) the gateway's route points to")
    relay.add_argument("--to", required=True, help="HOST:PORT of the media service")
    relay.add_argument("--drop-every", type=int, default=0, help="drop every Nth RTP packet (per direction)")
    relay.add_argument("--delay-ms", type=float, default=0.0, help="delay every packet (each direction)")
    relay.add_argument("--direction", choices=("up", "down", "both"), default="both", help="where to drop")
    relay.add_argument("--duration", type=float, default=0.0, help="seconds, 0 = until SIGINT/SIGTERM")
    relay.add_argument("--interval", type=float, default=5.0)


def _add_merge_options(merge: argparse.ArgumentParser) -> None:
    merge.add_argument("dirs", nargs="+", metavar="DIR")
    merge.add_argument("--out", required=True, metavar="DIR")
    merge.add_argument("--no-plots", action="store_true")


def _add_compare_options(compare: argparse.ArgumentParser) -> None:
    compare.add_argument("before", metavar="A", help="the baseline: a report.json or its directory")
    compare.add_argument("after", metavar="B", help="the run to judge: a report.json or its directory")
    compare.add_argument("--tolerance", type=float, default=0.10, metavar="FRACTION",
                         help="a figure that got worse by more than this share is a regression (default 0.10)")


def _add_bench_options(bench: argparse.ArgumentParser) -> None:
    bench.add_argument("--calls", type=int, default=50)
    bench.add_argument("--sample-rate", "--rate", dest="rate", type=int, default=16000, metavar="HZ",
                       help="audio sample rate of every call (not calls per second)")
    bench.add_argument("--rounds", type=int, default=2)
    bench.add_argument("--seconds", type=float, default=8.0, help="seconds of load per round and side")
    bench.add_argument("--ramp", type=float, default=100.0, help="calls started per second")
    bench.add_argument("--procs", type=int, default=1, help="load generator processes")
    bench.add_argument("--workers", type=int, default=1,
                       help="the gateway's worker processes (the baselines are one process each)")
    bench.add_argument("--subject-cpus", metavar="LIST", type=cpu_list,
                       help="run each subject on these CPUs (e.g. 1 or 2-3) and the load generator and the echo on "
                            "the others: steadier figures on a small machine")
    bench.add_argument("--out", metavar="DIR", help="also write bench.json, bench.md and each round's report")
    bench.add_argument("--profile", metavar="DIR", help="py-spy the gateway during its first round (needs py-spy)")


def _add_setup_bench_options(setup: argparse.ArgumentParser) -> None:
    setup.add_argument("--workers", type=int, default=2)
    setup.add_argument("--clients", type=int, default=16, help="concurrent clients, each one call at a time")
    setup.add_argument("--seconds", type=float, default=8.0)
    setup.add_argument("--rounds", type=int, default=3)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return COMMANDS[args.command](args)
    except (ScenarioError, ValueError, RuntimeError, OSError) as exc:
        print(f"loadtest: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("loadtest: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args: argparse.Namespace) -> int:
    from loadtest.report.build import build_report
    from loadtest.report.output import prepare_out_dir, write_outputs
    from loadtest.runner.run import run_load

    overrides = {key: getattr(args, key) for key in SCENARIO_FLAGS}
    overrides["rate"] = args.rate
    overrides["thresholds"] = {name: getattr(args, name) for name in THRESHOLDS}
    if args.churn_mean is not None:
        overrides["churn_duration"] = {"mean": args.churn_mean}
    scenario = load_scenario(args.scenario, overrides)
    try:
        out = prepare_out_dir(args.out)
        result = run_load(scenario, args.start_at)
    except (RuntimeError, OSError) as exc:  # a simulator or generator could not start; the out dir is not writable
        print(f"loadtest: could not run: {exc}", file=sys.stderr)
        return EXIT_NOT_RUN
    report = build_report(result)
    write_outputs(report, out, not args.no_plots)
    calls, rtt = report["calls"], report["latency_ms"]["round_trip"]
    print(f"calls {calls['answered']}/{calls['attempted']} answered, {calls['failed']} failed, "
          f"{calls['interrupted']} interrupted; loss {report['loss_ratio']} ({report['loss_method']}); round trip "
          f"p50 {rtt['p50']} p99 {rtt['p99']} max {rtt['max']} ms; report in {out}")
    for warning in report["warnings"]:
        print(f"warning: {warning}")
    status = _judged(report)
    if report["interrupted"]:
        print("interrupted: the figures cover the run until then; calls cut short count as interrupted")
        return EXIT_INTERRUPTED
    return status


def _judged(report: dict[str, Any]) -> int:
    """Print the thresholds' verdicts; the exit status they make."""
    from loadtest.shared.thresholds import verdict_line

    for verdict in report["thresholds"]:
        print(verdict_line(verdict))
    return EXIT_OK if all(verdict["held"] for verdict in report["thresholds"]) else EXIT_FAILED


def _media(args: argparse.Namespace) -> int:
    from loadtest.media.standalone import serve_media

    host, port = parse_host_port(args.listen)
    return serve_media(args.kind, host, port, args.duration, args.interval)


def _relay(args: argparse.Namespace) -> int:
    from loadtest.media.standalone import serve_relay

    return serve_relay(parse_host_port(args.listen), parse_host_port(args.to), args.drop_every, args.delay_ms,
                       args.direction, args.duration, args.interval)


def _merge(args: argparse.Namespace) -> int:
    from loadtest.report.merge import merge_reports
    from loadtest.report.output import read_report, write_outputs

    merged = merge_reports([read_report(d) for d in args.dirs])
    write_outputs(merged, args.out, not args.no_plots)
    return _judged(merged)


def _compare(args: argparse.Namespace) -> int:
    from loadtest.report.compare import compare, render
    from loadtest.report.output import read_report

    changes = compare(read_report(args.before), read_report(args.after), args.tolerance)
    print(render(changes, args.tolerance))
    return EXIT_FAILED if any(change.regression for change in changes) else EXIT_OK


def _bench(args: argparse.Namespace) -> int:
    from loadtest.bench.bridge_bench import run_bench

    return run_bench(args)


def _setup_bench(args: argparse.Namespace) -> int:
    from loadtest.bench.setup_bench import run_setup_bench

    return run_setup_bench(args.workers, args.clients, args.seconds, args.rounds)


def _session_bench(args: argparse.Namespace) -> int:
    from loadtest.bench.session_bench import run_session_bench

    return run_session_bench()


# Each command's handler; each imports its modules when it runs, so a command loads only what it uses.
COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "run": _run, "media": _media, "relay": _relay, "merge": _merge, "compare": _compare, "bench": _bench,
    "setup-bench": _setup_bench, "session-bench": _session_bench,
}
