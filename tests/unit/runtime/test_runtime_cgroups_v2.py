"""cgroup v2: what is written to each file for each resource, runc's rules for values
that are "not set" and for controllers that are not available, layout detection, and
stats read back from fixture files (a fake cgroup root, nothing of the host's)."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.errors import InvalidConfig, RuntimeFailure
from hafen.runtime import cgroups
from hafen.runtime.cgroups import CgroupV2, memory_swap_to_v2, shares_to_weight

ALL = "cpuset cpu io memory hugetlb pids"


def _mgr(tmp_path: Path, controllers: str = ALL) -> tuple[CgroupV2, Path]:
    root = tmp_path / "cg"
    root.mkdir()
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    mgr = CgroupV2("/hafen/c1", str(root))
    mgr.create()
    leaf = root / "hafen" / "c1"
    # What the kernel puts in a new cgroup: the controllers its parent enabled.
    (leaf / "cgroup.controllers").write_text(controllers + "\n")
    return mgr, leaf


def _files(d: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in d.iterdir() if p.name != "cgroup.controllers"}


def test_memory_swap_and_reservation_files(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply({"memory": {"limit": 64 << 20, "swap": 96 << 20, "reservation": 32 << 20}})
    assert _files(d) == {
        "memory.max": str(64 << 20),
        "memory.swap.max": str(32 << 20),  # OCI swap is memory+swap; v2 wants swap alone
        "memory.low": str(32 << 20),
    }


def test_memory_swap_written_before_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, _ = _mgr(tmp_path)
    order: list[str] = []
    real = cgroups._write
    monkeypatch.setattr(cgroups, "_write", lambda d, n, v: (order.append(n), real(d, n, v)))
    mgr.apply({"memory": {"limit": 1 << 20, "swap": 2 << 20}})
    assert order == ["memory.swap.max", "memory.max"]


@pytest.mark.parametrize(
    ("swap", "memory", "value"),
    [
        (0, -1, "max"),  # unlimited memory, swap not given: both unlimited
        (-1, 1 << 20, "max"),
        (0, 1 << 20, ""),  # not set: memory.swap.max left alone
        (1 << 20, 1 << 20, "0"),  # swap equal to memory: no swap at all
        (3 << 20, 1 << 20, str(2 << 20)),
    ],
)
def test_memory_swap_conversion_matches_runc(swap: int, memory: int, value: str) -> None:
    assert memory_swap_to_v2(swap, memory) == value


@pytest.mark.parametrize(
    ("swap", "memory", "message"),
    [
        (2 << 20, 0, "without memory limit"),
        (2 << 20, -1, "without memory limit"),
        (1 << 20, 2 << 20, "should be >= memory limit"),
    ],
)
def test_memory_swap_refusals_match_runc(swap: int, memory: int, message: str) -> None:
    with pytest.raises(InvalidConfig, match=message):
        memory_swap_to_v2(swap, memory)


def test_swap_max_without_swap_accounting_is_ignored_only_for_max_and_zero(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mgr, d = _mgr(tmp_path)
    real = cgroups._write

    def no_swap_file(directory: str, name: str, value: str) -> None:
        if name == "memory.swap.max":
            raise RuntimeFailure(f"cgroup: write {value!r} to {name}: No such file or directory")
        real(directory, name, value)

    monkeypatch.setattr(cgroups, "_write", no_swap_file)
    mgr.apply({"memory": {"limit": 1 << 20, "swap": 1 << 20}})  # "0": ignored
    assert (d / "memory.max").read_text() == str(1 << 20)
    mgr.apply({"memory": {"limit": 1 << 20, "swap": -1}})  # "max": ignored
    with pytest.raises(RuntimeFailure, match=r"memory\.swap\.max"):
        mgr.apply({"memory": {"limit": 1 << 20, "swap": 2 << 20}})


def test_cpu_weight_max_and_cpuset(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply({"cpu": {"shares": 512, "quota": 50000, "period": 200000, "cpus": "0", "mems": "0"}})
    assert _files(d) == {
        "cpu.weight": "20",  # 1 + (512 - 2) * 9999 / 262142, integer division as runc
        "cpu.max": "50000 200000",
        "cpuset.cpus": "0",
        "cpuset.mems": "0",
    }


def test_cpu_max_without_period_keeps_the_kernels_period(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply({"cpu": {"quota": 25000}})
    assert (d / "cpu.max").read_text() == "25000"
    mgr.apply({"cpu": {"quota": -1, "period": 100000}})
    assert (d / "cpu.max").read_text() == "max 100000"


@pytest.mark.parametrize(
    ("shares", "weight"), [(2, 1), (512, 20), (1024, 39), (4096, 157), (262144, 10000)]
)
def test_shares_to_weight_table(shares: int, weight: int) -> None:
    assert shares_to_weight(shares) == weight


def test_pids_limit_and_unlimited(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply({"pids": {"limit": 64}})
    assert (d / "pids.max").read_text() == "64"
    mgr.apply({"pids": {"limit": -1}})
    assert (d / "pids.max").read_text() == "max"


def test_io_weight_bfq_device_weights_and_throttles(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply(
        {
            "blockIO": {
                "weight": 1000,
                "weightDevice": [{"major": 8, "minor": 16, "weight": 10}],
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                "throttleWriteBpsDevice": [{"major": 8, "minor": 0, "rate": 2 << 20}],
                "throttleReadIOPSDevice": [{"major": 8, "minor": 16, "rate": 100}],
            }
        }
    )
    # The last line written per file: io.weight's device line after "default 10000".
    assert (d / "io.weight").read_text() == "8:16 1"
    assert (d / "io.max").read_text() == "8:16 riops=100"
    (d / "io.bfq.weight").write_text("100")  # the BFQ scheduler takes blkio's scale as is
    mgr.apply({"blockIO": {"weight": 300}})
    assert (d / "io.bfq.weight").read_text() == "300"


def test_io_max_one_line_per_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mgr, _ = _mgr(tmp_path)
    lines: list[str] = []
    real = cgroups._write
    monkeypatch.setattr(
        cgroups,
        "_write",
        lambda d, n, v: (lines.append(v) if n == "io.max" else None, real(d, n, v)),
    )
    mgr.apply(
        {
            "blockIO": {
                "throttleReadBpsDevice": [{"major": 8, "minor": 0, "rate": 1 << 20}],
                "throttleWriteIOPSDevice": [
                    {"major": 8, "minor": 0, "rate": 10},
                    {"major": 253, "minor": 1, "rate": 20},
                ],
            }
        }
    )
    assert lines == ["8:0 rbps=1048576 wiops=10", "253:1 wiops=20"]


def test_hugetlb_each_page_size(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    mgr.apply(
        {
            "hugepageLimits": [
                {"pageSize": "2MB", "limit": 4 << 20},
                {"pageSize": "1GB", "limit": 1 << 30},
            ]
        }
    )
    assert _files(d) == {"hugetlb.2MB.max": str(4 << 20), "hugetlb.1GB.max": str(1 << 30)}


@pytest.mark.parametrize(
    ("resources", "controller"),
    [
        ({"memory": {"limit": 1 << 20}}, "memory"),
        ({"memory": {"reservation": 1 << 20}}, "memory"),
        ({"memory": {"limit": -1}}, "memory"),
        ({"pids": {"limit": 10}}, "pids"),
        ({"cpu": {"shares": 512}}, "cpu"),
        ({"cpu": {"quota": 50000}}, "cpu"),
        ({"cpu": {"cpus": "0"}}, "cpuset"),
        ({"blockIO": {"weight": 500}}, "io"),
        ({"hugepageLimits": [{"pageSize": "2MB", "limit": 1 << 21}]}, "hugetlb"),
        ({"unified": {"memory.high": "1000"}}, "memory"),
    ],
)
def test_limit_for_unavailable_controller_is_refused_as_runc_does(
    tmp_path: Path, resources: dict[str, object], controller: str
) -> None:
    mgr, d = _mgr(tmp_path, controllers="")
    with pytest.raises(RuntimeFailure, match=f"controller '{controller}' is not available"):
        mgr.apply(resources)
    assert _files(d) == {}  # nothing written before the refusal


def test_values_that_mean_not_set_need_no_controller(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path, controllers="")
    mgr.apply(
        {
            "memory": {"limit": 0, "swap": 0, "reservation": 0},
            "pids": {"limit": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0, "weightDevice": []},
            "hugepageLimits": [],
            "unified": {"cgroup.max.depth": "5"},  # core files need no controller
        }
    )
    assert _files(d) == {"cgroup.max.depth": "5"}


def test_unified_names_must_be_controller_dot_parameter(tmp_path: Path) -> None:
    mgr, _ = _mgr(tmp_path)
    for bad in ("../x", "memoryhigh", ".hidden"):
        with pytest.raises(InvalidConfig, match=r"CONTROLLER\.PARAMETER"):
            mgr.apply({"unified": {bad: "1"}})


MOUNTINFO_PRIVATE_V2 = """\
25 30 0:22 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw
26 25 0:23 / /sys/fs/cgroup ro,nosuid,nodev,noexec shared:8 - tmpfs tmpfs ro,mode=755
27 26 0:24 / /sys/fs/cgroup/unified rw,nosuid,nodev,noexec,relatime shared:9 - cgroup2 cgroup2 rw
28 26 0:26 / /sys/fs/cgroup/memory rw,nosuid shared:10 - cgroup cgroup rw,memory
90 26 0:24 / /sys/fs/cgroup rw,relatime - cgroup2 none rw
"""


def test_layout_detection(tmp_path: Path) -> None:
    info = tmp_path / "mountinfo"
    info.write_text(MOUNTINFO_PRIVATE_V2)
    # A cgroup2 mounted over the hybrid tmpfs: the entry on top wins.
    assert cgroups.layout("/sys/fs/cgroup", str(info)) == "unified"
    info.write_text("".join(MOUNTINFO_PRIVATE_V2.splitlines(True)[:4]))
    assert cgroups.layout("/sys/fs/cgroup", str(info)) == "hybrid"
    info.write_text("".join(MOUNTINFO_PRIVATE_V2.splitlines(True)[:2]))
    assert cgroups.layout("/sys/fs/cgroup", str(info)) == "legacy"


def test_v2_stats_from_fixture_files(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    fixtures = {
        "cpu.stat": "usage_usec 2500\nuser_usec 2000\nsystem_usec 500\n"
        "nr_periods 10\nnr_throttled 3\nthrottled_usec 700\n",
        "memory.current": "8192\n",
        "memory.peak": "16384\n",
        "memory.max": "1048576\n",
        "memory.events": "low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n",
        "memory.stat": "anon 4096\nfile 12288\ninactive_file 8192\n",
        "memory.swap.current": "0\n",
        "memory.swap.max": "max\n",
        "pids.current": "3\n",
        "pids.max": "max\n",
        "io.stat": "8:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n"
        "253:1 rbytes=5 wbytes=0 rios=7 wios=0\n",
    }
    for name, text in fixtures.items():
        (d / name).write_text(text)
    stats = mgr.stats()
    assert stats["cpu"] == {
        "usage": {"total": 2_500_000, "percpu": [], "kernel": 500_000, "user": 2_000_000},
        "throttling": {"periods": 10, "throttledPeriods": 3, "throttledTime": 700_000},
    }
    assert stats["memory"]["usage"] == {
        "usage": 8192, "max": 16384, "limit": 1048576, "failcnt": 4,
    }  # fmt: skip
    assert stats["memory"]["swap"] == {"usage": 0, "limit": 0}  # "max" reads as no limit
    assert stats["memory"]["cache"] == 12288
    assert stats["memory"]["raw"]["inactive_file"] == 8192
    assert stats["pids"] == {"current": 3, "limit": 0}
    assert stats["blkio"]["ioServicedRecursive"] == [
        {"major": 8, "minor": 0, "op": "Read", "value": 1},
        {"major": 8, "minor": 0, "op": "Write", "value": 2},
        {"major": 253, "minor": 1, "op": "Read", "value": 7},
        {"major": 253, "minor": 1, "op": "Write", "value": 0},
    ]


def test_v2_stats_without_controllers_read_zero(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path, controllers="")
    (d / "cpu.stat").write_text("usage_usec 7\nuser_usec 4\nsystem_usec 3\n")  # always there
    stats = mgr.stats()
    assert stats["cpu"]["usage"]["total"] == 7000
    assert stats["memory"]["usage"] == {"usage": 0, "max": 0, "limit": 0, "failcnt": 0}
    assert stats["pids"] == {"current": 0, "limit": 0}


def test_swap_max_alone_needs_no_memory_controller(tmp_path: Path) -> None:
    # runc: "max"/"0" for memory.swap.max is ignored where the file does not exist, so a
    # spec with only swap=-1 (dockerd's "no limit") runs without the memory controller.
    mgr, _ = _mgr(tmp_path, controllers="")
    mgr.apply({"memory": {"swap": -1}})


def test_kill_all_through_cgroup_kill_where_the_kernel_has_it(tmp_path: Path) -> None:
    mgr, d = _mgr(tmp_path)
    assert not mgr.kill_all()  # no cgroup.kill (before Linux 5.14): pid by pid instead
    (d / "cgroup.kill").write_text("")
    assert mgr.kill_all()
    assert (d / "cgroup.kill").read_text() == "1"
