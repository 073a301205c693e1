"""Live restore: containers outlive a SIGKILLed daemon and are re-adopted when it returns."""

from __future__ import annotations

import os
import signal
import time

from tests.conftest import Hafend


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
