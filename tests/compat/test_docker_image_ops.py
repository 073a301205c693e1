"""The docker CLI's image verbs against hafend: commit, diff, history, import, prune."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.compat.test_registry import DOCKER, docker
from tests.conftest import Hafend

pytestmark = pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")


def test_docker_commit_diff_history(hafend: Hafend, tmp_path: Path) -> None:
    docker(
        hafend, tmp_path, "run", "--name", "dockercommit", "busybox", "sh", "-c", "echo x > /made"
    )
    try:
        assert docker(hafend, tmp_path, "diff", "dockercommit").stdout == "A /made\n"
        out = docker(hafend, tmp_path, "commit", "--change", "ENV FROM_DOCKER=1",
                     "dockercommit", "dockercommit:v1").stdout  # fmt: skip
        assert out.startswith("sha256:")
        env = docker(hafend, tmp_path, "inspect", "-f", "{{.Config.Env}}", "dockercommit:v1").stdout
        assert "FROM_DOCKER=1" in env
        history = docker(hafend, tmp_path, "history", "dockercommit:v1").stdout.splitlines()
        assert history[0].split()[:2] == ["IMAGE", "CREATED"]
        assert len(history) == 4  # the new layer over busybox's two steps
        ran = docker(hafend, tmp_path, "run", "--rm", "dockercommit:v1", "cat", "/made")
        assert ran.stdout == "x\n"
    finally:
        docker(hafend, tmp_path, "rm", "-f", "dockercommit")
        docker(hafend, tmp_path, "rmi", "dockercommit:v1")


def test_docker_import_from_stdin(hafend: Hafend, tmp_path: Path) -> None:
    archive = tmp_path / "rootfs.tar"
    subprocess.run(["tar", "-C", "/", "-cf", str(archive), "bin/busybox"], check=True)
    env = {**hafend.env, "DOCKER_CONFIG": str(tmp_path)}
    with open(archive, "rb") as f:
        result = subprocess.run([DOCKER, "import", "-", "dockerimported:v1"], stdin=f,
                                capture_output=True, text=True, env=env, timeout=60)  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("sha256:")
    ran = docker(hafend, tmp_path, "run", "--rm", "dockerimported:v1", "/bin/busybox", "echo", "ok")
    assert ran.stdout == "ok\n"
    docker(hafend, tmp_path, "rmi", "dockerimported:v1")
