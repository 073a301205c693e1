"""Healthchecks: status transitions, FailingStreak, the log, events, ps, --no-healthcheck."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

from tests.conftest import Hafend
from tests.integration.test_events import events_between


def eventually(check: Callable[[], bool], timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def health(d: Hafend, name: str) -> dict:
    return json.loads(d.cli("inspect", "-f", "{{json .State.Health}}", name).stdout)


def test_health_goes_unhealthy_then_healthy_with_events(hafend: Hafend) -> None:
    since = time.time()
    hafend.cli(
        "run", "-d", "--name", "hc", "--health-cmd", "test -e /tmp/ok && echo fine",
        "--health-interval", "200ms", "--health-retries", "2", "busybox", "sleep", "60",
    )  # fmt: skip
    try:
        assert health(hafend, "hc")["Status"] == "starting"
        assert "(health: starting)" in hafend.cli("ps", "--filter", "name=hc").stdout
        eventually(lambda: health(hafend, "hc")["Status"] == "unhealthy")
        h = health(hafend, "hc")
        assert h["FailingStreak"] >= 2 and h["Log"][-1]["ExitCode"] == 1
        hafend.cli("exec", "hc", "touch", "/tmp/ok")
        eventually(lambda: health(hafend, "hc")["Status"] == "healthy")
        h = health(hafend, "hc")
        assert h["FailingStreak"] == 0 and h["Log"][-1]["Output"] == "fine\n"
        assert len(h["Log"]) <= 5
        assert "(healthy)" in hafend.cli("ps", "--filter", "health=healthy").stdout
        config = json.loads(
            hafend.cli("inspect", "-f", "{{json .Config.Healthcheck}}", "hc").stdout
        )
        assert config["Test"] == ["CMD-SHELL", "test -e /tmp/ok && echo fine"]
        assert config["Interval"] == 200_000_000 and config["Retries"] == 2
        evs = events_between(hafend, since, time.time(), {"container": ["hc"]})
        statuses = [e["Action"] for e in evs if e["Action"].startswith("health_status")]
        assert statuses == ["health_status: unhealthy", "health_status: healthy"]
    finally:
        hafend.cli("rm", "-f", "hc")


def test_health_probe_timeout_and_no_healthcheck(hafend: Hafend) -> None:
    hafend.cli(
        "run", "-d", "--name", "hc-slow", "--health-cmd", "sleep 5", "--health-interval",
        "100ms", "--health-timeout", "200ms", "--health-retries", "1", "busybox", "sleep", "60",
    )  # fmt: skip
    try:
        eventually(lambda: health(hafend, "hc-slow")["Status"] == "unhealthy")
        assert "exceeded timeout" in health(hafend, "hc-slow")["Log"][-1]["Output"]
    finally:
        hafend.cli("rm", "-f", "hc-slow")
    cid = hafend.cli("run", "-d", "--no-healthcheck", "busybox", "sleep", "60").stdout.strip()
    try:
        out = hafend.cli("inspect", "-f", "{{json .State.Health}}", cid).stdout.strip()
        assert out == "null"
        r = hafend.cli("run", "--no-healthcheck", "--health-cmd", "true", "busybox", "true",
                       check=False)  # fmt: skip
        assert r.returncode != 0 and "conflicts" in r.stderr
    finally:
        hafend.cli("rm", "-f", cid)


def test_health_probe_timeout_kills_the_probe_tree(hafend: Hafend) -> None:
    """A probe past --health-timeout is killed with its children and counts as a failure."""
    hafend.cli(
        "run", "-d", "--name", "hc-kill", "--health-cmd", "sleep 10 & sleep 10; wait",
        "--health-interval", "300ms", "--health-timeout", "1s", "--health-retries", "100",
        "busybox", "sleep", "60",
    )  # fmt: skip
    try:
        eventually(lambda: health(hafend, "hc-kill")["FailingStreak"] >= 2, timeout=20)
        first = health(hafend, "hc-kill")
        assert first["Status"] == "starting"  # retries not reached yet
        assert first["Log"][-1]["ExitCode"] == -1
        assert first["Log"][-1]["Output"] == "Health check exceeded timeout (1s)"
        streak = first["FailingStreak"]
        eventually(lambda: health(hafend, "hc-kill")["FailingStreak"] > streak, timeout=20)
        # every finished probe's processes are dead: only the probe running now (two
        # sleeps at most) may be alive; a leak would show two more per finished probe.
        # (Killed orphans are zombies of the container's init, `sleep 60`, which never
        # reaps — as under dockerd without --init; a zombie has no args.)
        top = hafend.cli("top", "hc-kill", "-o", "pid,args").stdout.splitlines()[1:]
        sleeps = [line for line in top if line.split(None, 1)[1:] == ["sleep 10"]]
        assert len(sleeps) <= 2, top
    finally:
        hafend.cli("rm", "-f", "hc-kill")
