"""Several load generators against one gateway, started together with --start-at, then merged: the merged
report counts every generator's calls and frames (loadtest/README.md, "Several load generators")."""

from __future__ import annotations

import json
import subprocess
import sys
import time

from tests.gateway_process import GatewayProcess

CALLS = 3


def test_two_generators_start_together_and_merge(tmp_path):
    gateway = GatewayProcess(workers=2).start()
    start_at = f"{time.time() + 2:.3f}"
    try:
        generators = [
            subprocess.Popen(
                [sys.executable, "-m", "loadtest", "run", "--url", f"{gateway.url}/stream/echo", "--calls", str(CALLS),
                 "--duration", "2", "--rate", "8000", "--start-at", start_at, "--no-plots", "--out",
                 str(tmp_path / f"lg{index}")], stdout=subprocess.DEVNULL)
            for index in (1, 2)
        ]
        assert [generator.wait(timeout=60) for generator in generators] == [0, 0]
    finally:
        gateway.stop()
    subprocess.run([sys.executable, "-m", "loadtest", "merge", str(tmp_path / "lg1"), str(tmp_path / "lg2"),
                    "--no-plots", "--out", str(tmp_path / "all")], check=True, timeout=60, stdout=subprocess.DEVNULL)
    parts = [json.loads((tmp_path / name / "report.json").read_text()) for name in ("lg1", "lg2")]
    merged = json.loads((tmp_path / "all" / "report.json").read_text())
    assert merged["calls"]["attempted"] == merged["calls"]["answered"] == 2 * CALLS
    assert merged["frames"]["sent"] == sum(part["frames"]["sent"] for part in parts)
    assert merged["frames"]["received"] == sum(part["frames"]["received"] for part in parts)
    assert merged["loss_ratio"] == 0
    assert len(gateway.wait_count("call.answered", 2 * CALLS)) == 2 * CALLS
