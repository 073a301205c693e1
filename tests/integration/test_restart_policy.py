"""Restart policies with dockerd's back-off, restart/rename verbs, across daemon restarts."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable

from tests.conftest import Hafend


def inspect(d: Hafend, name: str, fmt: str) -> str:
    return d.cli("inspect", "-f", fmt, name).stdout.strip()


def eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def test_on_failure_restarts_at_most_n_times(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "rp-fail", "--restart", "on-failure:2", "busybox",
               "sh", "-c", "exit 3")  # fmt: skip
    try:
        # back-off 100 ms then 200 ms: two restarts, then it stays down
        eventually(lambda: inspect(hafend, "rp-fail", "{{.RestartCount}} {{.State.Status}}")
                   == "2 exited")  # fmt: skip
        time.sleep(1)
        assert inspect(hafend, "rp-fail", "{{.RestartCount}} {{.State.ExitCode}}") == "2 3"
    finally:
        hafend.cli("rm", "-f", "rp-fail")


def test_on_failure_leaves_a_clean_exit_alone(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "rp-ok", "--restart", "on-failure", "busybox", "true")
    try:
        eventually(lambda: inspect(hafend, "rp-ok", "{{.State.Status}}") == "exited")
        time.sleep(0.5)
        assert inspect(hafend, "rp-ok", "{{.RestartCount}}") == "0"
    finally:
        hafend.cli("rm", "-f", "rp-ok")


def test_always_restarts_until_stopped_and_restart_verb(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "rp-always", "--restart", "always", "busybox",
               "sh", "-c", "sleep 0.2")  # fmt: skip
    try:
        eventually(lambda: int(inspect(hafend, "rp-always", "{{.RestartCount}}")) >= 2)
        hafend.cli("stop", "rp-always")
        count = inspect(hafend, "rp-always", "{{.RestartCount}}")
        time.sleep(1)
        assert inspect(hafend, "rp-always", "{{.State.Status}}") == "exited"
        assert inspect(hafend, "rp-always", "{{.RestartCount}}") == count
        hafend.cli("restart", "rp-always")
        assert inspect(hafend, "rp-always", "{{.State.Status}}") in ("running", "restarting")
    finally:
        hafend.cli("rm", "-f", "rp-always")


def test_bad_restart_policies_are_refused(hafend: Hafend) -> None:
    r = hafend.cli("run", "--restart", "sometimes", "busybox", "true", check=False)
    assert r.returncode == 125 and "invalid restart policy" in r.stderr
    r = hafend.cli("run", "--rm", "--restart", "always", "busybox", "true", check=False)
    assert r.returncode == 125 and "onflicting options" in r.stderr


def test_rename_and_its_errors(hafend: Hafend) -> None:
    hafend.cli("create", "--name", "rn-a", "busybox", "true")
    hafend.cli("create", "--name", "rn-b", "busybox", "true")
    try:
        hafend.cli("rename", "rn-a", "rn-c")
        assert inspect(hafend, "rn-c", "{{.Name}}") == "/rn-c"
        r = hafend.cli("rename", "rn-c", "rn-b", check=False)
        assert r.returncode == 1 and "is already in use" in r.stderr
        r = hafend.cli("rename", "rn-c", "bad name!", check=False)
        assert r.returncode == 1 and "Invalid container name" in r.stderr
        r = hafend.cli("rename", "nope", "x", check=False)
        assert "No such container: nope" in r.stderr
    finally:
        hafend.cli("rm", "-f", "rn-a", "rn-b", "rn-c", check=False)


def test_policies_survive_a_daemon_restart(fresh_hafend: Hafend) -> None:
    d = fresh_hafend
    d.cli("run", "-d", "--name", "keeps", "--restart", "always", "busybox",
          "sh", "-c", "sleep 1; exit 4")  # fmt: skip
    d.cli("run", "-d", "--name", "stopped", "--restart", "unless-stopped", "busybox",
          "sleep", "100")  # fmt: skip
    d.cli("stop", "-t", "0", "stopped")
    d.cli("run", "-d", "--name", "gone", "--rm", "busybox", "sh", "-c", "sleep 1")
    d.kill(signal.SIGKILL)
    time.sleep(1.5)  # "keeps" and "gone" exit while no daemon runs
    d.start()
    eventually(lambda: int(inspect(d, "keeps", "{{.RestartCount}}")) >= 1)
    assert inspect(d, "keeps", "{{.State.ExitCode}}") in ("0", "4")
    assert inspect(d, "stopped", "{{.State.Status}}") == "exited"
    assert d.cli("inspect", "gone", check=False).returncode != 0  # --rm honoured after restart


def test_restart_right_after_the_exit_finds_its_bundle(hafend: Hafend) -> None:
    # the exit's clean-up (the state dir) must be over before the next start makes it
    # anew: a restart racing it lost its config.json
    hafend.cli("run", "-d", "--name", "rp-quick", "busybox", "sleep", "60")
    try:
        for _ in range(5):
            hafend.cli("restart", "-t", "0", "rp-quick")
            assert inspect(hafend, "rp-quick", "{{.State.Running}}") == "true"
    finally:
        hafend.cli("rm", "-f", "rp-quick")
