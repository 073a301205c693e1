"""Finding a process's memory cgroup and reading its oom_kill counter."""

from __future__ import annotations

import os
from pathlib import Path

from hafen.shim.oom import memory_cgroup_file, oom_kill_count


def _own_cgroup_paths() -> dict[str, str]:
    paths = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _num, controllers, path = line.split(":", 2)
        for c in controllers.split(",") if controllers else [""]:
            paths[c] = path
    return paths


def test_v1_memory_controller_is_preferred(tmp_path: Path) -> None:
    path = _own_cgroup_paths().get("memory")
    if path is None:
        return  # a pure v2 host: covered by the next test
    d = tmp_path / "memory" / path.lstrip("/")
    d.mkdir(parents=True)
    (d / "memory.oom_control").write_text("oom_kill_disable 0\nunder_oom 0\noom_kill 2\n")
    found = memory_cgroup_file(os.getpid(), root=str(tmp_path))
    assert found == str(d / "memory.oom_control")
    assert oom_kill_count(found) == 2


def test_v2_memory_events_are_used_without_v1(tmp_path: Path) -> None:
    unified = _own_cgroup_paths().get("")
    assert unified is not None
    d = tmp_path / "unified" / unified.lstrip("/")
    d.mkdir(parents=True)
    (d / "memory.events").write_text("low 0\nhigh 0\nmax 4\noom 1\noom_kill 1\n")
    found = memory_cgroup_file(os.getpid(), root=str(tmp_path))
    assert found == str(d / "memory.events")
    assert oom_kill_count(found) == 1


def test_missing_cgroups_count_zero(tmp_path: Path) -> None:
    assert memory_cgroup_file(os.getpid(), root=str(tmp_path)) is None
    assert memory_cgroup_file(2**22 + 12345) is None
    assert oom_kill_count(None) == 0
    assert oom_kill_count(str(tmp_path / "nope")) == 0
