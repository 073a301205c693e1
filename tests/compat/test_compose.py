"""docker-compose 1.29 (the Python one, Debian's package) against hafend: up, ps, logs,
exec, down for a two-service app. The daemon runs in a private network namespace because
compose creates the app's bridge network."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.network.conftest import NetHafend
from tests.integration.test_events import events_between

COMPOSE = shutil.which("docker-compose")
pytestmark = pytest.mark.skipif(COMPOSE is None, reason="docker-compose is not installed")

APP = """\
version: "3.8"
services:
  web:
    image: busybox
    command: ["sh", "-c", "echo web is up; exec httpd -f -p 8080"]
    labels:
      tier: front
  worker:
    image: busybox
    command: ["sh", "-c", "echo worker started; sleep 300"]
    depends_on: [web]
    environment:
      ROLE: worker
"""


@pytest.fixture(scope="module")
def compose_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-compose"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def compose(
    d: NetHafend, project: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    r = subprocess.run(
        [COMPOSE, "-p", "hafenapp", *args], cwd=project, capture_output=True, text=True,
        timeout=120, env={**d.env, "COMPOSE_INTERACTIVE_NO_CLI": "1"},
    )  # fmt: skip
    if check and r.returncode != 0:
        raise AssertionError(
            f"docker-compose {' '.join(args)}: {r.returncode}\n{r.stdout}\n{r.stderr}"
        )
    return r


def test_compose_up_ps_logs_exec_down(compose_hafend: NetHafend, tmp_path: Path) -> None:
    d = compose_hafend
    since = time.time()
    (tmp_path / "docker-compose.yml").write_text(APP)
    compose(d, tmp_path, "up", "-d")
    try:
        ps = compose(d, tmp_path, "ps").stdout
        assert "hafenapp_web_1" in ps and "hafenapp_worker_1" in ps and ps.count(" Up ") == 2
        deadline = time.monotonic() + 15
        while "worker started" not in compose(d, tmp_path, "logs", "worker").stdout:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert "web is up" in compose(d, tmp_path, "logs", "--no-color", "web").stdout
        out = compose(d, tmp_path, "exec", "-T", "worker", "sh", "-c", "echo $ROLE").stdout
        assert out.strip() == "worker"
        # the worker reaches the web service by name on the app's network
        fetched = compose(d, tmp_path, "exec", "-T", "worker", "wget", "-q", "-O", "-",
                          "http://web:8080/", check=False)  # fmt: skip
        assert fetched.returncode in (0, 1)  # httpd has no index: 404 is still an answer
        assert "bad address" not in fetched.stderr
    finally:
        down = compose(d, tmp_path, "down", check=False)
    assert down.returncode == 0, down.stderr
    assert d.cli("ps", "-aq").stdout.strip() == ""
    assert "hafenapp_default" not in d.cli("network", "ls").stdout
    evs = events_between(d, since, time.time(), {"type": ["network"]})
    mine = [e["Action"] for e in evs if e["Actor"]["Attributes"].get("name") == "hafenapp_default"]
    assert mine[0] == "create" and mine[-1] == "destroy"
    assert mine.count("connect") == 2 and mine.count("disconnect") == 2
