"""Builds on the vfs storage driver: RUN layers are the container's real changes, and a
finished RUN container's files survive its release (same-filesystem bind mounts)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Hafend


@pytest.fixture
def vfs_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hafend]:
    root = tmp_path_factory.mktemp("hafend-vfs")
    (root / "daemon.json").write_text('{"storage-driver": "vfs"}')
    daemon = Hafend(root)
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def test_build_and_rerun_on_vfs(vfs_hafend: Hafend, tmp_path: Path) -> None:
    assert "Storage Driver: vfs" in vfs_hafend.cli("info").stdout
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "f").write_text("copied")
    (ctx / "Dockerfile").write_text(
        "FROM busybox\nRUN echo one > /one && rm /bin/vi\nCOPY f /f\nRUN cat /f /one > /both\n"
        "USER nobody\n"
    )
    for _ in range(2):  # a second, --no-cache build too: nothing of the first was damaged
        image = vfs_hafend.cli("build", "-q", "--no-cache", str(ctx)).stdout.strip()
        out = vfs_hafend.cli("run", "--rm", image, "sh", "-c",
                             "cat /both; id -un; test -e /bin/vi || echo vi-gone").stdout  # fmt: skip
        assert out == "copiedone\nnobody\nvi-gone\n"
    script = "test -e /kept && echo was-kept; echo kept > /kept"
    first = vfs_hafend.cli("run", "--name", "again", "busybox", "sh", "-c", script).stdout
    assert first == ""
    # started again, the stopped container still has the file its first run wrote
    assert vfs_hafend.cli("start", "-a", "again").stdout == "was-kept\n"
