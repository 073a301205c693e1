"""Live restore: containers outlive a SIGKILLed daemon and are re-adopted when it returns."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import time

from tests.conftest import HAFEN, Hafend


def test_daemon_sigkill_leaves_containers_running_and_restart_readopts_them(
    fresh_hafend: Hafend,
) -> None:
    d = fresh_hafend
    cid = d.cli(
        "run", "-d", "--name", "survivor", "busybox", "sh", "-c",
        "trap 'echo bye; exit 7' TERM; i=0; while true; do echo beat $i; i=$((i+1)); sleep 0.2; done",
    ).stdout.strip()  # fmt: skip
    quick = d.cli(
        "run", "-d", "--name", "quick", "busybox", "sh", "-c", "sleep 1; exit 5"
    ).stdout.strip()
    # an auto-remove container whose exit the daemon misses: its record still says
    # "running" (no "exited" is written for these before the removal); restore removes it
    gone = d.cli("run", "-d", "--rm", "busybox", "sh", "-c", "sleep 1; exit 3").stdout.strip()
    pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    d.kill(signal.SIGKILL)

    time.sleep(1.5)  # "quick" exits while no daemon runs
    os.kill(pid, 0)  # still alive without its daemon
    d.start()

    assert d.cli("inspect", "-f", "{{.State.Running}}", "survivor").stdout.strip() == "true"
    assert "survivor" in d.cli("ps").stdout
    assert gone not in d.cli("ps", "-aq", "--no-trunc").stdout
    assert not (d.data_root / "containers" / gone).exists()
    assert not (d.exec_root / "containers" / gone).exists()
    # the exit that happened while the daemon was down is recorded with its real code
    assert (
        d.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", quick).stdout.strip()
        == "exited 5"
    )
    logs = d.cli("logs", "survivor").stdout
    assert "beat 0" in logs and "beat 7" in logs  # kept logging while the daemon was down

    d.cli("stop", "-t", "5", "survivor")
    assert d.cli("wait", "survivor").stdout.strip() == "7"
    assert d.cli("logs", "--tail", "1", "survivor").stdout == "bye\n"


def test_sigterm_with_streaming_clients_attached_exits_at_once_and_containers_run_on(
    fresh_hafend: Hafend,
) -> None:
    d = fresh_hafend
    cid = d.cli("run", "-d", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.2; done")
    cid_s = cid.stdout.strip()
    pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", cid_s).stdout)
    followers = [
        subprocess.Popen([HAFEN, "-H", d.host, *args], stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, env=d.env)
        for args in (["events"], ["logs", "-f", cid_s], ["stats"])
    ]  # fmt: skip
    try:
        time.sleep(1.0)  # every stream is open and being fed
        assert all(p.poll() is None for p in followers)
        started = time.monotonic()
        assert d.proc is not None
        d.proc.send_signal(signal.SIGTERM)
        d.proc.wait(timeout=30)
        took = time.monotonic() - started
        d.proc = None
        # aiohttp's default grace kept the daemon up two minutes per open stream
        assert took < 10, f"hafend took {took:.1f}s to exit with streams attached"
        for p in followers:  # their streams ended with the daemon
            p.wait(timeout=10)
        os.kill(pid, 0)  # the container outlives its daemon
    finally:
        for p in followers:
            if p.poll() is None:
                p.kill()
                p.wait()
    d.start()
    assert d.cli("inspect", "-f", "{{.State.Running}}", cid_s).stdout.strip() == "true"


def test_restart_deletes_the_storage_of_containers_left_without_a_record(
    fresh_hafend: Hafend,
) -> None:
    # A crash after a removal deleted the record but before its layer and files went:
    # the next start deletes them; a container with a record keeps its own.
    d = fresh_hafend
    kept = d.cli("create", "busybox", "true").stdout.strip()
    lost = d.cli("create", "busybox", "true").stdout.strip()
    active = d.data_root / "snapshots" / "overlay" / "active"
    assert (active / lost).is_dir() and (d.data_root / "containers" / lost).is_dir()
    d.kill(signal.SIGKILL)
    with sqlite3.connect(d.data_root / "metadata.db") as db:
        db.execute("DELETE FROM containers WHERE id = ?", (lost,))
    d.start()

    assert not (active / lost).exists()
    assert not (d.data_root / "containers" / lost).exists()
    assert (active / kept).is_dir() and (d.data_root / "containers" / kept).is_dir()
    d.cli("start", "-a", kept)
    assert d.cli("inspect", "-f", "{{.State.ExitCode}}", kept).stdout.strip() == "0"


def test_restart_adopts_a_container_whose_start_it_had_not_recorded(
    fresh_hafend: Hafend,
) -> None:
    # The launch starts the container; the record says so a moment later. A daemon
    # killed in between left the record at "created" with the container running: the
    # next start adopts it as running instead of leaving it unwatched.
    d = fresh_hafend
    cid = d.cli("run", "-d", "--name", "half", "busybox", "sleep", "60").stdout.strip()
    pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    d.kill(signal.SIGKILL)
    d.edit_record(cid, lambda r: r["state"].update(status="created", pid=0, shim_pid=0))
    d.start()

    assert d.cli("inspect", "-f", "{{.State.Running}} {{.State.Pid}}", cid).stdout.split() == [
        "true",
        str(pid),
    ]
    d.cli("stop", "-t", "1", "half")
    assert d.cli("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"


def test_restart_deletes_a_container_whose_shim_died_with_the_daemon_away(
    fresh_hafend: Hafend,
) -> None:
    # The shim is what stops, reaps and deletes a container; one killed while no daemon
    # runs leaves the container's processes running unwatched. The next daemon deletes
    # them through the runtime (containerd does the same for a dead shim) and records
    # the exit it never saw.
    d = fresh_hafend
    cid = d.cli("run", "-d", "--name", "orphan", "busybox", "sleep", "600").stdout.strip()
    state = json.loads(d.cli("inspect", cid).stdout)[0]["State"]
    pid = state["Pid"]
    d.kill(signal.SIGKILL)
    [shim] = d.shim_pids()
    os.kill(shim, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{shim}"):
        time.sleep(0.05)
    os.kill(pid, 0)  # the container runs on without its shim
    d.start()

    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and os.path.exists(f"/proc/{pid}"):
        time.sleep(0.05)
    assert not os.path.exists(f"/proc/{pid}")
    assert d.cli("inspect", "-f", "{{.State.Status}} {{.State.ExitCode}}", cid).stdout.split() == [
        "exited",
        "255",
    ]
    assert not list((d.exec_root / "runtime").glob(f"{cid}*"))
    d.cli("start", "orphan")  # a fresh start of the same container works
    assert d.cli("inspect", "-f", "{{.State.Running}}", cid).stdout.strip() == "true"
    d.cli("rm", "-f", "orphan")


def test_restart_records_what_the_freezer_says_after_a_cut_short_pause(
    fresh_hafend: Hafend,
) -> None:
    # A pause freezes the container and then saves the record: a daemon killed in
    # between left a frozen container recorded as running, which a stop then signalled
    # in vain (it does not thaw a container it thinks is running). An unpause cut short
    # leaves the reverse. The restarted daemon records the freezer's state.

    d = fresh_hafend
    cid = d.cli("run", "-d", "busybox", "sleep", "600").stdout.strip()

    def rewrite_status(status: str) -> None:
        d.edit_record(cid, lambda r: r["state"].update(status=status))

    d.cli("pause", cid)
    d.kill(signal.SIGKILL)
    rewrite_status("running")
    d.start()
    assert d.cli("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "paused"

    d.cli("unpause", cid)
    d.kill(signal.SIGKILL)
    rewrite_status("paused")
    d.start()
    assert d.cli("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "running"
    d.cli("pause", cid)
    d.cli("stop", "-t", "1", cid)  # a paused container is thawed to be stopped
    assert d.cli("inspect", "-f", "{{.State.Status}}", cid).stdout.strip() == "exited"
