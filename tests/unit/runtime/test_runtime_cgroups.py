"""cgroup v1/v2 managers against a fake cgroup root: what is written to each file."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.errors import InvalidConfig
from hafen.runtime.cgroups import CgroupV1, CgroupV2, open_manager, resolve_path, shares_to_weight

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


def test_v2_enables_controllers_down_the_tree(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
    assert (v2_root / "cgroup.subtree_control").read_text() == "+cpuset +cpu +io +memory +pids"
    # The fake intermediate level has no cgroup.controllers: nothing more to enable.
    assert (v2_root / "hafen" / "c1").is_dir()
    assert mgr.paths() == {"": str(v2_root / "hafen" / "c1")}


def test_v2_resources_are_written(v2_root: Path) -> None:
    mgr = CgroupV2("/hafen/c1", str(v2_root))
    mgr.create()
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
