"""workers = 0: the CPUs the cgroup's quota allows, not the host's cores (cgroup files written to a folder)."""

import os

import pytest

from gateway.shared.cpus import cgroup_cpu_quota, usable_cpus


def cgroups(tmp_path, membership: str, files: dict[str, str]):
    (tmp_path / "proc_cgroup").write_text(membership)
    for name, text in files.items():
        path = tmp_path / "fs" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path / "fs", tmp_path / "proc_cgroup"


def test_v2_cpu_max_of_the_process_cgroup_and_its_ancestors_the_least(tmp_path):
    root, proc = cgroups(tmp_path, "0::/kubepods/pod1/gateway\n", {
        "kubepods/pod1/gateway/cpu.max": "max 100000\n",  # no quota of its own
        "kubepods/pod1/cpu.max": "150000 100000\n",  # the pod's limit: 1.5 CPUs
        "kubepods/cpu.max": "max 100000\n",
    })
    assert cgroup_cpu_quota(root, proc) == 1.5
    assert usable_cpus(root, proc) == 1  # rounded down: a second worker would only be throttled


def test_v2_in_a_container_namespace_reads_its_root(tmp_path):
    root, proc = cgroups(tmp_path, "0::/\n", {"cpu.max": "50000 100000\n"})
    assert cgroup_cpu_quota(root, proc) == 0.5
    assert usable_cpus(root, proc) == 1  # at least one worker


def test_v1_cfs_quota(tmp_path):
    root, proc = cgroups(tmp_path, "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n", {
        "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "200000\n",
        "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000\n",
        "cpu,cpuacct/cpu.cfs_quota_us": "-1\n",
        "cpu,cpuacct/cpu.cfs_period_us": "100000\n",
    })
    assert cgroup_cpu_quota(root, proc) == 2.0


@pytest.mark.parametrize("membership", ["0::/\n", "1:cpu:/\n"])
def test_without_a_quota_the_affinity_counts(tmp_path, membership):
    root, proc = cgroups(tmp_path, membership, {"cpu.max": "max 100000\n", "cpu/cpu.cfs_quota_us": "-1\n",
                                                "cpu/cpu.cfs_period_us": "100000\n"})
    assert cgroup_cpu_quota(root, proc) is None
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))


def test_a_quota_above_the_affinity_is_cut_to_it(tmp_path):
    root, proc = cgroups(tmp_path, "0::/\n", {"cpu.max": "6400000 100000\n"})  # 64 CPUs
    assert usable_cpus(root, proc) == len(os.sched_getaffinity(0))
