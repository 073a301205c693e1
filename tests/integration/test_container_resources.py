"""pause/unpause, update, top and stats of a running container, through CLI and API."""

from __future__ import annotations

import json
import time

from hafen.client import APIClient
from tests.conftest import Hafend

TICKER = "i=0; while true; do i=$((i+1)); echo $i > /tmp/tick; sleep 0.05; done"


def _inspect(hafend: Hafend, name: str) -> dict[str, object]:
    data: list[dict[str, object]] = json.loads(hafend.cli("inspect", name).stdout)
    return data[0]


def test_pause_freezes_and_unpause_resumes(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "res-pause", "busybox", "sh", "-c", TICKER)
    try:
        hafend.cli("pause", "res-pause")
        state = _inspect(hafend, "res-pause")["State"]
        assert state["Status"] == "paused" and state["Paused"] is True  # type: ignore[index]
        refused = hafend.cli("exec", "res-pause", "true", check=False)
        assert refused.returncode != 0 and "paused" in refused.stderr
        again = hafend.cli("pause", "res-pause", check=False)
        assert again.returncode == 1 and "already paused" in again.stderr
        hafend.cli("unpause", "res-pause")
        first = hafend.cli("exec", "res-pause", "cat", "/tmp/tick").stdout
        time.sleep(0.3)
        assert hafend.cli("exec", "res-pause", "cat", "/tmp/tick").stdout != first  # ticking
        hafend.cli("pause", "res-pause")
    finally:
        hafend.cli("rm", "-f", "res-pause")  # a paused container is removed too


def test_update_changes_limits_live(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "res-upd", "-m", "64m", "busybox", "sleep", "60")
    try:
        hafend.cli("update", "--memory", "96m", "--memory-swap", "192m", "--pids-limit", "33",
                   "res-upd")  # fmt: skip
        script = (
            "f=/sys/fs/cgroup; cat $f/memory/memory.limit_in_bytes 2>/dev/null || cat $f/memory.max;"
            " cat $f/pids/pids.max 2>/dev/null || cat $f/pids.max"
        )
        out = hafend.cli("exec", "res-upd", "sh", "-c", script).stdout.split()
        assert out == [str(96 << 20), "33"]
        hc = _inspect(hafend, "res-upd")["HostConfig"]
        assert hc["Memory"] == 96 << 20 and hc["PidsLimit"] == 33  # type: ignore[index]
        bad = hafend.cli("update", "--blkio-weight", "5", "res-upd", check=False)
        assert bad.returncode == 1 and "blkio weight" in bad.stderr
    finally:
        hafend.cli("rm", "-f", "res-upd")


def test_top_and_stats(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "res-top", "-m", "48m", "busybox", "sleep", "60")
    try:
        top = hafend.cli("top", "res-top").stdout.splitlines()
        assert top[0].split()[:2] == ["UID", "PID"]
        assert any("sleep 60" in line for line in top[1:])
        assert len(top) == 2  # only the container's processes, none of the host's
        out = hafend.cli("stats", "--no-stream", "res-top").stdout.splitlines()
        assert out[0].startswith("CONTAINER ID")
        row = out[1].split()
        assert row[1] == "res-top"
        assert "48MiB" in out[1]
        assert row[-1] == "1"  # pids
        raw = APIClient(hafend.host).stats("res-top")
        assert raw["memory_stats"]["limit"] == 48 << 20
        assert raw["cpu_stats"]["system_cpu_usage"] > raw["precpu_stats"]["system_cpu_usage"]
        assert raw["pids_stats"]["current"] == 1
    finally:
        hafend.cli("rm", "-f", "res-top")


def test_stop_of_a_paused_container_and_live_stats(hafend: Hafend) -> None:
    import subprocess

    from tests.conftest import HAFEN

    hafend.cli("run", "-d", "--name", "res-live", "busybox", "sleep", "60")
    try:
        live = subprocess.Popen(
            [HAFEN, "-H", hafend.host, "stats", "res-live"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )  # fmt: skip
        try:
            time.sleep(2.5)
        finally:
            live.terminate()
            out, _ = live.communicate(timeout=10)
        assert "CONTAINER ID" in out and "res-live" in out  # redrawn at least once
        hafend.cli("pause", "res-live")
        hafend.cli("stop", "-t", "1", "res-live", timeout=30)  # thawed, then it can die
        state = _inspect(hafend, "res-live")["State"]
        assert state["Status"] == "exited"  # type: ignore[index]
    finally:
        hafend.cli("rm", "-f", "res-live", check=False)
