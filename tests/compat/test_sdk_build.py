"""The Docker SDK for Python's ``images.build`` (and the low-level API) against hafend."""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Hafend

docker = pytest.importorskip("docker")


@pytest.fixture
def sdk(hafend: Hafend) -> Iterator[Any]:
    client = docker.DockerClient(base_url=hafend.host, timeout=120)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(autouse=True, scope="module")
def _leave_only_busybox(hafend: Hafend) -> Iterator[None]:
    """The session daemon is shared: this module's images and build cache go at its end."""
    yield
    keep = hafend.cli("images", "-q", "--no-trunc", "busybox").stdout.split()
    ids = hafend.cli("images", "-a", "-q", "--no-trunc").stdout.split()
    for image_id in ids:
        if image_id not in keep:
            hafend.cli("rmi", "-f", image_id, check=False)
    hafend.cli("builder", "prune", "-f", check=False)


def test_images_build_from_a_path_with_buildargs_target_and_labels(
    sdk: Any, hafend: Hafend, tmp_path: Path
) -> None:
    (tmp_path / "Dockerfile").write_text(
        "FROM busybox AS base\nARG WHO=nobody\nRUN echo hello $WHO > /greeting\n"
        'FROM base AS final\nCOPY note.txt /note.txt\nCMD ["cat", "/greeting"]\n'
    )
    (tmp_path / "note.txt").write_text("note")
    image, logs = sdk.images.build(
        path=str(tmp_path), tag="sdk-built:1", buildargs={"WHO": "sdk"}, target="final",
        labels={"made.by": "sdk"}, rm=True,
    )  # fmt: skip
    assert "sdk-built:1" in image.tags
    assert image.labels == {"made.by": "sdk"}
    streamed = "".join(chunk.get("stream", "") for chunk in logs)
    assert "Step 1/" in streamed and "Successfully built" in streamed
    assert hafend.cli("run", "--rm", "sdk-built:1").stdout == "hello sdk\n"


def test_images_build_from_a_fileobj_dockerfile(sdk: Any) -> None:
    image, _ = sdk.images.build(fileobj=io.BytesIO(b"FROM busybox\nENV SDK_FILEOBJ=1\n"))
    assert "SDK_FILEOBJ=1" in image.attrs["Config"]["Env"]


def test_build_error_raises_build_error_with_the_log(sdk: Any, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text("FROM busybox\nRUN echo sdk-fail-output; exit 2\n")
    with pytest.raises(docker.errors.BuildError) as info:
        sdk.images.build(path=str(tmp_path))
    assert "returned a non-zero code: 2" in str(info.value)
    assert any("sdk-fail-output" in chunk.get("stream", "") for chunk in info.value.build_log)


def test_low_level_build_stream_and_cache(sdk: Any, hafend: Hafend, tmp_path: Path) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM busybox\nRUN echo {tmp_path.name}\n")
    first = list(sdk.api.build(path=str(tmp_path), decode=True))
    ids = [m["aux"]["ID"] for m in first if "aux" in m]
    again = list(sdk.api.build(path=str(tmp_path), decode=True))
    assert any(" ---> Using cache" in m.get("stream", "") for m in again)
    assert [m["aux"]["ID"] for m in again if "aux" in m] == ids
