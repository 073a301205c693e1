"""The Docker SDK for Python against hafend: run with isolation keyword arguments, and
pause/unpause, update, top, stats on a running container."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Hafend

docker = pytest.importorskip("docker")


@pytest.fixture
def sdk(hafend: Hafend) -> Iterator[Any]:
    client = docker.DockerClient(base_url=hafend.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


def test_sdk_run_with_isolation_options(sdk: Any) -> None:
    out = sdk.containers.run(
        "busybox",
        ["sh", "-c", "ulimit -n; cat /proc/sys/net/ipv4/ip_forward; grep CapEff /proc/self/status"],
        remove=True,
        cap_drop=["ALL"],
        cap_add=["KILL"],
        ulimits=[docker.types.Ulimit(name="nofile", soft=55, hard=66)],
        sysctls={"net.ipv4.ip_forward": "1"},
        security_opt=["no-new-privileges"],
        pids_limit=20,
        mem_limit="64m",
    ).decode()
    lines = out.splitlines()
    assert lines[0] == "55" and lines[1] == "1"
    assert lines[2].split() == ["CapEff:", "0000000000000020"]


def test_sdk_pause_update_top_stats(sdk: Any) -> None:
    c = sdk.containers.run("busybox", ["sleep", "300"], detach=True, mem_limit="40m")
    try:
        c.pause()
        c.reload()
        assert c.status == "paused"
        c.unpause()
        c.update(mem_limit="60m", memswap_limit="120m")
        c.reload()
        assert c.attrs["HostConfig"]["Memory"] == 60 << 20
        top = c.top()
        assert "PID" in top["Titles"]
        assert any("sleep 300" in " ".join(p) for p in top["Processes"])
        stats = c.stats(stream=False)
        assert stats["memory_stats"]["limit"] == 60 << 20
        assert stats["pids_stats"]["current"] == 1
        assert stats["name"] == "/" + c.name
    finally:
        c.remove(force=True)
