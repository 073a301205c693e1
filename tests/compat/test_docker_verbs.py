"""The docker CLI against hafend, verb by verb with the flags issue 7 lists (the ones not
shown elsewhere): create/start -a -i, stop --signal, kill -s, rm -v, ps flags and every
filter, --format table/json, logs --since/--until/-f, attach detach keys, exec
--privileged, top with ps options, live stats, wait conditions (through the SDK: the
docker CLI has no flag for them), inspect of each object kind, system df -v/info and
system prune -a --volumes."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.compat.test_docker_cli import DOCKER, docker
from tests.conftest import Hafend


def docker_in(d: Hafend, tmp: Path, *args: str, input: str) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "DOCKER_CONFIG": str(tmp / "docker-config"), "DOCKER_CLI_HINTS": "false"}
    return subprocess.run([DOCKER, *args], input=input, capture_output=True, text=True,
                          timeout=60, env=env)  # fmt: skip


def test_create_then_start_attached_and_interactive(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "create", "-i", "busybox", "sh", "-c",
                 "read x; echo got-$x; echo err >&2; exit 6").stdout.strip()  # fmt: skip
    try:
        assert docker(hafend, tmp_path, "inspect", "-f", "{{.State.Status}}",
                      cid).stdout.strip() == "created"  # fmt: skip
        r = docker_in(hafend, tmp_path, "start", "-a", "-i", cid, input="in\n")
        assert (r.returncode, r.stdout, r.stderr) == (6, "got-in\n", "err\n")
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_stop_signal_kill_signal_and_rm_volumes(hafend: Hafend, tmp_path: Path) -> None:
    trap = "trap 'exit {code}' {sig}; echo ready; while :; do sleep 0.1; done"
    stop_id = docker(hafend, tmp_path, "run", "-d", "busybox", "sh", "-c",
                     trap.format(code=7, sig="USR1")).stdout.strip()  # fmt: skip
    kill_id = docker(hafend, tmp_path, "run", "-d", "-v", "/anon", "busybox", "sh", "-c",
                     trap.format(code=5, sig="HUP")).stdout.strip()  # fmt: skip
    try:
        for cid in (stop_id, kill_id):
            deadline = time.monotonic() + 10
            while "ready" not in docker(hafend, tmp_path, "logs", cid).stdout:
                assert time.monotonic() < deadline
                time.sleep(0.05)
        docker(hafend, tmp_path, "stop", "--signal", "USR1", "-t", "10", stop_id)
        assert docker(hafend, tmp_path, "wait", stop_id).stdout.strip() == "7"
        docker(hafend, tmp_path, "kill", "-s", "HUP", kill_id)
        assert docker(hafend, tmp_path, "wait", kill_id).stdout.strip() == "5"
        mounts = json.loads(docker(hafend, tmp_path, "inspect", "-f", "{{json .Mounts}}",
                                   kill_id).stdout)  # fmt: skip
        volume = mounts[0]["Name"]
        assert volume in docker(hafend, tmp_path, "volume", "ls", "-q").stdout.split()
        docker(hafend, tmp_path, "rm", "-v", kill_id)
        assert volume not in docker(hafend, tmp_path, "volume", "ls", "-q").stdout.split()
    finally:
        docker(hafend, tmp_path, "rm", "-f", stop_id, kill_id, check=False)


@pytest.fixture
def three(hafend: Hafend, tmp_path: Path) -> Any:
    """An exited-0, an exited-3 and a running container, made in that order."""
    ids = []
    for name, cmd, extra in [
        ("dv-zero", ["true"], ["--label", "dv=zero"]),
        ("dv-three", ["sh", "-c", "exit 3"], ["--label", "dv=three", "-v", "dv-vol:/v"]),
        ("dv-run", ["sleep", "60"], ["--label", "dv=run", "--network", "none"]),
    ]:
        ids.append(docker(hafend, tmp_path, "run", "-d", "--name", name, *extra, "busybox",
                          *cmd).stdout.strip())  # fmt: skip
    for cid in ids[:2]:
        docker(hafend, tmp_path, "wait", cid)
    yield ids
    docker(hafend, tmp_path, "rm", "-f", *ids, check=False)
    docker(hafend, tmp_path, "volume", "rm", "dv-vol", check=False)


def test_ps_flags_filters_and_formats(hafend: Hafend, tmp_path: Path, three: list[str]) -> None:
    zero, exit3, running = three

    def names(*args: str) -> list[str]:
        out = docker(hafend, tmp_path, "ps", *args, "--filter", "label=dv",
                     "--format", "{{.Names}}").stdout  # fmt: skip
        return out.split()

    assert names() == ["dv-run"]  # without -a: running only
    assert names("-a") == ["dv-run", "dv-three", "dv-zero"]  # newest first
    assert names("-a", "--filter", f"id={zero[:10]}") == ["dv-zero"]
    assert names("-a", "--filter", "name=dv-th") == ["dv-three"]
    assert names("-a", "--filter", "label=dv=three") == ["dv-three"]
    assert names("-a", "--filter", "status=exited") == ["dv-three", "dv-zero"]
    assert names("-a", "--filter", "exited=3") == ["dv-three"]
    assert names("-a", "--filter", "ancestor=busybox") == ["dv-run", "dv-three", "dv-zero"]
    assert names("-a", "--filter", "volume=dv-vol") == ["dv-three"]
    assert names("-a", "--filter", "network=none") == ["dv-run"]
    assert names("-a", "--filter", "health=none") == ["dv-run", "dv-three", "dv-zero"]
    healthy = docker(hafend, tmp_path, "run", "-d", "--name", "dv-healthy", "--label",
                     "dv=healthy", "--health-cmd",
                     "true", "--health-interval", "100ms", "busybox", "sleep", "60").stdout.strip()  # fmt: skip
    try:
        deadline = time.monotonic() + 15
        while names("--filter", "health=healthy") != ["dv-healthy"]:
            assert time.monotonic() < deadline, names("--filter", "health=healthy")
            time.sleep(0.1)
        assert names("--filter", "health=unhealthy") == []
    finally:
        docker(hafend, tmp_path, "rm", "-f", healthy)
    assert names("-a", "--filter", "before=dv-run") == ["dv-three", "dv-zero"]
    assert names("-a", "--filter", "since=dv-zero") == ["dv-run", "dv-three"]
    # -q, -n, -l, --no-trunc, -s
    quiet = docker(hafend, tmp_path, "ps", "-aq", "--filter", "label=dv").stdout.split()
    assert quiet == [c[:12] for c in (running, exit3, zero)]
    full = docker(hafend, tmp_path, "ps", "-aq", "--no-trunc", "--filter", "label=dv").stdout
    assert full.split() == [running, exit3, zero]
    assert docker(hafend, tmp_path, "ps", "-a", "-n", "2", "-q").stdout.split() == [
        running[:12],
        exit3[:12],
    ]
    assert docker(hafend, tmp_path, "ps", "-l", "-q").stdout.split() == [running[:12]]
    sized = docker(hafend, tmp_path, "ps", "-s", "--filter", "name=dv-run").stdout.splitlines()
    assert "SIZE" in sized[0] and "(virtual" in sized[1]
    # --format table and json
    table = docker(hafend, tmp_path, "ps", "-a", "--filter", "label=dv", "--format",
                   "table {{.Names}}\t{{.Label \"dv\"}}").stdout.splitlines()  # fmt: skip
    assert table[0].split()[0] == "NAMES" and table[1].split() == ["dv-run", "run"]
    rows = docker(hafend, tmp_path, "ps", "-a", "--filter", "label=dv", "--format",
                  "json").stdout.splitlines()  # fmt: skip
    assert [json.loads(r)["Names"] for r in rows] == ["dv-run", "dv-three", "dv-zero"]
    assert json.loads(rows[1])["Status"].startswith("Exited (3)")


def test_logs_since_until_and_follow(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "busybox", "sh", "-c",
                 "echo first; sleep 1.5; echo second; sleep 1; echo third").stdout.strip()  # fmt: skip
    try:
        # -f returns once the container ends, with everything
        assert docker(hafend, tmp_path, "logs", "-f", cid).stdout.split() == [
            "first",
            "second",
            "third",
        ]
        stamped = docker(hafend, tmp_path, "logs", "-t", cid).stdout.splitlines()
        second_at = stamped[1].split()[0]
        assert docker(hafend, tmp_path, "logs", "--since", second_at, cid).stdout.split() == [
            "second",
            "third",
        ]
        assert docker(hafend, tmp_path, "logs", "--until", second_at, cid).stdout.split() == [
            "first",
            "second",
        ]
        both = docker(hafend, tmp_path, "logs", "--since", second_at, "--until", second_at, cid)
        assert both.stdout.split() == ["second"]
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_attach_detach_keys(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-dit", "busybox", "sh").stdout.strip()
    try:
        pid, fd = pty.fork()
        if pid == 0:  # the child: docker attach on a terminal
            env = {**hafend.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
            os.execve(DOCKER, [DOCKER, "attach", "--detach-keys", "ctrl-x,x", cid], env)
        seen = b""
        deadline = time.monotonic() + 15
        os.write(fd, b"echo hi-$((6*7))\r")
        while b"hi-42" not in seen and time.monotonic() < deadline:
            seen += os.read(fd, 4096)
        assert b"hi-42" in seen
        os.write(fd, b"\x18x")  # ctrl-x, x
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                seen += os.read(fd, 4096)
            except OSError:
                pass
            time.sleep(0.05)
        while True:  # what it wrote before it exited
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                break
            if not chunk:
                break
            seen += chunk
        os.close(fd)
        # the docker CLI reports a detach as "read escape sequence" with status 1 (its own
        # behaviour, whatever the daemon); what matters is that the container runs on
        assert status is not None and b"read escape sequence" in seen
        assert docker(hafend, tmp_path, "inspect", "-f", "{{.State.Running}}",
                      cid).stdout.strip() == "true"  # fmt: skip
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_exec_privileged_top_options_and_live_stats(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "--name", "dv-top", "busybox", "sleep",
                 "60").stdout.strip()  # fmt: skip
    try:
        caps = "grep CapEff /proc/self/status"
        plain = docker(hafend, tmp_path, "exec", cid, "sh", "-c", caps).stdout.split()[1]
        full = docker(hafend, tmp_path, "exec", "--privileged", cid, "sh", "-c", caps)
        assert int(full.stdout.split()[1], 16) > int(plain, 16)
        top = docker(hafend, tmp_path, "top", cid, "-o", "pid,comm").stdout.splitlines()
        assert top[0].split() == ["PID", "COMMAND"] and top[1].split()[1] == "sleep"
        aux = docker(hafend, tmp_path, "top", cid, "aux").stdout.splitlines()
        assert "%CPU" in aux[0] and any("sleep 60" in line for line in aux[1:])
        # live stats: frames keep coming until the client goes
        env = {**hafend.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
        fmt = "{{.Name}} {{.PIDs}} {{.CPUPerc}} {{.MemPerc}} {{.NetIO}} {{.BlockIO}}"
        proc = subprocess.Popen([DOCKER, "stats", "--format", fmt, cid],
                                stdout=subprocess.PIPE, env=env)  # fmt: skip
        try:
            assert proc.stdout is not None
            frames = 0
            deadline = time.monotonic() + 20
            while frames < 2 and time.monotonic() < deadline:
                line = proc.stdout.readline().decode()
                fields = re.sub(r"\x1b\[[0-9;]*[A-Za-z]", "", line).split()  # the redraws
                if fields[:2] == ["dv-top", "1"]:
                    # CPU %, memory %, net I/O "rx / tx", block I/O "read / write"
                    assert fields[2].endswith("%") and fields[3].endswith("%"), fields
                    assert fields[5] == "/" and fields[8] == "/", fields
                    frames += 1
            assert frames == 2
        finally:
            proc.kill()
            proc.wait()
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_wait_conditions_through_the_sdk(hafend: Hafend) -> None:
    import docker as sdk  # the Docker SDK for Python

    client = sdk.DockerClient(base_url=hafend.host, version="auto")
    c = client.containers.create("busybox", ["sh", "-c", "sleep 0.5; exit 4"])
    try:
        # not-running: a created container is not running, so it returns at once
        assert client.api.wait(c.id, condition="not-running", timeout=10)["StatusCode"] == 0
        c.start()
        assert client.api.wait(c.id, condition="next-exit", timeout=20)["StatusCode"] == 4
        import threading

        result: dict[str, Any] = {}
        waiter = threading.Thread(
            target=lambda: result.update(client.api.wait(c.id, condition="removed", timeout=20))
        )
        waiter.start()
        time.sleep(0.3)
        assert waiter.is_alive()  # exited, but not removed yet
        c.remove()
        waiter.join(20)
        assert result["StatusCode"] == 4
    finally:
        client.close()


def test_inspect_each_object_kind(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "create", "--name", "dv-insp", "busybox").stdout.strip()
    docker(hafend, tmp_path, "volume", "create", "dv-insp-vol")
    try:
        for ref, kind in [("dv-insp", "container"), ("busybox", "image"),
                          ("dv-insp-vol", "volume"), ("none", "network")]:  # fmt: skip
            [obj] = json.loads(docker(hafend, tmp_path, "inspect", "--type", kind, ref).stdout)
            assert obj.get("Id") or obj.get("Name"), (kind, obj)
        assert json.loads(docker(hafend, tmp_path, "inspect", "dv-insp").stdout)[0]["Id"] == cid
        assert json.loads(docker(hafend, tmp_path, "image", "inspect", "busybox").stdout)[0][
            "RepoTags"
        ] == ["busybox:latest"]
        vol = json.loads(docker(hafend, tmp_path, "volume", "inspect", "dv-insp-vol").stdout)
        assert vol[0]["Driver"] == "local"
        net = json.loads(docker(hafend, tmp_path, "network", "inspect", "none").stdout)
        assert net[0]["Driver"] == "null"
        r = docker(hafend, tmp_path, "inspect", "--type", "volume", "dv-insp", check=False)
        assert r.returncode == 1 and "no such volume" in r.stderr
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)
        docker(hafend, tmp_path, "volume", "rm", "dv-insp-vol")


def test_system_df_verbose_and_info(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "create", "--name", "dv-df", "busybox").stdout.strip()
    try:
        out = docker(hafend, tmp_path, "system", "df", "-v").stdout
        assert "Images space usage:" in out and "Containers space usage:" in out
        assert "Local Volumes space usage:" in out and "dv-df" in out and "busybox" in out
        info = json.loads(docker(hafend, tmp_path, "system", "info", "--format",
                                 "{{json .}}").stdout)  # fmt: skip
        assert info["Containers"] >= 1 and info["Images"] >= 1
        assert "Server Version" in docker(hafend, tmp_path, "info").stdout
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_system_prune_all_with_volumes(fresh_hafend: Hafend, tmp_path: Path) -> None:
    d = fresh_hafend
    docker(d, tmp_path, "tag", "busybox", "spare:1")
    keep = docker(d, tmp_path, "run", "-d", "busybox", "sleep", "60").stdout.strip()
    gone = docker(d, tmp_path, "run", "-d", "-v", "/anon", "busybox", "true").stdout.strip()
    docker(d, tmp_path, "wait", gone)
    docker(d, tmp_path, "volume", "create", "dv-unused")
    out = docker(d, tmp_path, "system", "prune", "-a", "--volumes", "-f").stdout
    assert gone in out and "Total reclaimed space" in out
    left = docker(d, tmp_path, "ps", "-aq", "--no-trunc").stdout.split()
    assert left == [keep]
    # API >= 1.42: unused anonymous volumes go, named ones stay (as dockerd 23+)
    assert docker(d, tmp_path, "volume", "ls", "-q").stdout.split() == ["dv-unused"]
    images = docker(d, tmp_path, "images", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert "busybox:latest" in images or "spare:1" in images  # in use by `keep`: kept
    docker(d, tmp_path, "rm", "-f", keep)
