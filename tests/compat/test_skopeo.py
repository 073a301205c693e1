"""skopeo as the second registry client: what hafen pushes, skopeo reads byte-exact;
what skopeo pushes (a multi-arch OCI index), hafen pulls by platform and runs."""

from __future__ import annotations

import hashlib
import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.registries import SKOPEO, DockerRegistry
from tests.compat.test_registry import _pushed_digest, run_hafen
from tests.conftest import Hafend

pytestmark = pytest.mark.skipif(not Path(SKOPEO).exists(), reason="skopeo is not installed")


def skopeo(*args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(
        [SKOPEO, "--insecure-policy", *args], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, f"skopeo {' '.join(args)}: {result.stderr}"
    return result


@pytest.fixture(scope="module")
def pushed(
    hafend: Hafend, open_registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[str, str]]:
    """busybox pushed by hafen: (reference, digest)."""
    config = tmp_path_factory.mktemp("cfg")
    target = f"{open_registry.host}/skopeo/busybox:v1"
    run_hafen(hafend, config, "tag", "busybox", target)
    digest = _pushed_digest(run_hafen(hafend, config, "push", target).stdout, "v1")
    yield target, digest
    run_hafen(hafend, config, "rmi", target, check=False)


def test_skopeo_copies_what_hafen_pushed_with_the_same_digest(
    pushed: tuple[str, str], tmp_path: Path
) -> None:
    target, digest = pushed
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{layout}:v1")
    index = json.loads((layout / "index.json").read_text())
    manifest_desc = index["manifests"][0]
    manifest = (layout / "blobs" / "sha256" / manifest_desc["digest"][7:]).read_bytes()
    # skopeo converts to OCI media types when writing an OCI layout; the layers and
    # config it fetched are byte-identical to what hafen pushed.
    inspect = json.loads(
        skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout
    )
    raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{target}").stdout.encode()
    assert "sha256:" + hashlib.sha256(raw).hexdigest() == digest
    oci = json.loads(manifest)
    assert [layer["digest"] for layer in oci["layers"]] == [
        layer["digest"] for layer in inspect["layers"]
    ]
    config = json.loads((layout / "blobs" / "sha256" / oci["config"]["digest"][7:]).read_bytes())
    assert (
        config["rootfs"]["diff_ids"]
        == json.loads(
            skopeo("inspect", "--config", "--tls-verify=false", f"docker://{target}").stdout
        )["rootfs"]["diff_ids"]
    )
    for blob in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(blob.read_bytes()).hexdigest() == blob.name
    # The dir: transport keeps the manifest as pushed: same bytes, same digest.
    plain = tmp_path / "dir"
    skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"dir:{plain}")
    assert "sha256:" + hashlib.sha256((plain / "manifest.json").read_bytes()).hexdigest() == digest


def _write_blob(layout: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    (layout / "blobs" / "sha256" / digest).write_bytes(data)
    return "sha256:" + digest


def test_hafen_pulls_the_host_member_of_a_multi_arch_index_skopeo_pushed(
    pushed: tuple[str, str],
    empty_hafend: Hafend,
    open_registry: DockerRegistry,
    tmp_path: Path,
) -> None:
    target, _ = pushed
    layout = tmp_path / "multi"
    skopeo("copy", "--src-tls-verify=false", f"docker://{target}", f"oci:{layout}:amd")
    index = json.loads((layout / "index.json").read_text())
    amd = index["manifests"][0]
    amd_manifest = json.loads((layout / "blobs" / "sha256" / amd["digest"][7:]).read_bytes())
    config = json.loads(
        (layout / "blobs" / "sha256" / amd_manifest["config"]["digest"][7:]).read_bytes()
    )
    # An arm64 member: same layer, its own config (so its own image ID).
    config["architecture"] = "arm64"
    config["variant"] = "v8"
    arm_config = json.dumps(config).encode()
    arm_manifest = dict(amd_manifest)
    arm_manifest["config"] = {**amd_manifest["config"], "digest": _write_blob(layout, arm_config),
                              "size": len(arm_config)}  # fmt: skip
    arm_bytes = json.dumps(arm_manifest).encode()
    members = [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": _write_blob(layout, arm_bytes),
         "size": len(arm_bytes), "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": amd["digest"],
         "size": amd["size"], "platform": {"os": "linux", "architecture": "amd64"}},
    ]  # fmt: skip
    multi = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                        "manifests": members}).encode()  # fmt: skip
    multi_digest = _write_blob(layout, multi)
    index["manifests"].append({"mediaType": "application/vnd.oci.image.index.v1+json",
                               "digest": multi_digest, "size": len(multi),
                               "annotations": {"org.opencontainers.image.ref.name": "multi"}})  # fmt: skip
    (layout / "index.json").write_text(json.dumps(index))
    dest = f"{open_registry.host}/skopeo/multi:latest"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{dest}")

    pulled = run_hafen(empty_hafend, tmp_path, "pull", dest).stdout
    assert f"Digest: {multi_digest}" in pulled
    out = run_hafen(empty_hafend, tmp_path, "run", "--rm", dest, "uname", "-m").stdout
    assert out == "x86_64\n"
    inspect = json.loads(run_hafen(empty_hafend, tmp_path, "image", "inspect", dest).stdout)[0]
    assert inspect["Architecture"] == "amd64"
    assert f"{open_registry.host}/skopeo/multi@{multi_digest}" in inspect["RepoDigests"]

    arm_ref = f"{open_registry.host}/skopeo/multi-arm:latest"
    skopeo("copy", "--all", "--dest-tls-verify=false", f"oci:{layout}:multi", f"docker://{arm_ref}")
    run_hafen(empty_hafend, tmp_path, "pull", "--platform", "linux/arm64", arm_ref)
    arm = json.loads(run_hafen(empty_hafend, tmp_path, "image", "inspect", arm_ref).stdout)[0]
    assert arm["Architecture"] == "arm64"
    assert arm["Id"] == "sha256:" + hashlib.sha256(arm_config).hexdigest()
    missing = run_hafen(
        empty_hafend, tmp_path, "pull", "--platform", "linux/s390x", arm_ref, check=False
    )
    assert missing.returncode == 1
    assert "no matching manifest for linux/s390x" in missing.stderr
    run_hafen(empty_hafend, tmp_path, "rmi", dest, arm_ref)
