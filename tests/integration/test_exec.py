"""``hafen exec`` and the exec API against a real daemon and real containers."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator

import pytest

from tests.conftest import HAFEN, Hafend
from tests.integration.test_api import call


@pytest.fixture
def running(hafend: Hafend) -> Iterator[str]:
    cid = hafend.cli("run", "-d", "busybox", "sleep", "300").stdout.strip()
    try:
        yield cid
    finally:
        hafend.cli("rm", "-f", cid, check=False)


def test_exec_output_and_exit_code(hafend: Hafend, running: str) -> None:
    r = hafend.cli("exec", running, "sh", "-c", "echo out; echo err >&2; exit 7", check=False)
    assert (r.returncode, r.stdout, r.stderr) == (7, "out\n", "err\n")


def test_exec_keeps_its_output_and_exit_code_while_the_client_still_sends_input(
    hafend: Hafend, running: str
) -> None:
    # the client writes stdin until the very end: the stream's close must not turn into a
    # failed write that takes the exit frame (and the output) with it (was 137, no output)
    for _ in range(10):
        r = subprocess.run(
            f"yes | {HAFEN} -H {hafend.host} exec -i {running} sh -c 'echo out; exit 3'",
            shell=True, capture_output=True, text=True, timeout=60, env=hafend.env,
        )  # fmt: skip
        assert (r.returncode, r.stdout) == (3, "out\n"), r.stderr


def test_exec_stdin_env_user_workdir(hafend: Hafend, running: str) -> None:
    r = hafend.cli("exec", "-i", running, "sh", "-c", "read x; echo got $x", input="hello\n")
    assert r.stdout == "got hello\n"
    r = hafend.cli(
        "exec", "-u", "nobody", "-w", "/tmp", "-e", "GREETING=hi", running,
        "sh", "-c", "id -u; pwd; echo $GREETING",
    )  # fmt: skip
    assert r.stdout.split() == ["65534", "/tmp", "hi"]


def test_exec_with_a_tty_gets_the_terminal_size(hafend: Hafend, running: str) -> None:
    inner = f"stty rows 31 cols 101; {HAFEN} -H {hafend.host} exec -it {running} stty size"
    r = subprocess.run(
        ["script", "-eqc", inner, "/dev/null"], capture_output=True, text=True, timeout=30
    )
    assert "31 101" in r.stdout


def test_exec_detached_runs_in_the_background(hafend: Hafend, running: str) -> None:
    r = hafend.cli("exec", "-d", running, "sh", "-c", "sleep 0.2; echo done > /tmp/mark")
    assert r.stdout == ""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if hafend.cli("exec", running, "cat", "/tmp/mark", check=False).stdout == "done\n":
            return
        time.sleep(0.1)
    raise AssertionError("the detached exec never wrote its mark")


def test_exec_errors_have_dockers_codes(hafend: Hafend, running: str) -> None:
    r = hafend.cli("exec", running, "nosuch", check=False)
    assert r.returncode == 126 and "nosuch" in r.stdout + r.stderr
    r = hafend.cli("exec", "no-such-container", "true", check=False)
    assert r.returncode == 1 and "No such container: no-such-container" in r.stderr
    stopped = hafend.cli("create", "busybox", "true").stdout.strip()
    try:
        r = hafend.cli("exec", stopped, "true", check=False)
        assert r.returncode == 1 and "is not running" in r.stderr
    finally:
        hafend.cli("rm", stopped)


def test_exec_api_inspect_reports_the_exit_code(hafend: Hafend, running: str) -> None:
    status, body, _ = call(
        hafend, "POST", f"/v1.45/containers/{running}/exec",
        {"Cmd": ["sh", "-c", "exit 5"], "AttachStdout": True},
    )  # fmt: skip
    assert status == 201
    exec_id = body["Id"]
    status, info, _ = call(hafend, "GET", f"/exec/{exec_id}/json")
    assert status == 200 and info["Running"] is False and info["ExitCode"] is None
    assert info["ProcessConfig"]["entrypoint"] == "sh" and info["ContainerID"] == running
    status, _, _ = call(hafend, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 200
    deadline = time.monotonic() + 10
    while call(hafend, "GET", f"/exec/{exec_id}/json")[1]["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert call(hafend, "GET", f"/exec/{exec_id}/json")[1]["ExitCode"] == 5
    # an exec runs once
    status, err, _ = call(hafend, "POST", f"/exec/{exec_id}/start", {"Detach": True})
    assert status == 409 and "already run" in err["message"]
    assert call(hafend, "GET", "/exec/nope/json")[0] == 404
    status, err, _ = call(hafend, "POST", f"/containers/{running}/exec", {"Cmd": "x", "Env": 3})
    assert status == 400
    status, err, _ = call(hafend, "POST", f"/containers/{running}/exec", {"Cmd": []})
    assert status == 400


def test_exec_start_hijacked_multiplexes_without_tty(hafend: Hafend, running: str) -> None:
    import socket

    _, body, _ = call(
        hafend, "POST", f"/containers/{running}/exec",
        {"Cmd": ["sh", "-c", "echo a; echo b >&2"], "AttachStdout": True, "AttachStderr": True},
    )  # fmt: skip
    payload = json.dumps({"Detach": False, "Tty": False}).encode()
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(str(hafend.socket))
        s.sendall(
            f"POST /v1.45/exec/{body['Id']}/start HTTP/1.1\r\nHost: d\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n".encode()
            + payload
        )
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, stream = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 101")
    assert b"application/vnd.docker.multiplexed-stream" in head
    frames = []
    while stream:
        size = int.from_bytes(stream[4:8], "big")
        frames.append((stream[0], stream[8 : 8 + size]))
        stream = stream[8 + size :]
    assert sorted(frames) == [(1, b"a\n"), (2, b"b\n")]


def test_container_and_exec_processes_die_of_sigpipe(hafend: Hafend, running: str) -> None:
    """hafen-runtime is Python, which ignores SIGPIPE: the container must not inherit that."""
    r = hafend.cli("run", "--rm", "busybox", "sh", "-c", "yes | head -n 2", timeout=20)
    assert r.stdout == "y\ny\n"
    r = hafend.cli("exec", running, "sh", "-c", "yes | head -n 1", timeout=20)
    assert r.stdout == "y\n"
    status = hafend.cli("exec", running, "grep", "SigIgn", "/proc/self/status").stdout
    ignored = int(status.split()[1], 16)
    assert not ignored & (1 << 12) and not ignored & (1 << 24)  # SIGPIPE, SIGXFSZ
