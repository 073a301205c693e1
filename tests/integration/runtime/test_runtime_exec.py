"""``exec`` (runc's CLI): a second process joins the container's namespaces and cgroups.

Every test runs on hafen-runtime and the peers: the flags docker's exec path uses
(``--process``, ``-d``, ``--pid-file``, ``--console-socket``, ``-t``) must behave as runc's.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from hafen.runtime.console import recv_console

from .conftest import Runtime, make_busybox_bundle
from .test_runtime_lifecycle import _read_until, _wait_status, subprocess_devnull, subprocess_pipe


def _running(rt: Runtime, tmp_path: Path, cid: str = "ex", **over: object) -> Path:
    bundle = make_busybox_bundle(tmp_path, ["sleep", "60"], **over)  # type: ignore[arg-type]
    rt("run", "-d", "--bundle", str(bundle), cid, check=True)
    assert _wait_status(rt, cid, "running")["status"] == "running"
    return bundle


def _cgroup_of(pid: int) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        return "".join(sorted(line for line in f if ":memory:" in line or line.startswith("0::")))


def test_exec_joins_namespaces_and_returns_the_exit_status(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    result = any_rt("exec", "ex", "sh", "-c", "hostname; echo pid=$$; cat /proc/1/cmdline; exit 3")
    assert result.returncode == 3, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "hafen"  # the container's UTS namespace
    assert lines[1] != f"pid={os.getpid()}" and int(lines[1][4:]) < 100  # its pid namespace
    assert lines[2].startswith("sleep")  # pid 1 is the container's init


def test_exec_flags_env_cwd_user_and_cap(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    result = any_rt(
        "exec", "--env", "FOO=bar", "--env", "TERM=dumb", "--cwd", "/tmp", "--user", "1000:1001",
        "ex", "sh", "-c", "echo $FOO $TERM; pwd; id -u; id -g",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["bar", "dumb", "/tmp", "1000", "1001"]
    base = any_rt("exec", "ex", "grep", "CapEff", "/proc/self/status", check=True).stdout
    more = any_rt(
        "exec", "--cap", "CAP_SYS_ADMIN", "ex", "grep", "CapEff", "/proc/self/status", check=True
    ).stdout
    sys_admin = 1 << 21
    assert int(more.split()[1], 16) == int(base.split()[1], 16) | sys_admin


def test_exec_process_json(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    process = {
        "terminal": False,
        "user": {"uid": 0, "gid": 0},
        "args": ["sh", "-c", "echo $GREETING from $(pwd)"],
        "env": ["PATH=/bin", "GREETING=hello"],
        "cwd": "/etc",
        "capabilities": {k: ["CAP_KILL"] for k in ("bounding", "effective", "permitted")},
    }
    path = tmp_path / "process.json"
    path.write_text(json.dumps(process))
    result = any_rt("exec", "--process", str(path), "ex")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "hello from /etc\n"


def test_exec_detached_writes_the_pid_file(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    pid_file = tmp_path / "exec.pid"
    any_rt("exec", "-d", "--pid-file", str(pid_file), "ex", "sleep", "30", check=True)
    pid = int(pid_file.read_text())
    init = int(any_rt.state("ex")["pid"])
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[:2] == [b"sleep", b"30"]
    assert os.readlink(f"/proc/{pid}/ns/pid") == os.readlink(f"/proc/{init}/ns/pid")
    assert os.readlink(f"/proc/{pid}/ns/mnt") == os.readlink(f"/proc/{init}/ns/mnt")
    assert _cgroup_of(pid) == _cgroup_of(init)
    any_rt("kill", "--all", "ex", "KILL", check=True)


def test_exec_terminal_through_console_socket(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    sock_path = str(tmp_path / "exec-console.sock")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(sock_path)
    server.listen(1)
    server.settimeout(20)
    proc = any_rt.popen(
        "exec", "-t", "-d", "--console-socket", sock_path, "ex", "sh",
        stdout=subprocess_devnull(), stderr=subprocess_pipe(),
    )  # fmt: skip
    try:
        conn, _ = server.accept()
        master, _name = recv_console(conn)
        conn.close()
        assert proc.wait(timeout=20) == 0, proc.stderr.read() if proc.stderr else ""
    finally:
        server.close()
    try:
        os.write(master, b"echo tty-$(( 6 * 7 )); tty\n")
        text = _read_until(master, b"/dev/pts/", 20)
        assert b"tty-42" in text
        assert b"/dev/pts/" in text
    finally:
        os.close(master)


def test_exec_failures(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    missing = any_rt("exec", "ex", "no-such-command")
    assert missing.returncode == 255  # exec itself failed, not the command
    assert "no-such-command" in missing.stderr
    assert any_rt("exec", "nope", "true").returncode != 0  # unknown container
    any_rt("kill", "ex", "KILL", check=True)
    deadline = time.monotonic() + 10
    while any_rt.state("ex")["status"] != "stopped" and time.monotonic() < deadline:
        time.sleep(0.02)
    stopped = any_rt("exec", "ex", "true")
    assert stopped.returncode != 0
    assert "stopped" in stopped.stderr


def test_ps_lists_the_containers_processes(any_rt: Runtime, tmp_path: Path) -> None:
    _running(any_rt, tmp_path)
    init = int(any_rt.state("ex")["pid"])
    pids = json.loads(any_rt("ps", "--format", "json", "ex", check=True).stdout)
    assert pids == [init]
    table = any_rt("ps", "ex", check=True).stdout.splitlines()
    assert "PID" in table[0].split() and len(table) == 2 and "sleep" in table[1]
    custom = any_rt("ps", "ex", "-o", "pid,comm", check=True).stdout.split()
    assert custom == ["PID", "COMMAND", str(init), "sleep"]


def test_exec_tty_without_console_socket_proxies_our_terminal(
    any_rt: Runtime, tmp_path: Path
) -> None:
    import pty
    import subprocess

    _running(any_rt, tmp_path)
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        any_rt.cmd("exec", "-t", "ex", "sh", "-c", "tty; echo size=$(stty size); exit 3"),
        stdin=slave, stdout=slave, stderr=slave, env=any_rt.env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        text = _read_until(master, b"size=", 20)
        assert proc.wait(timeout=20) == 3
    finally:
        os.close(master)
    assert b"/dev/pts/" in text  # the process had a terminal of the container's own
    assert b"size=" in text


def test_run_with_terminal_without_console_socket_proxies(any_rt: Runtime, tmp_path: Path) -> None:
    import pty
    import subprocess

    bundle = make_busybox_bundle(
        tmp_path, ["sh", "-c", "tty; echo done; exit 4"], process={"terminal": True}
    )
    master, slave = pty.openpty()
    proc = subprocess.Popen(
        any_rt.cmd("run", "--bundle", str(bundle), "ttyrun"),
        stdin=slave, stdout=slave, stderr=slave, env=any_rt.env, start_new_session=True,
    )  # fmt: skip
    os.close(slave)
    try:
        text = _read_until(master, b"done", 20)
        assert proc.wait(timeout=20) == 4
    finally:
        os.close(master)
    assert b"/dev/pts/" in text and b"done" in text
    assert "ttyrun" not in any_rt.ids()  # run removed it
