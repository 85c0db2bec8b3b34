"""Call-setup churn: how fast the gateway's workers accept, answer and drop calls, with one shared accept
queue or one SO_REUSEPORT socket per worker (`--accept`). Clients loop upgrade -> connect -> answer -> close
as fast as they can; the two modes run in alternation, each on a fresh gateway, and the table gives call
setups a second, gateway CPU per setup (all its processes, from /proc), setup latency, and how evenly the
workers shared the calls (from the gateway's `call.answered` log lines)."""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time
from collections import Counter

import websockets

from loadtest.bench.subjects import Subject, free_tcp_port
from loadtest.shared.procstat import tree_usage

MODES = ("shared", "reuseport")


def gateway(accept: str, workers: int) -> Subject:
    port = free_tcp_port()
    command = [
        sys.executable, "-m", "gateway", "serve", "--listen", f"127.0.0.1:{port}", "--workers", str(workers),
        "--accept", accept, "--metrics-listen", f"127.0.0.1:{free_tcp_port()}",
        "--callback-listen", f"127.0.0.1:{free_tcp_port()}", "--rtp-host", "127.0.0.1",
    ]
    subject = Subject(f"gateway-{accept}", command, f"ws://127.0.0.1:{port}/stream/echo",
                      lambda event: event.get("event") == "supervisor.started", "stderr")
    subject.keep_events = True
    return subject


async def churn(url: str, clients: int, seconds: float) -> list[float]:
    """Setup latencies (upgrade start -> answer) of every call made."""
    latencies: list[float] = []
    stop = time.monotonic() + seconds

    async def client(index: int) -> None:
        count = 0
        while time.monotonic() < stop:
            started = time.perf_counter()
            async with websockets.connect(url, compression=None) as ws:
                await ws.send(json.dumps({"command": "connect", "callId": f"setup-{index}-{count}"}))
                if json.loads(await ws.recv()) != {"command": "answer"}:
                    raise RuntimeError("call not answered")
                latencies.append(time.perf_counter() - started)
            count += 1

    await asyncio.gather(*(client(index) for index in range(clients)))
    return latencies


def one_round(accept: str, workers: int, clients: int, seconds: float) -> dict:
    subject = gateway(accept, workers).start()
    try:
        asyncio.run(churn(subject.url, clients, 0.5))  # warm up: imports, first connections
        before = tree_usage(subject.pid)
        latencies = sorted(asyncio.run(churn(subject.url, clients, seconds)))
        after = tree_usage(subject.pid)
    finally:
        subject.stop()
    split = Counter(event["pid"] for event in subject.events if event.get("event") == "call.answered")
    return {
        "accept": accept,
        "setups_per_second": round(len(latencies) / seconds),
        "cpu_ms_per_setup": round((after.cpu_seconds - before.cpu_seconds) / len(latencies) * 1000, 3),
        "setup_p50_ms": round(latencies[len(latencies) // 2] * 1000, 2),
        "setup_p99_ms": round(latencies[int(len(latencies) * 0.99)] * 1000, 2),
        "busiest_worker_share": round(max(split.values()) / sum(split.values()), 3),
    }


def run_setup_bench(workers: int, clients: int, seconds: float, rounds: int) -> int:
    results = []
    for round_number in range(1, rounds + 1):
        for accept in MODES:
            result = one_round(accept, workers, clients, seconds)
            results.append(result)
            print(f"round {round_number} {json.dumps(result)}", flush=True)
    print(f"\n{workers} workers, {clients} clients, {seconds:g} s a round, {rounds} rounds (medians)\n")
    keys = [key for key in results[0] if key != "accept"]
    print("| accept | " + " | ".join(keys) + " |")
    print("|---|" + "---|" * len(keys))
    for accept in MODES:
        mine = [r for r in results if r["accept"] == accept]
        print(f"| {accept} | " + " | ".join(str(statistics.median(r[key] for r in mine)) for key in keys) + " |")
    return 0
