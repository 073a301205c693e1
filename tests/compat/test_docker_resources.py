"""The real docker CLI against hafend: isolation flags of `docker run`, and pause/unpause,
update, top and stats. The docker CLI builds the HostConfig itself, so these prove the
API side reads Docker's own field names and shapes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.compat.test_docker_cli import DOCKER, docker
from tests.conftest import Hafend

pytestmark = pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")


def test_docker_run_isolation_flags(hafend: Hafend, tmp_path: Path) -> None:
    out = docker(
        hafend, tmp_path, "run", "--rm", "--cap-drop", "ALL", "--cap-add", "KILL",
        "--ulimit", "nofile=77:88", "--pids-limit", "9", "--read-only",
        "--security-opt", "no-new-privileges", "--sysctl", "net.ipv4.ip_forward=1",
        "--oom-score-adj", "100", "--init", "busybox", "sh", "-c",
        "grep -E 'CapEff|NoNewPrivs' /proc/self/status; ulimit -n; ulimit -Hn;"
        " cat /proc/sys/net/ipv4/ip_forward /proc/self/oom_score_adj; touch /x 2>&1;"
        " tr '\\0' ' ' < /proc/1/cmdline",
    ).stdout  # fmt: skip
    lines = out.splitlines()
    assert lines[0].split() == ["CapEff:", "0000000000000020"]  # CAP_KILL only
    assert lines[1].split() == ["NoNewPrivs:", "1"]
    assert lines[2:6] == ["77", "88", "1", "100"]
    assert "Read-only file system" in lines[6]
    assert lines[7].startswith("/sbin/docker-init -- sh")


def test_docker_pause_update_top_stats(hafend: Hafend, tmp_path: Path) -> None:
    docker(hafend, tmp_path, "run", "-d", "--name", "dk-res", "-m", "40m", "busybox", "sleep", "60")
    try:
        docker(hafend, tmp_path, "pause", "dk-res")
        status = docker(hafend, tmp_path, "inspect", "-f", "{{.State.Status}}", "dk-res").stdout
        assert status.strip() == "paused"
        docker(hafend, tmp_path, "unpause", "dk-res")
        docker(hafend, tmp_path, "update", "--memory", "50m", "--memory-swap", "100m", "dk-res")
        hc = json.loads(docker(hafend, tmp_path, "inspect", "dk-res").stdout)[0]["HostConfig"]
        assert hc["Memory"] == 50 << 20
        top = docker(hafend, tmp_path, "top", "dk-res").stdout.splitlines()
        assert "PID" in top[0] and any("sleep 60" in line for line in top[1:])
        stats = docker(
            hafend, tmp_path, "stats", "--no-stream", "--format",
            "{{.Name}} {{.MemUsage}} {{.PIDs}}", "dk-res",
        ).stdout.split()  # fmt: skip
        assert stats[0] == "dk-res"
        assert stats[-2] == "50MiB" and stats[-1] == "1"
    finally:
        docker(hafend, tmp_path, "rm", "-f", "dk-res", check=False)
