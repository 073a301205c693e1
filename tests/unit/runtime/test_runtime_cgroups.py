"""cgroup v1/v2 managers against a fake cgroup root: what is written to each file."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafen.errors import InvalidConfig, RuntimeFailure
from hafen.runtime import cgroups
from hafen.runtime.cgroups import (
    CgroupV1,
    CgroupV2,
    blkio_weight_to_io,
    open_manager,
    resolve_path,
    shares_to_weight,
)

V1_CONTROLLERS = ["memory", "pids", "cpu", "cpuset", "devices", "freezer"]


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    for name in V1_CONTROLLERS:
        d = root / name
        d.mkdir(parents=True)
        (d / "cgroup.procs").write_text("")
    (root / "cpuset" / "cpuset.cpus").write_text("0-3\n")
    (root / "cpuset" / "cpuset.mems").write_text("0\n")
    # The hybrid host's empty cgroup2 is not a v1 hierarchy.
    (root / "unified").mkdir()
    (root / "unified" / "cgroup.procs").write_text("")
    return root


@pytest.fixture
def v2_root(tmp_path: Path) -> Path:
    root = tmp_path / "unified"
    root.mkdir()
    (root / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def kernel_leaf(d: Path, controllers: str = "cpuset cpu io memory pids hugetlb") -> None:
    """What the kernel puts in a new v2 cgroup: the controllers its parent enabled."""
    (d / "cgroup.controllers").write_text(controllers + "\n")


def test_cgroups_path_resolution() -> None:
    assert resolve_path("/hafen/abc", "abc") == "/hafen/abc"
    assert resolve_path("hafen/abc", "abc") == "/hafen/abc"
    assert resolve_path("", "abc") == "/abc"
    with pytest.raises(InvalidConfig, match="systemd"):
        resolve_path("system.slice:hafen:abc", "abc")
    with pytest.raises(InvalidConfig):
        resolve_path("/", "abc")


def test_v1_creates_one_dir_per_hierarchy_and_skips_unified(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    assert sorted(mgr.paths()) == sorted(V1_CONTROLLERS)
    for name in V1_CONTROLLERS:
        assert (v1_root / name / "hafen" / "c1").is_dir()
    assert not (v1_root / "unified" / "hafen").exists()


def test_v1_new_cpuset_levels_inherit_cpus_and_mems(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    for level in ("hafen", "hafen/c1"):
        d = v1_root / "cpuset" / level
        assert (d / "cpuset.cpus").read_text() == "0-3"
        assert (d / "cpuset.mems").read_text() == "0"


def test_v1_resources_are_written(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    mem = v1_root / "memory" / "hafen" / "c1"
    (mem / "memory.memsw.limit_in_bytes").write_text("")  # swap accounting is on
    mgr.apply(
        {
            "memory": {"limit": 67108864, "swap": 134217728, "reservation": 33554432},
            "pids": {"limit": 12},
            "cpu": {"shares": 512, "quota": 50000, "period": 100000, "cpus": "0-1", "mems": "0"},
            "devices": [
                {"allow": False, "access": "rwm"},
                {"allow": True, "type": "c", "major": 1, "minor": 3, "access": "rwm"},
                {"allow": True, "type": "c", "major": 136, "access": "rwm"},
            ],
        }
    )
    assert (mem / "memory.limit_in_bytes").read_text() == "67108864"
    assert (mem / "memory.memsw.limit_in_bytes").read_text() == "134217728"
    assert (mem / "memory.soft_limit_in_bytes").read_text() == "33554432"
    assert (v1_root / "pids/hafen/c1/pids.max").read_text() == "12"
    cpu = v1_root / "cpu" / "hafen" / "c1"
    assert (cpu / "cpu.shares").read_text() == "512"
    assert (cpu / "cpu.cfs_quota_us").read_text() == "50000"
    assert (cpu / "cpu.cfs_period_us").read_text() == "100000"
    assert (v1_root / "cpuset/hafen/c1/cpuset.cpus").read_text() == "0-1"
    dev = v1_root / "devices" / "hafen" / "c1"
    # Plain files keep only the last write; the deny of everything went first.
    assert (dev / "devices.deny").read_text() == "a"
    assert (dev / "devices.allow").read_text() == "c 136:* rwm"


def test_v1_unlimited_pids_and_missing_memsw(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    mgr.apply({"pids": {"limit": 0}, "memory": {"limit": 1048576, "swap": 2097152}})
    assert (v1_root / "pids/hafen/c1/pids.max").read_text() == "max"
    assert not (v1_root / "memory/hafen/c1/memory.memsw.limit_in_bytes").exists()


def test_v1_add_proc_pids_and_destroy(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    mgr.add_proc(4242)
    for name in V1_CONTROLLERS:
        assert (v1_root / name / "hafen/c1/cgroup.procs").read_text() == "4242"
    assert mgr.pids() == [4242]
    # A real cgroupfs rmdir ignores the control files; emulate by emptying the dirs.
    for d in mgr.paths().values():
        for f in Path(d).iterdir():
            f.unlink()
    mgr.destroy()
    assert not mgr.exists()
    assert (v1_root / "memory" / "hafen").is_dir()  # parents stay, as with runc


def test_a_forked_child_joins_v1_by_thread_and_v2_by_process(v1_root: Path, v2_root: Path) -> None:
    # v1: each hierarchy's tasks file (moving the one thread skips the kernel's global
    # threadgroup lock and its RCU grace period); v2 refuses a thread move across
    # domains, so cgroup.procs.
    v1 = CgroupV1("/hafen/c1", str(v1_root))
    assert v1.join_files() == [f"{d}/tasks" for d in v1.paths().values()]
    assert len(v1.join_files()) == len(V1_CONTROLLERS)
    v2 = CgroupV2("/hafen/c1", str(v2_root))
    assert v2.join_files() == [f"{v2_root}/hafen/c1/cgroup.procs"]
    assert v1.fork_inside() is None  # v1 joins by thread: nothing to fork into
    v2.create()
    pid = v2.fork_inside()
    if pid == 0:  # a plain directory was taken for a cgroup: leave at once
        os._exit(0)
    assert pid is None  # the kernel refused it: nothing forked, the caller migrates


def test_v2_enables_controllers_down_the_tree(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
    kernel_leaf(v2_root / "hafen" / "c1")
    assert (v2_root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    # The fake intermediate level has no cgroup.controllers: nothing more to enable.
    assert (v2_root / "hafen" / "c1").is_dir()
    assert mgr.paths() == {"": str(v2_root / "hafen" / "c1")}


def test_v2_resources_are_written(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
    kernel_leaf(v2_root / "hafen" / "c1")
    mgr.apply(
        {
            "memory": {"limit": 67108864, "swap": 100663296, "reservation": 1024},
            "pids": {"limit": 12},
            "cpu": {"shares": 1024, "quota": 50000, "period": 100000, "cpus": "1", "mems": "0"},
        }
    )
    d = v2_root / "hafen" / "c1"
    assert (d / "memory.max").read_text() == "67108864"
    assert (d / "memory.swap.max").read_text() == str(100663296 - 67108864)
    assert (d / "memory.low").read_text() == "1024"
    assert (d / "pids.max").read_text() == "12"
    assert (d / "cpu.weight").read_text() == str(shares_to_weight(1024))
    assert (d / "cpu.max").read_text() == "50000 100000"
    assert (d / "cpuset.cpus").read_text() == "1"


def test_v2_unlimited_values(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
    kernel_leaf(v2_root / "hafen" / "c1")
    mgr.apply(
        {"memory": {"limit": -1, "swap": -1}, "pids": {"limit": -1}, "cpu": {"period": 100000}}
    )
    d = v2_root / "hafen" / "c1"
    assert (d / "memory.max").read_text() == "max"
    assert (d / "memory.swap.max").read_text() == "max"
    assert (d / "pids.max").read_text() == "max"
    assert (d / "cpu.max").read_text() == "max 100000"


def test_shares_to_weight_matches_runc() -> None:
    assert shares_to_weight(2) == 1
    assert shares_to_weight(1024) == 39
    assert shares_to_weight(262144) == 10000


def test_open_manager_picks_version(v1_root: Path, v2_root: Path) -> None:
    assert isinstance(open_manager("/h/c", "c", str(v1_root), unified=False), CgroupV1)
    assert isinstance(open_manager("/h/c", "c", str(v2_root), unified=True), CgroupV2)


def test_v1_blkio_hugetlb_and_update_order(v1_root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("blkio", "hugetlb"):
        (v1_root / name).mkdir()
        (v1_root / name / "cgroup.procs").write_text("")
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    blk = v1_root / "blkio/hafen/c1"
    (blk / "blkio.weight").write_text("500")
    mgr.apply(
        {
            "blockIO": {
                "weight": 300,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
        }
    )
    assert (blk / "blkio.weight").read_text() == "300"
    assert (blk / "blkio.throttle.read_bps_device").read_text() == "8:0 1048576"
    assert (blk / "blkio.throttle.write_iops_device").read_text() == "8:0 10"
    assert (v1_root / "hugetlb/hafen/c1/hugetlb.2MB.limit_in_bytes").read_text() == "4194304"
    # Raising the limit above the current memsw writes memsw first (else EINVAL).
    mem = v1_root / "memory/hafen/c1"
    (mem / "memory.memsw.limit_in_bytes").write_text("1048576")
    written: list[str] = []
    real_write = cgroups._write

    def spy(directory: str, name: str, value: str) -> None:
        written.append(name)
        real_write(directory, name, value)

    monkeypatch.setattr(cgroups, "_write", spy)
    mgr.apply({"memory": {"limit": 4194304, "swap": 8388608}})
    assert written == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]


def test_v1_blkio_weight_unsupported_is_a_clear_error(v1_root: Path) -> None:
    (v1_root / "blkio").mkdir()
    (v1_root / "blkio" / "cgroup.procs").write_text("")
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    with pytest.raises(RuntimeFailure, match=r"blkio\.weight"):
        mgr.apply({"blockIO": {"weight": 300}})
    with pytest.raises(InvalidConfig, match="unified"):
        mgr.apply({"unified": {"memory.high": "1000"}})


def test_v1_freezer_and_stats(v1_root: Path) -> None:
    mgr = CgroupV1("/hafen/c1", str(v1_root))
    mgr.create()
    (v1_root / "freezer/hafen/c1/freezer.state").write_text("THAWED")
    assert not mgr.frozen()
    mgr.freeze()
    assert (v1_root / "freezer/hafen/c1/freezer.state").read_text() == "FROZEN"
    assert mgr.frozen()
    mgr.thaw()
    assert not mgr.frozen()
    mem = v1_root / "memory/hafen/c1"
    (mem / "memory.usage_in_bytes").write_text("4096\n")
    (mem / "memory.limit_in_bytes").write_text("9223372036854771712\n")
    (mem / "memory.stat").write_text("cache 100\ntotal_cache 200\nrss 5\n")
    (v1_root / "pids/hafen/c1/pids.current").write_text("3\n")
    (v1_root / "pids/hafen/c1/pids.max").write_text("max\n")
    stats = mgr.stats()
    assert stats["memory"]["usage"] == {"usage": 4096, "max": 0, "limit": 0, "failcnt": 0}
    assert stats["memory"]["cache"] == 200
    assert stats["pids"] == {"current": 3, "limit": 0}


def test_v2_io_hugetlb_unified_freeze_and_stats(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
    kernel_leaf(v2_root / "hafen" / "c1")
    d = v2_root / "hafen" / "c1"
    mgr.apply(
        {
            "blockIO": {
                "weight": 500,
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1048576}],
                "throttleWriteIOPSDevice": [{"major": 8, "minor": 0, "rate": 10}],
            },
            "hugepageLimits": [{"pageSize": "2MB", "limit": 4194304}],
            "unified": {"memory.high": "50000000"},
        }
    )
    assert (d / "io.weight").read_text() == f"default {blkio_weight_to_io(500)}"
    assert (d / "io.max").read_text() == "8:0 rbps=1048576 wiops=10"
    assert (d / "hugetlb.2MB.max").read_text() == "4194304"
    assert (d / "memory.high").read_text() == "50000000"
    with pytest.raises(InvalidConfig):
        mgr.apply({"unified": {"../escape": "1"}})
    (d / "cgroup.events").write_text("populated 1\nfrozen 1\n")  # what the kernel reports
    mgr.freeze()
    assert (d / "cgroup.freeze").read_text() == "1"
    assert mgr.frozen()
    mgr.thaw()
    assert (d / "cgroup.freeze").read_text() == "0"
    (d / "cpu.stat").write_text("usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    (d / "memory.current").write_text("8192\n")
    (d / "memory.max").write_text("max\n")
    (d / "io.stat").write_text("8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n")
    stats = mgr.stats()
    assert stats["cpu"]["usage"]["total"] == 1_500_000
    assert stats["memory"]["usage"]["usage"] == 8192
    assert stats["memory"]["usage"]["limit"] == 0
    assert {"major": 8, "minor": 0, "op": "Write", "value": 20} in stats["blkio"][
        "ioServiceBytesRecursive"
    ]


def test_blkio_weight_conversion_matches_runc() -> None:
    assert blkio_weight_to_io(10) == 1
    assert blkio_weight_to_io(1000) == 10000
