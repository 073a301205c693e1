"""FROM pulls a missing base image (and --pull a present one) from Debian's docker-registry."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.registries import REGISTRY, DockerRegistry, free_port
from tests.conftest import Hafend

pytestmark = pytest.mark.skipif(
    not Path(REGISTRY).exists(), reason="Debian's docker-registry is not installed"
)


@pytest.fixture
def own_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DockerRegistry]:
    """A registry of this module's own: its pushes must not change what others' tests
    see (cross-repository mounts name any repository that has the blob)."""
    registry = DockerRegistry(tmp_path_factory.mktemp("registry-build")).start()
    yield registry
    registry.stop()


def test_from_pulls_a_missing_base_and_pull_refreshes(
    hafend: Hafend, fresh_hafend: Hafend, own_registry: DockerRegistry, tmp_path: Path
) -> None:
    base = f"{own_registry.host}/buildbase/busybox:v1"
    hafend.cli("tag", "busybox:latest", base)
    hafend.cli("push", base)
    empty_hafend = fresh_hafend  # has busybox, but not under the registry's name
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM {base}\nRUN echo pulled-base > /marker\n")
    out = empty_hafend.cli("build", "--progress", "plain", "-t", "from-pull", str(ctx)).stdout
    assert "Pulling from buildbase/busybox" in out
    assert empty_hafend.cli("run", "--rm", "from-pull", "cat", "/marker").stdout == "pulled-base\n"
    again = empty_hafend.cli("build", "--pull", "--progress", "plain", str(ctx)).stdout
    assert "Image is up to date" in again or "Pulling from" in again
    assert "Using cache" in again  # same base after the pull: the steps stay cached
    hafend.cli("rmi", base)


def test_unpullable_base_fails_clearly(hafend: Hafend, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "Dockerfile").write_text(f"FROM 127.0.0.1:{free_port()}/nothing/here:v1\n")
    result = hafend.cli("build", str(ctx), check=False)
    assert result.returncode != 0
    assert "failed to pull 127.0.0.1:" in result.stderr
