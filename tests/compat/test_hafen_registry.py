"""hafen-registry, hafen's own distribution server, with real clients: hafen push/pull,
skopeo (copy both ways, multi-arch index, tags list) and the docker CLI through hafend."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.registries import SKOPEO, free_port
from tests.compat.test_registry import DOCKER, _pushed_digest, docker, run_hafen
from tests.conftest import Hafend

REGISTRY = str(Path(sys.executable).parent / "hafen-registry")


class HafenRegistry:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.host = f"127.0.0.1:{free_port()}"
        with open(root / "registry.log", "wb") as log:
            self.proc = subprocess.Popen(
                [REGISTRY, "--root", str(root / "data"), "--addr", self.host,
                 "--log-level", "warning"], stdout=log, stderr=subprocess.STDOUT,
            )  # fmt: skip
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError((root / "registry.log").read_text())
            try:
                urllib.request.urlopen(f"http://{self.host}/v2/", timeout=2)
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("hafen-registry did not start")

    def get(
        self, path: str, headers: dict[str, str] | None = None
    ) -> tuple[int, bytes, dict[str, str]]:
        request = urllib.request.Request(f"http://{self.host}{path}", headers=headers or {})
        try:
            with urllib.request.urlopen(request, timeout=10) as resp:
                return resp.status, resp.read(), dict(resp.headers)
        except urllib.error.HTTPError as e:
            return e.code, e.read(), dict(e.headers)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=10)


@pytest.fixture(scope="module")
def hafen_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[HafenRegistry]:
    registry = HafenRegistry(tmp_path_factory.mktemp("hafen-registry"))
    yield registry
    registry.stop()


def test_hafen_push_pull_run_and_listings(
    hafend: Hafend, empty_hafend: Hafend, hafen_registry: HafenRegistry, tmp_path: Path
) -> None:
    target = f"{hafen_registry.host}/ours/busybox:v1"
    run_hafen(hafend, tmp_path, "tag", "busybox", target)
    digest = _pushed_digest(run_hafen(hafend, tmp_path, "push", target).stdout, "v1")
    again = run_hafen(hafend, tmp_path, "push", target).stdout
    assert "Layer already exists" in again
    other = f"{hafen_registry.host}/ours/other:v2"
    run_hafen(hafend, tmp_path, "tag", "busybox", other)
    assert "Mounted from ours/busybox" in run_hafen(hafend, tmp_path, "push", other).stdout
    pulled = run_hafen(empty_hafend, tmp_path, "pull", target).stdout
    assert f"Digest: {digest}" in pulled
    out = run_hafen(empty_hafend, tmp_path, "run", "--rm", target, "echo", "from hafen-registry")
    assert out.stdout == "from hafen-registry\n"
    status, body, _ = hafen_registry.get("/v2/ours/busybox/tags/list")
    assert status == 200 and json.loads(body) == {"name": "ours/busybox", "tags": ["v1"]}
    status, body, _ = hafen_registry.get("/v2/_catalog")
    assert json.loads(body)["repositories"] == ["ours/busybox", "ours/other"]
    status, body, headers = hafen_registry.get("/v2/_catalog?n=1")
    assert json.loads(body)["repositories"] == ["ours/busybox"] and "next" in headers["Link"]
    status, body, _ = hafen_registry.get("/v2/ours/busybox/manifests/nope")
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    run_hafen(empty_hafend, tmp_path, "rmi", target)
    run_hafen(hafend, tmp_path, "rmi", target, other)


@pytest.mark.skipif(not Path(SKOPEO).exists(), reason="skopeo is not installed")
def test_skopeo_copies_to_and_from_hafen_registry(
    hafend: Hafend, hafen_registry: HafenRegistry, tmp_path: Path
) -> None:
    target = f"{hafen_registry.host}/ours/skopeo:v1"
    run_hafen(hafend, tmp_path, "tag", "busybox", target)
    digest = _pushed_digest(run_hafen(hafend, tmp_path, "push", target).stdout, "v1")
    run_hafen(hafend, tmp_path, "rmi", target)
    skopeo = [SKOPEO, "--insecure-policy"]
    plain = tmp_path / "dir"
    subprocess.run([*skopeo, "copy", "--src-tls-verify=false", f"docker://{target}",
                    f"dir:{plain}"], check=True, capture_output=True)  # fmt: skip
    import hashlib

    assert "sha256:" + hashlib.sha256((plain / "manifest.json").read_bytes()).hexdigest() == digest
    copy = f"{hafen_registry.host}/ours/skopeo-pushed:v2"
    result = subprocess.run([*skopeo, "copy", "--dest-tls-verify=false", f"dir:{plain}",
                             f"docker://{copy}"], capture_output=True, text=True)  # fmt: skip
    assert result.returncode == 0, result.stderr
    tags = subprocess.run([*skopeo, "list-tags", "--tls-verify=false",
                           f"docker://{hafen_registry.host}/ours/skopeo-pushed"],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert json.loads(tags)["Tags"] == ["v2"]


@pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")
def test_docker_cli_push_pull_through_hafend(
    hafend: Hafend, empty_hafend: Hafend, hafen_registry: HafenRegistry, tmp_path: Path
) -> None:
    target = f"{hafen_registry.host}/ours/docker:cli"
    docker(hafend, tmp_path, "tag", "busybox", target)
    digest = _pushed_digest(docker(hafend, tmp_path, "push", target).stdout, "cli")
    assert f"Digest: {digest}" in docker(empty_hafend, tmp_path, "pull", target).stdout
    docker(empty_hafend, tmp_path, "rmi", target)
    docker(hafend, tmp_path, "rmi", target)
