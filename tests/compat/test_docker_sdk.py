"""The Docker SDK for Python (``docker`` on PyPI) against hafend."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Hafend

docker = pytest.importorskip("docker")


@pytest.fixture
def sdk(hafend: Hafend) -> Iterator[Any]:
    client = docker.DockerClient(base_url=hafend.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture
def sleeper(sdk: Any) -> Iterator[Any]:
    container = sdk.containers.run("busybox", ["sleep", "300"], detach=True)
    try:
        yield container
    finally:
        container.remove(force=True)


def test_sdk_exec_run_output_and_exit_code(sleeper: Any) -> None:
    result = sleeper.exec_run(["sh", "-c", "echo out; echo err >&2; exit 4"], demux=True)
    assert result.exit_code == 4
    assert result.output == (b"out\n", b"err\n")
    result = sleeper.exec_run("pwd", workdir="/tmp", user="nobody", environment={"A": "1"})
    assert result.exit_code == 0 and result.output == b"/tmp\n"


def test_sdk_exec_run_streamed_and_tty(sleeper: Any) -> None:
    result = sleeper.exec_run(["sh", "-c", "echo 1; echo 2"], stream=True)
    assert b"".join(result.output) == b"1\n2\n"
    result = sleeper.exec_run("tty", tty=True)
    assert result.exit_code == 0 and result.output.startswith(b"/dev/pts/")


def test_sdk_exec_detached_and_inspect(sdk: Any, sleeper: Any) -> None:
    api = sdk.api
    exec_id = api.exec_create(sleeper.id, ["sh", "-c", "exit 9"])["Id"]
    api.exec_start(exec_id, detach=True)
    import time

    deadline = time.monotonic() + 10
    while api.exec_inspect(exec_id)["ExitCode"] is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert api.exec_inspect(exec_id)["ExitCode"] == 9


def test_sdk_events_decoded_with_filters(sdk: Any) -> None:
    import time

    since = time.time()
    sdk.containers.run("busybox", "true", name="sdk-ev", remove=True)
    events = list(
        sdk.events(
            since=since, until=time.time() + 0.3, decode=True, filters={"container": "sdk-ev"}
        )
    )
    # the SDK's run starts detached, waits and reads the logs: no attach event
    assert [e["Action"] for e in events] == ["create", "start", "die", "destroy"]
    assert events[2]["Actor"]["Attributes"]["exitCode"] == "0"


def test_sdk_ping_version_info(sdk: Any) -> None:
    assert sdk.ping() is True
    assert sdk.version()["ApiVersion"] == "1.45"
    assert "Containers" in sdk.info()


def test_sdk_put_and_get_archive(sleeper: Any) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo("greeting.txt")
        info.size = 3
        tar.addfile(info, io.BytesIO(b"hi\n"))
    assert sleeper.put_archive("/tmp", buf.getvalue()) is True
    chunks, stat = sleeper.get_archive("/tmp/greeting.txt")
    assert stat["name"] == "greeting.txt" and stat["size"] == 3
    with tarfile.open(fileobj=io.BytesIO(b"".join(chunks))) as tar:
        member = tar.extractfile("greeting.txt")
        assert member is not None and member.read() == b"hi\n"


def test_sdk_logs_stream_attach_wait(sdk: Any) -> None:
    container = sdk.containers.run(
        "busybox", ["sh", "-c", "sleep 0.5; echo one; echo two >&2; exit 3"], detach=True
    )
    try:
        stream = container.attach(stdout=True, stderr=True, stream=True, logs=True)
        assert b"".join(stream).split() == [b"one", b"two"]
        assert container.wait(timeout=20)["StatusCode"] == 3
        streamed = b"".join(container.logs(stream=True, follow=False))
        assert streamed.split() == [b"one", b"two"]
        assert container.logs(stderr=False) == b"one\n"
        assert container.logs(timestamps=True).split()[0].endswith(b"Z")
    finally:
        container.remove(force=True)


def test_sdk_top_stats_commit(sdk: Any, sleeper: Any) -> None:
    top = sleeper.top()
    assert any("sleep" in " ".join(p) for p in top["Processes"])
    stats = sleeper.stats(stream=False)
    assert stats["memory_stats"] and "cpu_stats" in stats
    image = sleeper.commit(repository="sdk-committed", tag="v1")
    try:
        assert "sdk-committed:v1" in image.tags
    finally:
        sdk.images.remove("sdk-committed:v1")


def test_sdk_df_and_prune(sdk: Any) -> None:
    stopped = sdk.containers.create("busybox", "true")
    df = sdk.df()
    assert any(c["Id"] == stopped.id for c in df["Containers"])
    assert df["LayersSize"] > 0
    pruned = sdk.containers.prune()
    assert stopped.id in (pruned["ContainersDeleted"] or [])
