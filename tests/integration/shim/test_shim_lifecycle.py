"""A shim's life with runc: launch, start, log, exit status, kill, exit.json, clean exit."""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from hafen.errors import RuntimeFailure
from hafen.shim.client import ExitStatus, read_exit_status

from .conftest import RUNTIME, Shims, pid_alive, ppid_of, run, runtime_has_state, wait_gone

RFC3339_NANO = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z$")


def test_launch_reports_created_container_and_a_detached_shim(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    assert c.info.pid > 0 and c.info.shim_pid > 0
    assert pid_alive(c.info.pid) and pid_alive(c.info.shim_pid)
    # the shim is nobody's child here: the launcher exited and it was reparented
    assert ppid_of(c.info.shim_pid) != 0
    assert ppid_of(c.info.shim_pid) != os.getpid()
    # the container init's parent is the shim (subreaper), not the runtime
    assert ppid_of(c.info.pid) == c.info.shim_pid
    info = json.loads((c.state_dir / "shim.json").read_text())
    assert info == {"shim_pid": c.info.shim_pid, "pid": c.info.pid}
    assert (c.state_dir / "shim.sock").exists()
    assert run(c.client.state()) == {"pid": c.info.pid, "status": "created"}
    assert runtime_has_state(shims, c.id)
    # not started yet: the init is still the runtime's, waiting to exec
    with open(f"/proc/{c.info.pid}/cmdline", "rb") as f:
        assert f.read().split(b"\0")[0] != b"sleep"


def test_start_runs_the_container_and_state_follows(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    run(c.client.start())
    assert run(c.client.state()) == {"pid": c.info.pid, "status": "running"}
    # start returns once the init is released to exec (as runc's): the exec may still run
    deadline = time.monotonic() + 5
    while True:
        with open(f"/proc/{c.info.pid}/cmdline", "rb") as f:
            argv0 = f.read().split(b"\0")[0]
        if argv0 == b"sleep" or time.monotonic() > deadline:
            break
        time.sleep(0.005)
    assert argv0 == b"sleep"
    run(c.client.kill(9))
    assert run(c.client.wait()).exit_code == 137


def test_stdout_and_stderr_land_in_the_json_log(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "echo out; echo err >&2; printf partial"])
    run(c.client.start())
    assert run(c.client.wait()).exit_code == 0
    records = c.log_records()
    by_stream = {
        s: "".join(r["log"] for r in records if r["stream"] == s) for s in ("stdout", "stderr")
    }
    assert by_stream == {"stdout": "out\npartial", "stderr": "err\n"}
    assert {"log": "partial", "stream": "stdout"}.items() <= records[-1].items() or any(
        r["log"] == "partial" for r in records
    )
    for r in records:
        assert set(r) == {"log", "stream", "time"}
        assert RFC3339_NANO.match(r["time"]), r["time"]
        datetime.fromisoformat(r["time"][:26] + "+00:00")  # a real date


@pytest.mark.parametrize(("args", "expected"), [(["true"], 0), (["sh", "-c", "exit 3"], 3)])
def test_exit_code_is_recorded(shims: Shims, args: list[str], expected: int) -> None:
    c = shims.launch(args)
    run(c.client.start())
    status = run(c.client.wait())
    assert status.exit_code == expected
    assert RFC3339_NANO.match(status.exited_at)
    assert status.oom_killed is False
    on_disk = json.loads((c.state_dir / "exit.json").read_text())
    assert on_disk == {"exit_code": expected, "exited_at": status.exited_at, "oom_killed": False}


def test_kill_signals_the_container_and_records_128_plus_signal(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    run(c.client.start())
    run(c.client.kill(9))
    status = run(c.client.wait())
    assert status.exit_code == 137


def test_kill_all_reaches_every_process(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "sleep 100 & sleep 100 & wait"])
    run(c.client.start())
    run(c.client.kill(9, all=True))
    assert run(c.client.wait()).exit_code == 137


def test_kill_of_a_created_container_ends_it_without_start(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    run(c.client.kill(9))
    assert run(c.client.wait()).exit_code == 137


def test_oom_kill_is_recorded(shims: Shims) -> None:
    def limit_memory(spec: dict[str, Any]) -> None:
        limit = 16 * 1024 * 1024
        spec["linux"].setdefault("resources", {})["memory"] = {"limit": limit, "swap": limit}

    # tail buffers /dev/zero, which never ends a line, until the OOM killer stops it
    c = shims.launch(["tail", "/dev/zero"], edit=limit_memory)
    run(c.client.start())
    status = run(c.client.wait())
    assert (status.exit_code, status.oom_killed) == (137, True)
    assert json.loads((c.state_dir / "exit.json").read_text())["oom_killed"] is True


def test_shim_cleans_up_after_the_exit(shims: Shims) -> None:
    c = shims.launch(["true"])
    run(c.client.start())
    run(c.client.wait())
    assert wait_gone(c.info.shim_pid)
    assert not (c.state_dir / "shim.sock").exists()
    assert not runtime_has_state(shims, c.id)  # runtime delete ran
    assert not run(c.client.alive())
    # a daemon that comes back later finds the exit on disk
    assert read_exit_status(str(c.state_dir)) == ExitStatus(
        0, json.loads((c.state_dir / "exit.json").read_text())["exited_at"], False
    )
    assert run(c.client.wait()).exit_code == 0


def _slow_delete_runtime(tmp_path: Path) -> Path:
    """The suite's runtime, but its delete takes 0.5 s longer."""
    slow = tmp_path / "slow-delete-runtime"
    slow.write_text(
        "#!/bin/sh\n"
        'for a in "$@"; do [ "$a" = delete ] && sleep 0.5; done\n'
        f'exec {" ".join(RUNTIME)} "$@"\n'
    )
    slow.chmod(0o755)
    return slow


def test_wait_answers_only_after_the_runtimes_state_is_deleted(
    shims: Shims, tmp_path: Path
) -> None:
    # What the daemon does next: delete the state dir, where the runtime logs (runc opens
    # its --log there on every call). A wait answered while the runtime's delete still
    # ran would leave the runtime's state and cgroup behind. A slow delete opens the
    # window wide: the wait comes while it runs.
    slow = _slow_delete_runtime(tmp_path)
    c = shims.launch(["true"], runtime=[str(slow)])
    run(c.client.start())
    time.sleep(0.2)  # exited, exit.json written, the delete under way
    assert run(c.client.wait()).exit_code == 0
    shutil.rmtree(c.state_dir, ignore_errors=True)
    assert wait_gone(c.info.shim_pid)
    assert not runtime_has_state(shims, c.id)


def test_wait_exit_gives_the_exit_first_and_the_release_after_the_runtimes_delete(
    shims: Shims, tmp_path: Path
) -> None:
    # the daemon unmounts while the shim deletes the runtime's state, and takes the
    # state dir once the shim's connection ends
    slow = _slow_delete_runtime(tmp_path)
    # running when the wait comes, so that the wait is registered before the exit
    c = shims.launch(["sh", "-c", "sleep 0.3; exit 4"], runtime=[str(slow)])

    async def scenario() -> tuple[int, float, float, bool]:
        await c.client.start()
        t0 = time.monotonic()
        status, released = await c.client.wait_exit()
        t1 = time.monotonic()
        state_while_deleting = runtime_has_state(shims, c.id)
        await released
        return status.exit_code, t1 - t0, time.monotonic() - t1, state_while_deleting

    code, to_exit, to_release, state_while_deleting = run(scenario())
    assert code == 4
    assert to_exit < 0.3 + 0.45 and to_release > 0.2  # the exit, then the 0.5 s delete
    assert state_while_deleting  # the runtime's state was still there
    assert not runtime_has_state(shims, c.id)


def test_wait_on_a_vanished_shim_without_exit_record_fails(shims: Shims) -> None:
    c = shims.launch(["true"])
    run(c.client.start())
    run(c.client.wait())
    assert wait_gone(c.info.shim_pid)
    (c.state_dir / "exit.json").unlink()
    with pytest.raises(RuntimeFailure, match="no exit recorded"):
        run(c.client.wait())


def test_several_waiters_all_get_the_exit(shims: Shims) -> None:
    import asyncio

    c = shims.launch(["sh", "-c", "sleep 0.3; exit 5"])

    async def scenario() -> list[ExitStatus]:
        waits = [asyncio.ensure_future(c.client.wait()) for _ in range(3)]
        await asyncio.sleep(0.05)
        await c.client.start()
        return list(await asyncio.gather(*waits))

    statuses = run(scenario())
    assert [s.exit_code for s in statuses] == [5, 5, 5]
    assert len({s.exited_at for s in statuses}) == 1


def test_orphans_are_reaped_by_the_shim(shims: Shims) -> None:
    # the init forks a child and exits; the pid namespace dies with the init
    c = shims.launch(["sh", "-c", "sleep 100 & exit 7"])
    run(c.client.start())
    assert run(c.client.wait()).exit_code == 7
    assert wait_gone(c.info.shim_pid)


def test_shim_survives_the_launchers_parent_and_keeps_logging(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "read x; echo after $x"], stdin=True)
    run(c.client.start())
    # no client is connected between these calls: the shim holds the container alone
    time.sleep(0.2)
    assert pid_alive(c.info.shim_pid) and pid_alive(c.info.pid)

    async def send() -> None:
        _reader, writer = await c.client.attach(True, False, False)
        writer.write(b"reconnected\n")
        await writer.drain()
        writer.close()

    run(send())
    assert run(c.client.wait()).exit_code == 0
    assert [r["log"] for r in c.log_records()] == ["after reconnected\n"]
