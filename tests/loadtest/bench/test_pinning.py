"""`bench --subject-cpus`: the subjects run on the CPUs given, with every process they fork; the harness on the
others; a list that would leave the load generator no CPU is refused."""

import argparse
import os

import pytest

from loadtest.bench.pinning import cpu_list, pinned
from loadtest.bench.subjects import gateway
from tests.ports import free_port

CPUS = sorted(os.sched_getaffinity(0))


@pytest.mark.parametrize(("text", "cpus"), [("0", {0}), ("0-1", {0, 1}), ("0,2", {0, 2})])
def test_cpu_lists_are_read_as_taskset_writes_them(text, cpus, monkeypatch):
    monkeypatch.setattr(os, "sched_getaffinity", lambda _pid: {0, 1, 2, 3})
    assert cpu_list(text) == cpus


@pytest.mark.parametrize("text", ["x", "1-", "", ",".join(map(str, CPUS)), "99"])
def test_a_list_that_is_no_list_or_leaves_the_load_generator_nothing_is_refused(text):
    with pytest.raises(argparse.ArgumentTypeError, match=repr(text)):
        cpu_list(text)


@pytest.mark.skipif(len(CPUS) < 2, reason="pinning needs two CPUs")
def test_a_pinned_gateway_and_the_workers_it_forks_run_on_the_cpus_given():
    subject = gateway(free_port(), workers=2)
    subject.command = pinned(subject.command, frozenset(CPUS[-1:]))
    subject.keep_events = True
    subject.start()
    try:
        workers = {event["pid"] for event in subject.events if event.get("event") == "worker.listening"}
        assert workers  # the first one at least: start() returned on its line
        for pid in {subject.pid, *workers}:
            assert os.sched_getaffinity(pid) == set(CPUS[-1:])
    finally:
        subject.stop()
