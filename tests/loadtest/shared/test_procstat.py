"""/proc readings of a real gateway's process tree (supervisor, control process, forked workers)."""

from loadtest.shared.procstat import tree_usage
from tests.gateway_process import GatewayProcess


def test_pss_of_forked_workers_counts_their_shared_pages_once():
    gateway = GatewayProcess(workers=2).start()
    try:
        usage = tree_usage(gateway.proc.pid)
    finally:
        gateway.stop()
    assert usage.processes >= 4  # supervisor, control process, two workers
    assert usage.pss_bytes is not None and usage.pss_bytes > 0
    # RSS counts the pages the workers inherited from the supervisor once in each; PSS divides them.
    assert usage.pss_bytes < 0.9 * usage.rss_bytes


def test_a_process_that_is_gone_has_no_usage():
    gateway = GatewayProcess().start()
    pid = gateway.proc.pid
    gateway.stop()
    assert tree_usage(pid) is None
