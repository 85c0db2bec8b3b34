"""The host limits that bound capacity: the open-files limit raised in a real process started with a low one,
the receive buffer the kernel really grants, and the verdict and warnings built from them."""

import json
import resource
import subprocess
import sys

from gateway.shared import host_limits
from gateway.shared.config import Config
from gateway.shared.host_limits import (
    DESCRIPTOR_HEADROOM,
    LISTEN_BACKLOG,
    calls_for_descriptors,
    granted_receive_buffer,
    read_host_limits,
    read_sysctl,
    worker_capacity,
)

RAISE_AND_REPORT = (
    "import json, resource; from gateway.shared.host_limits import raise_open_files_limit; "
    "raised = raise_open_files_limit(); "
    "print(json.dumps([raised.soft_before, raised.soft, resource.getrlimit(resource.RLIMIT_NOFILE)[0]]))"
)


def started_with_open_files(soft: int, hard: int) -> list[int]:
    result = subprocess.run(
        [sys.executable, "-c", RAISE_AND_REPORT], capture_output=True, text=True, check=True, timeout=30,
        preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard)),
    )
    return json.loads(result.stdout)


def test_the_soft_open_files_limit_is_raised_to_the_hard_one():
    assert started_with_open_files(256, 4096) == [256, 4096, 4096]
    assert started_with_open_files(256, 256) == [256, 256, 256]


def test_calls_per_worker_are_what_the_limit_leaves_at_three_descriptors_each():
    assert calls_for_descriptors(256, 64) == 64
    assert calls_for_descriptors(1024, 64) == 320
    assert calls_for_descriptors(50, 64) == 0


def test_a_worker_takes_max_calls_within_its_descriptors_and_its_share_of_the_ports():
    ports = Config(rtp_ports="20000-20399")  # 200 pairs
    assert worker_capacity(ports, calls_by_descriptors=300, workers=2) == 100
    assert worker_capacity(Config(max_calls=50), calls_by_descriptors=300, workers=2) == 50
    assert worker_capacity(Config(max_calls=500), calls_by_descriptors=300, workers=2) == 300


def test_the_kernel_cuts_a_receive_buffer_to_rmem_max():
    rmem_max = read_sysctl("net/core/rmem_max")
    assert granted_receive_buffer(rmem_max // 2) == rmem_max // 2
    assert granted_receive_buffer(rmem_max * 2) == rmem_max


def test_the_report_warns_of_each_cut_with_its_fix(monkeypatch):
    rmem_max = read_sysctl("net/core/rmem_max")
    config = Config(udp_rcvbuf_bytes=rmem_max * 2, rtp_ports="20000-20009", max_calls=100, workers=2)
    real_sysctl = read_sysctl
    monkeypatch.setattr(host_limits, "read_sysctl",
                        lambda name: 128 if name == "net/core/somaxconn" else real_sysctl(name))
    limits = read_host_limits(config, open_files=(256, 256))
    warnings = {warning.limit: warning for warning in limits.warnings}
    assert set(warnings) == {"udp_receive_buffer", "listen_backlog", "rtp_ports", "open_files"}
    assert warnings["udp_receive_buffer"].fix == f"sysctl -w net.core.rmem_max={rmem_max * 2}"
    assert warnings["listen_backlog"].fix == f"sysctl -w net.core.somaxconn={LISTEN_BACKLOG}"
    assert "5 port pairs" in warnings["rtp_ports"].message
    reserve = limits.open_files["reserved_per_worker"]
    assert warnings["open_files"].fix.startswith(f"LimitNOFILE={100 * 3 + reserve}")
    assert limits.udp_receive_buffer["granted"] == rmem_max
    # 5 pairs shared by 2 workers bound it below max_calls and the 256 open files: 2 calls each.
    assert limits.capacity == {"workers": 2, "calls_per_worker": 2, "calls": 4, "bound_by": "RTP ports"}
    assert limits.verdict.startswith("4 calls: 2 workers x 2, bound by RTP ports; to fix: ")


def test_without_max_calls_the_open_files_bound_it():
    limits = read_host_limits(Config(workers=1), open_files=(1024, 1024))
    assert limits.capacity["bound_by"] == "open files"
    assert limits.capacity["calls"] == (1024 - limits.open_files["reserved_per_worker"]) // 3
    assert limits.open_files["reserved_per_worker"] >= DESCRIPTOR_HEADROOM
    assert limits.warnings == []
