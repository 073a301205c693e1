"""pause/resume (the freezer), update (new limits in place) and events --stats, on every
runtime: the peers are the oracle for state JSON and for what lands in the cgroup files."""

from __future__ import annotations

import json
import time
from pathlib import Path

from .conftest import Runtime, bundle_config, make_busybox_bundle
from .test_runtime_lifecycle import _wait_status

TICKER = ["sh", "-c", "while true; do echo x >> /tmp/ticks; sleep 0.02; done"]


def _cgroup_file(bundle: Path, v1: str, v2: str) -> Path:
    path = bundle_config(bundle)["linux"]["cgroupsPath"].lstrip("/")
    root = Path("/sys/fs/cgroup")
    if (root / "cgroup.controllers").exists():
        return root / path / v2
    controller = v1.split(".")[0]
    return root / controller / path / v1


def _ticks(bundle: Path) -> int:
    f = bundle / "rootfs" / "tmp" / "ticks"
    return f.stat().st_size if f.exists() else 0


def _grows(bundle: Path, within: float) -> bool:
    before = _ticks(bundle)
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if _ticks(bundle) > before:
            return True
        time.sleep(0.02)
    return False


def test_pause_freezes_and_resume_thaws(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, TICKER)
    any_rt("run", "-d", "--bundle", str(bundle), "p1", check=True)
    assert _grows(bundle, 10)
    any_rt("pause", "p1", check=True)
    assert any_rt.state("p1")["status"] == "paused"
    assert not _grows(bundle, 0.4)  # frozen: no tick for several periods
    any_rt("resume", "p1", check=True)
    assert _wait_status(any_rt, "p1", "running")["status"] == "running"
    assert _grows(bundle, 10)
    assert any_rt("resume", "p1").returncode != 0  # not paused
    any_rt("pause", "p1", check=True)
    any_rt("delete", "--force", "p1", check=True)  # a paused container can be removed
    assert "p1" not in any_rt.ids()


def test_update_writes_new_limits(any_rt: Runtime, tmp_path: Path) -> None:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"])
    any_rt("run", "-d", "--bundle", str(bundle), "u1", check=True)
    any_rt("update", "--memory", "67108864", "--pids-limit", "20", "u1", check=True)
    mem = _cgroup_file(bundle, "memory.limit_in_bytes", "memory.max")
    pids = _cgroup_file(bundle, "pids.max", "pids.max")
    assert mem.read_text().strip() == "67108864"
    assert pids.read_text().strip() == "20"
    resources = tmp_path / "resources.json"
    resources.write_text(json.dumps({"memory": {"limit": 134217728}, "pids": {"limit": 30}}))
    any_rt("update", "-r", str(resources), "u1", check=True)
    assert mem.read_text().strip() == "134217728"
    assert pids.read_text().strip() == "30"
    stats = json.loads(any_rt("events", "--stats", "u1", check=True).stdout)
    assert stats["type"] == "stats"
    assert stats["data"]["memory"]["usage"]["limit"] == 134217728
    assert stats["data"]["pids"]["current"] >= 1
    assert any_rt("update", "--memory", "lots", "u1").returncode != 0
