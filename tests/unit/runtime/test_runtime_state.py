"""State records and status rules (created / running / stopped, pid reuse)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument
from hafen.runtime.state import (
    ContainerState,
    NoSuchContainer,
    StateDir,
    oci_state,
    proc_start_time,
    validate_id,
)


def _state(pid: int, start: int) -> ContainerState:
    return ContainerState(
        id="c", pid=pid, bundle="/b", rootfs="/b/rootfs", created="t", start_time=start
    )


def test_start_time_of_self_and_missing_pid() -> None:
    assert proc_start_time(os.getpid())
    assert proc_start_time(2**22 + 1) is None


def test_status_rules(tmp_path: Path) -> None:
    sd = StateDir(str(tmp_path), "c")
    os.mkdir(sd.path)
    me = os.getpid()
    start = proc_start_time(me) or 0
    os.mkfifo(sd.fifo)
    assert sd.status(_state(me, start)) == "created"
    os.unlink(sd.fifo)
    assert sd.status(_state(me, start)) == "running"
    assert sd.status(_state(me, start + 1)) == "stopped"  # the pid was reused
    assert sd.status(_state(0, 0)) == "stopped"


def test_zombie_counts_as_stopped(tmp_path: Path) -> None:
    sd = StateDir(str(tmp_path), "c")
    child = subprocess.Popen(["true"])
    try:
        for _ in range(500):
            with open(f"/proc/{child.pid}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    break
            os.sched_yield()
        assert sd.status(_state(child.pid, 0)) == "stopped"
    finally:
        child.wait()


def test_save_load_and_oci_state(tmp_path: Path) -> None:
    sd = StateDir(str(tmp_path), "c")
    os.mkdir(sd.path)
    sd.save(_state(0, 0))
    st = sd.load()
    assert st.bundle == "/b"
    out = oci_state(sd, st)
    assert out["status"] == "stopped" and out["pid"] == 0
    assert set(out) >= {
        "ociVersion",
        "id",
        "status",
        "pid",
        "bundle",
        "rootfs",
        "created",
        "annotations",
    }


def test_missing_container(tmp_path: Path) -> None:
    with pytest.raises(NoSuchContainer, match='container "x" does not exist'):
        StateDir(str(tmp_path), "x").load()


@pytest.mark.parametrize("bad", ["", "../x", "a/b", "-a", "a b"])
def test_bad_ids(bad: str) -> None:
    with pytest.raises(InvalidArgument):
        validate_id(bad)
