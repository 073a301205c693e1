"""Limits the host cannot enforce are dropped with dockerd's warnings (``--cpus`` refused);
the host's cgroup support as the runtime reads it from a fake cgroup root."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.containers.limits import discard_unsupported
from hafen.containers.model import HostConfig
from hafen.errors import InvalidArgument
from hafen.runtime.cgroups import Support, host_support

THROTTLE = [{"Path": "/dev/sda", "Rate": 1024}]


def _limited() -> HostConfig:
    return HostConfig(
        memory=64 << 20, memory_swap=128 << 20, memory_reservation=32 << 20,
        oom_kill_disable=True, pids_limit=50, cpu_shares=512, cpu_period=100000,
        cpu_quota=50000, cpuset_cpus="0", blkio_weight=300, blkio_device_read_bps=THROTTLE,
    )  # fmt: skip


def test_everything_supported_keeps_everything() -> None:
    hc = _limited()
    all_ = {"memory", "pids", "cpu", "cpuset", "io"}
    assert discard_unsupported(hc, Support(2, all_, swap=True)) == []
    assert hc == _limited()


def test_nothing_supported_drops_each_limit_with_dockerds_warning() -> None:
    hc = _limited()
    warnings = discard_unsupported(hc, Support(2, {"hugetlb"}, swap=False))
    assert warnings == [
        "Your kernel does not support memory limit capabilities or the cgroup is not "
        "mounted. Limitation discarded.",
        "Your kernel does not support memory soft limit capabilities or the cgroup is "
        "not mounted. Limitation discarded.",
        "Your kernel does not support OomKillDisable. OomKillDisable discarded.",
        "Your kernel does not support PIDs limit capabilities or the cgroup is not "
        "mounted. PIDs limit discarded.",
        "Your kernel does not support CPU shares or the cgroup is not mounted. Shares discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU period discarded.",
        "Your kernel does not support CPU CFS scheduler. CPU quota discarded.",
        "Your kernel does not support cpuset or the cgroup is not mounted. Cpuset discarded.",
        "Your kernel does not support Block I/O weight or the cgroup is not mounted. "
        "Weight discarded.",
        "Your kernel does not support BPS Block I/O read limit or the cgroup is not "
        "mounted. BPS Block I/O read limit discarded.",
    ]
    assert (hc.memory, hc.memory_swap, hc.memory_reservation) == (0, 0, 0)
    assert (hc.pids_limit, hc.cpu_shares, hc.cpu_quota, hc.cpuset_cpus) == (None, 0, 0, "")
    assert hc.blkio_device_read_bps == [] and not hc.oom_kill_disable


def test_no_swap_accounting_limits_memory_without_swap() -> None:
    hc = HostConfig(memory=64 << 20, memory_swap=128 << 20)
    warnings = discard_unsupported(hc, Support(1, {"memory"}, swap=False))
    assert warnings == [
        "Your kernel does not support swap limit capabilities or the cgroup is not "
        "mounted. Memory limited without swap."
    ]
    assert (hc.memory, hc.memory_swap) == (64 << 20, -1)


def test_cpus_without_cpu_controller_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="NanoCPUs can not be set"):
        discard_unsupported(HostConfig(nano_cpus=500_000_000), Support(2, set(), swap=False))


def test_host_support_on_v1_and_v2_roots(tmp_path: Path) -> None:
    v1 = tmp_path / "v1"
    for name in ("memory", "pids", "cpu,cpuacct", "unified"):
        (v1 / name).mkdir(parents=True)
        (v1 / name / "cgroup.procs").write_text("")
    info = tmp_path / "mountinfo"
    info.write_text(f"1 0 0:1 / {v1} rw - tmpfs tmpfs rw\n")
    s = host_support(str(v1), str(info))
    assert (s.version, s.memory, s.pids, s.cpu, s.cpuset, s.swap) == (
        1,
        True,
        True,
        True,
        False,
        False,
    )
    (v1 / "memory" / "memory.memsw.limit_in_bytes").write_text("")
    assert host_support(str(v1), str(info)).swap
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpu io hugetlb\n")
    info.write_text(f"1 0 0:1 / {v2} rw - cgroup2 cgroup2 rw\n")
    s = host_support(str(v2), str(info))
    assert (s.version, s.memory, s.pids, s.cpu, s.blkio, s.swap) == (
        2,
        False,
        False,
        True,
        True,
        False,
    )
