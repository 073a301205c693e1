"""The start path's fast paths: hafen-runtime run in a fork of the shim, and the zygote.

The in-process runtime must be indistinguishable from the exec'd CLI (same exit codes,
logs, runtime state and error messages); the zygote must leave shims and containers
independent of it and of the daemon that started it.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from hafen.errors import RuntimeFailure
from hafen.runtime import ENTRY, is_cli
from hafen.runtime import command as hafen_runtime_command
from hafen.shim import client as shim_client
from hafen.shim.client import ShimClient, ShimZygote
from hafen.shim.runtime import RuntimeCommand

from .conftest import SHIM_COMMAND, SHIM_ENV, SRC, Shims, pid_alive, ppid_of, run, wait_gone

PYTHON = os.path.realpath(sys.executable)
IN_PROCESS = hafen_runtime_command(PYTHON)
EXECED = ["env", *IN_PROCESS]  # same CLI, not recognized: exec'd


def _state(shims: Shims, cid: str) -> dict[str, object]:
    out = subprocess.run(
        [*IN_PROCESS, "--root", str(shims.runtime_root), "state", cid],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, **SHIM_ENV},
    ).stdout
    state: dict[str, object] = json.loads(out)
    return state


def test_only_hafens_own_runtime_runs_in_process(tmp_path: Path) -> None:
    assert is_cli(IN_PROCESS)
    assert is_cli(["python3", "-m", "hafen.runtime"])
    assert is_cli(["/usr/bin/python3", "-S", "-Xdev", "-c", ENTRY])
    others = (
        ["runc"],
        ["crun", "--debug"],
        EXECED,
        [PYTHON, "-m", "other.runtime"],
        [PYTHON, "-c", "import os"],
        [PYTHON, "-c", "-m", "hafen.runtime"],
    )
    for other in others:
        assert not is_cli(other), other
    r, w = os.pipe()
    try:
        assert RuntimeCommand(IN_PROCESS, None, str(tmp_path), r).in_process
        assert not RuntimeCommand(EXECED, None, str(tmp_path), r).in_process
    finally:
        os.close(r)
        os.close(w)


@pytest.mark.parametrize("runtime", [IN_PROCESS, EXECED], ids=["in-process", "exec"])
def test_in_process_runtime_matches_the_cli(shims: Shims, runtime: list[str]) -> None:
    c = shims.launch(["sh", "-c", "echo out; echo err >&2; exit 3"], runtime=runtime)
    state = _state(shims, c.id)
    assert state["status"] == "created" and state["pid"] == c.info.pid
    assert state["bundle"] == str(c.bundle)
    # the container init is the shim's child either way (the intermediate is gone)
    assert ppid_of(c.info.pid) == c.info.shim_pid
    run(c.client.start())
    assert run(c.client.wait()).exit_code == 3
    logs = sorted((r["stream"], r["log"]) for r in c.log_records())
    assert logs == [("stderr", "err\n"), ("stdout", "out\n")]
    assert wait_gone(c.info.shim_pid)
    # delete ran: the runtime holds nothing for it any more
    gone = subprocess.run(
        [*IN_PROCESS, "--root", str(shims.runtime_root), "state", c.id],
        capture_output=True,
        text=True,
        env={**os.environ, **SHIM_ENV},
    )
    assert gone.returncode == 1 and "does not exist" in gone.stderr


def _fd_kinds(pid: int) -> list[str]:
    """What each fd of ``pid`` is: stdio by number, the rest only by kind (their numbers
    and the state dir's name differ from run to run)."""
    kinds = []
    for fd in sorted(os.listdir(f"/proc/{pid}/fd"), key=int):
        target = os.readlink(f"/proc/{pid}/fd/{fd}")
        kind = target.split(":")[0] if ":" in target else "path"
        kinds.append(f"{fd}:{kind}" if int(fd) < 3 else kind)
    return kinds


def test_an_init_created_in_the_shim_holds_what_a_cli_s_init_holds(shims: Shims) -> None:
    # created in the shim's own process, the init must drop the shim's fds (its report
    # pipe, sockets, log) and its signal handlers and mask before the container runs
    seen = []
    for runtime in (IN_PROCESS, EXECED):
        c = shims.launch(
            ["sh", "-c", "grep -E '^Sig(Ign|Blk)' /proc/self/status; ls /proc/self/fd"],
            runtime=runtime,
        )
        waiting = _fd_kinds(c.info.pid)  # blocked on the exec fifo: what it will exec with
        run(c.client.start())
        assert run(c.client.wait()).exit_code == 0
        out = "".join(r["log"] for r in c.log_records() if r["stream"] == "stdout")
        seen.append((waiting, out))
    (waiting, out), (cli_waiting, cli_out) = seen
    # stdio, and the state dir it opens the exec fifo in
    assert waiting == cli_waiting == ["0:path", "1:pipe", "2:pipe", "path"]
    # `ls` sees its stdio and its own directory fd, nothing inherited
    assert out.split("\n")[2:] == cli_out.split("\n")[2:] == ["0", "1", "2", "3", ""]
    for seen_out in (out, cli_out):
        # nothing blocked or ignored: not even glibc's internal signals 32 and 33, which
        # its posix_spawn (how the shim exec'd runtimes before) leaves ignored
        assert "SigBlk:\t0000000000000000" in seen_out
        assert "SigIgn:\t0000000000000000" in seen_out


def test_create_runs_in_the_shim_without_a_fork(
    shims: Shims, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cid, bundle = shims.bundle(["true"], False, None)
    shims.ids.append(cid)
    r, w = os.pipe()
    out_r, out_w = os.pipe()

    def no_fork() -> int:
        raise AssertionError("forked")

    monkeypatch.setattr(os, "fork", no_fork)
    try:
        rt = RuntimeCommand(IN_PROCESS, str(shims.runtime_root), str(tmp_path), r)
        args = ["create", "--bundle", str(bundle), cid]
        null = os.open(os.devnull, os.O_RDONLY)
        assert rt.run_with_stdio(args, (null, out_w, out_w), 30) == 0
        os.close(null)
        assert _state(shims, cid)["status"] == "created"
    finally:
        monkeypatch.undo()
        subprocess.run(
            [*IN_PROCESS, "--root", str(shims.runtime_root), "delete", "--force", cid],
            env={**os.environ, **SHIM_ENV},
            check=False,
        )
        for fd in (r, w, out_r, out_w):
            os.close(fd)


def test_in_process_and_cli_runtime_fail_with_the_same_message(shims: Shims) -> None:
    messages = []
    for runtime in (IN_PROCESS, EXECED):
        with pytest.raises(RuntimeFailure) as failed:
            shims.launch(["/no/such/program"], runtime=runtime)
        messages.append(str(failed.value))
    assert messages[0] == messages[1]
    assert "/no/such/program" in messages[0]


def test_in_process_exec_and_kill(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"], runtime=IN_PROCESS)
    run(c.client.start())

    async def exec_echo() -> bytes:
        process = {
            "args": ["sh", "-c", "echo hi; exit 4"],
            "cwd": "/",
            "env": ["PATH=/bin"],
            "user": {"uid": 0, "gid": 0},
        }
        _pid, reader, writer = await c.client.exec("e1", process, stdin=False)
        data = await reader.read()
        writer.close()
        return data

    data = run(exec_echo())
    assert b"hi\n" in data and b'{"exit_code": 4}' in data
    run(c.client.kill(signal.SIGKILL))
    assert run(c.client.wait()).exit_code == 137


def test_zygote_shims_are_forked_once_and_outlive_the_zygote(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    zygote = shim_client._zygotes.get(shim_client._zygote_key(SHIM_COMMAND, SHIM_ENV))
    assert isinstance(zygote, ShimZygote) and zygote.alive()
    # no launcher in between: the zygote's child is the shim, and the daemon's is neither
    assert ppid_of(c.info.shim_pid) == zygote.proc.pid
    assert os.getsid(c.info.shim_pid) == c.info.shim_pid  # its own session
    # one command line for all of them: the process name tells which container
    assert Path(f"/proc/{c.info.shim_pid}/comm").read_text().strip() == f"shim-{c.id[:10]}"
    assert Path(f"/proc/{zygote.proc.pid}/comm").read_text().strip() == "hafen-zygote"
    run(c.client.start())
    shim_client.close_zygotes()  # what a daemon's exit does: the zygote leaves on EOF
    assert not zygote.alive()
    assert pid_alive(c.info.shim_pid) and pid_alive(c.info.pid)
    assert ppid_of(c.info.shim_pid) not in (zygote.proc.pid, os.getpid())
    assert run(c.client.state())["status"] == "running"
    # the next launch starts a new zygote
    d = shims.launch(["true"])
    run(d.client.start())
    assert run(d.client.wait()).exit_code == 0
    run(c.client.kill(signal.SIGKILL))
    assert run(c.client.wait()).exit_code == 137


def _spares(zygote_pid: int, timeout: float = 10) -> list[int]:
    """The zygote's children named hafen-spare, once there is one (bounded wait)."""
    deadline = time.monotonic() + timeout
    while True:
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:  # a process may leave while we look
                if (
                    ppid_of(int(entry.name)) == zygote_pid
                    and (entry / "comm").read_text().strip() == "hafen-spare"
                ):
                    found.append(int(entry.name))
            except OSError:
                continue
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.01)


def test_a_spare_shim_waits_forked_ahead_and_is_replaced_after_each_launch(
    shims: Shims,
) -> None:
    c = shims.launch(["true"])
    zygote = shim_client._zygotes.get(shim_client._zygote_key(SHIM_COMMAND, SHIM_ENV))
    assert isinstance(zygote, ShimZygote)
    first = _spares(zygote.proc.pid)
    assert len(first) == 1  # one at a time
    d = shims.launch(["true"])
    assert d.info.shim_pid == first[0]  # the launch took the waiting spare...
    second = _spares(zygote.proc.pid)
    assert len(second) == 1 and second != first  # ...and the zygote forked the next
    # a request the spare cannot run is answered with an error; the zygote goes on
    ours, theirs = socket.socketpair()
    socket.send_fds(zygote.control, [b'{"not": "a list"}'], [theirs.fileno()])
    theirs.close()
    ours.settimeout(10)
    assert b"bad request" in ours.recv(4096)
    ours.close()
    e = shims.launch(["sh", "-c", "exit 3"])
    run(e.client.start())
    assert run(e.client.wait()).exit_code == 3
    spare = _spares(zygote.proc.pid)
    for x in (c, d):
        run(x.client.start())
        assert run(x.client.wait()).exit_code == 0
    shim_client.close_zygotes()
    assert not zygote.alive()
    assert spare and wait_gone(spare[0])  # the spare reads the daemon's EOF and leaves


def test_containers_survive_the_sigkill_of_the_daemon_that_owns_the_zygote(
    shims: Shims,
) -> None:
    cid, bundle = shims.bundle(["sleep", "100"])
    shims.ids.append(cid)
    state_dir = shims.state_dir_for(cid)
    # a stand-in daemon: launches one shim through its zygote, reports, then waits
    script = textwrap.dedent(f"""
        import asyncio, json, sys
        sys.path.insert(0, {SRC!r})
        from hafen.shim import client
        async def main():
            info = await client.launch_shim(
                {SHIM_COMMAND!r}, container_id={cid!r}, bundle={str(bundle)!r},
                state_dir={str(state_dir)!r}, log_path={str(state_dir / "c.log")!r},
                runtime=["runc"], runtime_root={str(shims.runtime_root)!r}, tty=False,
                stdin=False, stdin_once=False, env={SHIM_ENV!r})
            await client.ShimClient({str(state_dir)!r}).start()
            zygote = next(z for z in client._zygotes.values() if z is not None)
            print(json.dumps([info.pid, info.shim_pid, zygote.proc.pid]), flush=True)
            await asyncio.sleep(60)
        asyncio.run(main())
    """)
    daemon = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert daemon.stdout is not None
        pid, shim_pid, zygote_pid = json.loads(daemon.stdout.readline())
    finally:
        daemon.kill()
        daemon.wait()
    deadline = time.monotonic() + 10
    while pid_alive(zygote_pid) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pid_alive(zygote_pid), "the zygote outlived its daemon"
    assert pid_alive(shim_pid) and pid_alive(pid)
    client = ShimClient(str(state_dir))
    assert run(client.state()) == {"pid": pid, "status": "running"}
    run(client.kill(signal.SIGKILL))
    assert run(client.wait()).exit_code == 137
    assert wait_gone(shim_pid)


def test_launch_without_the_zygote_still_works(
    shims: Shims, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HAFEN_SHIM_ZYGOTE", "0")
    assert asyncio.run(shim_client._zygote_for(SHIM_COMMAND, SHIM_ENV)) is None
    c = shims.launch(["sh", "-c", "exit 5"])
    run(c.client.start())
    assert run(c.client.wait()).exit_code == 5


def test_start_kill_and_delete_run_in_the_shim_without_a_fork(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in SHIM_ENV.items():
        monkeypatch.setenv(name, value)  # the exec'd CLI finds hafen
    r, w = os.pipe()
    os.set_blocking(r, False)
    try:
        execed = RuntimeCommand(EXECED, str(tmp_path / "root"), str(tmp_path), r)
        expected = [execed.run(args) for args in (["start", "nosuch"], ["kill", "nosuch", "9"])]
        in_process = RuntimeCommand(IN_PROCESS, str(tmp_path / "root"), str(tmp_path), r)

        def no_fork() -> int:
            raise AssertionError("forked")

        monkeypatch.setattr(os, "fork", no_fork)
        for args, cli in zip((["start", "nosuch"], ["kill", "nosuch", "9"]), expected, strict=True):
            here = in_process.run(args)
            assert (here.status, here.message) == (cli.status, cli.message)
            assert here.status == 1 and 'container "nosuch" does not exist' in here.message
        assert in_process.run(["delete", "--force", "nosuch"]).ok
    finally:
        os.close(r)
        os.close(w)


def test_an_in_process_verb_is_bounded_like_a_forked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import hafen.runtime.main

    monkeypatch.setattr(hafen.runtime.main, "main", lambda _args, **_kw: time.sleep(30) or 0)
    r, w = os.pipe()
    try:
        rt = RuntimeCommand(IN_PROCESS, str(tmp_path / "root"), str(tmp_path), r)
        started = time.monotonic()
        result = rt.run(["start", "c1"], timeout=0.3)
        assert time.monotonic() - started < 5
        assert (result.status, result.message) == (124, "runtime start timed out")
    finally:
        os.close(r)
        os.close(w)
