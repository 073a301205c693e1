"""hafend on a pure cgroup v2 view of this host, as dockerd behaves on such a host.

The daemon runs in a private mount namespace whose /sys/fs/cgroup is a cgroup2 mount
(see tests/integration/runtime/test_runtime_cgroup_v2.py for why that is what a v2 host
looks like). Only controllers not bound to v1 are available there, so: info reports
cgroup v2 and the missing limit support, a container's memory and pids limits are
dropped with dockerd's warnings (``--cpus`` is refused), the container gets a private
cgroup namespace (Docker's default on v2), and pause, stats and top work through
cgroup.freeze, cpu.stat and cgroup.procs.
"""

from __future__ import annotations

import contextlib
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Hafend

UNIFIED = Path("/sys/fs/cgroup/unified")
V2_WRAPPER = [
    "unshare", "--mount", "--propagation", "private", "sh", "-c",
    'mount -t cgroup2 none /sys/fs/cgroup && exec "$@"', "v2",
]  # fmt: skip

pytestmark = pytest.mark.skipif(
    not (UNIFIED / "cgroup.procs").exists(), reason="no hybrid cgroup2 at /sys/fs/cgroup/unified"
)


class V2Hafend(Hafend):
    cgroup_parent = ""


@pytest.fixture(scope="module")
def v2_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[V2Hafend]:
    root = tmp_path_factory.mktemp("v2d")
    parent = f"/hafen-v2test-{uuid.uuid4().hex[:8]}"
    (root / "daemon.json").write_text(json.dumps({"cgroup-parent": parent}))
    d = V2Hafend(root, prefix=V2_WRAPPER)
    d.cgroup_parent = parent
    d.start()
    try:
        d.bootstrap()
        yield d
    finally:
        d.cleanup()
        with contextlib.suppress(OSError):
            (UNIFIED / parent.lstrip("/")).rmdir()


def _controllers() -> set[str]:
    return set((UNIFIED / "cgroup.controllers").read_text().split())


def test_info_reports_cgroup_v2_and_what_it_cannot_limit(v2_hafend: V2Hafend) -> None:
    info = json.loads(v2_hafend.cli("info", "--format", "{{json .}}").stdout)
    assert info["CgroupVersion"] == "2"
    assert info["MemoryLimit"] == ("memory" in _controllers())
    assert info["PidsLimit"] == ("pids" in _controllers())
    if "memory" not in _controllers():
        assert "WARNING: No memory limit support" in info["Warnings"]


def test_limits_without_controllers_are_dropped_with_warnings(v2_hafend: V2Hafend) -> None:
    if {"memory", "pids"} & _controllers():
        pytest.skip("memory or pids is available in this host's cgroup2")
    result = v2_hafend.cli(
        "run", "--rm", "-m", "64m", "--pids-limit", "20", "busybox", "cat", "/proc/self/cgroup"
    )
    # A private cgroup namespace, as dockerd on v2: its own cgroup is the root.
    assert result.stdout.splitlines()[-1] == "0::/"
    assert (
        "WARNING: Your kernel does not support memory limit capabilities or the cgroup is not "
        "mounted. Limitation discarded." in result.stderr
    )
    assert "PIDs limit discarded." in result.stderr
    refused = v2_hafend.cli("run", "--rm", "--cpus", "0.5", "busybox", "true", check=False)
    assert refused.returncode == 125
    assert "NanoCPUs can not be set" in refused.stderr


def test_pause_update_stats_top_and_cleanup_through_the_unified_cgroup(v2_hafend: V2Hafend) -> None:
    cid = v2_hafend.cli("run", "-d", "busybox", "sleep", "60").stdout.strip()
    cgroup = UNIFIED / v2_hafend.cgroup_parent.lstrip("/") / cid
    try:
        assert cgroup.is_dir()
        v2_hafend.cli("pause", cid)
        state = json.loads(v2_hafend.cli("inspect", cid).stdout)[0]["State"]
        assert state["Status"] == "paused"
        assert (cgroup / "cgroup.freeze").read_text().strip() == "1"
        v2_hafend.cli("unpause", cid)
        assert (cgroup / "cgroup.freeze").read_text().strip() == "0"
        if "memory" not in _controllers():
            # update drops what the host cannot enforce with the same warning (dockerd).
            updated = v2_hafend.cli("update", "--memory", "64m", cid)
            assert "Limitation discarded." in updated.stderr
            hc = json.loads(v2_hafend.cli("inspect", cid).stdout)[0]["HostConfig"]
            assert hc["Memory"] == 0
        top = v2_hafend.cli("top", cid).stdout
        assert "sleep 60" in top
        stats = v2_hafend.cli("stats", "--no-stream", cid).stdout
        assert cid[:12] in stats
    finally:
        v2_hafend.cli("rm", "-f", cid)
    assert not cgroup.exists()
