"""testcontainers-python against hafend: start a container, wait for its log message."""

from __future__ import annotations

import os

import pytest

from tests.conftest import Hafend

testcontainers = pytest.importorskip("testcontainers")


def test_testcontainers_waits_for_a_log_message(
    hafend: Hafend, monkeypatch: pytest.MonkeyPatch
) -> None:
    from testcontainers.core.container import DockerContainer
    from testcontainers.core.wait_strategies import LogMessageWaitStrategy

    monkeypatch.setenv("DOCKER_HOST", hafend.host)
    monkeypatch.setenv("TESTCONTAINERS_RYUK_DISABLED", "true")  # no reaper image here
    container = DockerContainer("busybox").with_command(
        ["sh", "-c", "sleep 0.5; echo service is ready; sleep 30"]
    )
    container.with_env("GREETING", "hello")
    container.waiting_for(LogMessageWaitStrategy("service is ready").with_startup_timeout(20))
    with container:  # returns once the message is in the logs
        assert b"service is ready" in container.get_logs()[0]
        code, output = container.exec(["sh", "-c", "echo $GREETING"])
        assert code == 0 and output == b"hello\n"
        wrapped = container.get_wrapped_container()
        assert wrapped.status in ("running", "created")
    assert os.environ["DOCKER_HOST"] == hafend.host
