"""Pulls that go wrong: a lying, truncating, failing or hostile registry gives a clear
error and leaves the store as it was — no image, no partial or corrupt blob."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Hafend
from tests.integration.fake_registry import FakeImage, FakeRegistry, digest_of


@pytest.fixture(scope="module")
def daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hafend]:
    d = Hafend(tmp_path_factory.mktemp("hafend-pullfail"))
    try:
        d.start()
        yield d
    finally:
        d.cleanup()


@pytest.fixture
def registry(request: pytest.FixtureRequest) -> Iterator[FakeRegistry]:
    reg = FakeRegistry(FakeImage.build([300_000, 2_000_000, 1000], seed=request.node.name))
    yield reg
    reg.close()


def blobs(d: Hafend) -> set[str]:
    return {"sha256:" + p.name for p in (d.data_root / "content" / "blobs" / "sha256").iterdir()}


def assert_store_clean(d: Hafend, reg: FakeRegistry | None) -> None:
    if reg is not None:
        image_id = digest_of(reg.image.config)
        assert image_id[7:19] not in d.cli("images", "-q").stdout
    assert not list((d.data_root / "content" / "ingest").iterdir())
    # no layer left half-unpacked or staged aside
    assert not list((d.data_root / "snapshots").glob("*/layers/.staging-*"))
    for digest in blobs(d):  # whatever was kept is whole and true
        path = d.data_root / "content" / "blobs" / "sha256" / digest[7:]
        assert digest_of(path.read_bytes()) == digest


def pull(d: Hafend, ref: str) -> tuple[int, str]:
    result = d.cli("pull", ref, check=False, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_blob_with_wrong_bytes_is_refused(daemon: Hafend, registry: FakeRegistry) -> None:
    bad = digest_of(registry.image.layers[1])
    registry.faults.wrong_blob = bad
    code, out = pull(daemon, f"{registry.host}/fail/wrong:v1")
    assert code == 1
    assert "does not match its digest" in out and bad in out
    assert bad not in blobs(daemon)
    assert_store_clean(daemon, registry)


def test_dropped_connection_mid_layer_resumes_with_range(
    daemon: Hafend, registry: FakeRegistry
) -> None:
    big = digest_of(registry.image.layers[1])
    registry.faults.drop_after = {big: 700_000}
    code, out = pull(daemon, f"{registry.host}/fail/resume:v1")
    assert code == 0, out
    ranges = [r for m, p, r in registry.requests if p.endswith(big) and m == "GET"]
    assert ranges[0] == "" and ranges[1].startswith("bytes=") and int(ranges[1][6:-1]) > 0
    inspect = json.loads(daemon.cli("image", "inspect", f"{registry.host}/fail/resume:v1").stdout)
    assert len(inspect[0]["RootFS"]["Layers"]) == 3
    daemon.cli("rmi", f"{registry.host}/fail/resume:v1")


def test_dropped_connection_without_range_support_restarts(
    daemon: Hafend, registry: FakeRegistry
) -> None:
    big = digest_of(registry.image.layers[1])
    registry.faults.drop_after = {big: 500_000}
    registry.faults.range_support = False
    code, out = pull(daemon, f"{registry.host}/fail/restart:v1")
    assert code == 0, out
    daemon.cli("rmi", f"{registry.host}/fail/restart:v1")


def test_connection_dropped_every_time_fails_cleanly(
    daemon: Hafend, registry: FakeRegistry
) -> None:
    big = digest_of(registry.image.layers[1])
    registry.faults.drop_after = {big: 100_000}
    registry.faults.drop_times = 100
    registry.faults.range_support = False
    code, out = pull(daemon, f"{registry.host}/fail/dropping:v1")
    assert code == 1
    assert f"downloading {big} failed after" in out
    assert big not in blobs(daemon)
    assert_store_clean(daemon, registry)


def test_registry_500_is_retried_then_reported(daemon: Hafend, registry: FakeRegistry) -> None:
    registry.faults.manifest_status = 500
    code, out = pull(daemon, f"{registry.host}/fail/broken:v1")
    assert code == 1
    assert "the registry is broken" in out
    assert sum(1 for _, p, _ in registry.requests if "/manifests/" in p) > 1
    assert_store_clean(daemon, registry)


def test_unknown_manifest_is_not_found(daemon: Hafend, registry: FakeRegistry) -> None:
    registry.faults.manifest_status = 404
    code, out = pull(daemon, f"{registry.host}/fail/missing:nope")
    assert code == 1
    assert (
        f"Error response from daemon: manifest for {registry.host}/fail/missing:nope not found"
        in out
    )


def test_401_without_a_challenge_is_unauthorized(daemon: Hafend, registry: FakeRegistry) -> None:
    registry.faults.unauthorized = True
    code, out = pull(daemon, f"{registry.host}/fail/auth:v1")
    assert code == 1
    assert "unauthorized" in out.lower()


def test_oversized_manifest_is_refused(daemon: Hafend, registry: FakeRegistry) -> None:
    registry.faults.manifest_override = b"{" + b" " * (5 * 1024 * 1024) + b"}"
    code, out = pull(daemon, f"{registry.host}/fail/huge:v1")
    assert code == 1
    assert "limit" in out
    assert_store_clean(daemon, registry)


def test_wrong_layer_media_type_is_refused(daemon: Hafend, registry: FakeRegistry) -> None:
    manifest = json.loads(registry.image.manifest)
    manifest["layers"][0]["mediaType"] = "application/x-not-a-layer"
    registry.faults.manifest_override = json.dumps(manifest).encode()
    code, out = pull(daemon, f"{registry.host}/fail/mediatype:v1")
    assert code == 1
    assert "layers[0] has media type 'application/x-not-a-layer'" in out
    assert_store_clean(daemon, registry)


def test_manifest_size_lies_about_the_blob(daemon: Hafend, registry: FakeRegistry) -> None:
    manifest = json.loads(registry.image.manifest)
    manifest["layers"][2]["size"] = 10  # the blob is bigger than the manifest says
    registry.faults.manifest_override = json.dumps(manifest).encode()
    code, out = pull(daemon, f"{registry.host}/fail/size:v1")
    assert code == 1
    assert "larger than the 10 bytes the manifest says" in out
    assert_store_clean(daemon, registry)


def test_truncated_blob_is_refused(daemon: Hafend, registry: FakeRegistry) -> None:
    # the registry holds (and serves, whole, with a matching Content-Length) fewer bytes
    # than the manifest promises: retried, then refused; nothing kept
    manifest = json.loads(registry.image.manifest)
    manifest["layers"][1]["size"] += 4096
    registry.faults.manifest_override = json.dumps(manifest).encode()
    code, out = pull(daemon, f"{registry.host}/fail/truncated:v1")
    assert code == 1
    big = manifest["layers"][1]["digest"]
    assert big in out and ("connection closed at" in out or "failed after" in out), out
    assert big not in blobs(daemon)
    assert_store_clean(daemon, registry)


@pytest.mark.parametrize("name", ["../../escape", "/abs/olute"])
def test_hostile_layer_paths_stay_inside(daemon: Hafend, name: str, tmp_path: Path) -> None:
    reg = FakeRegistry(FakeImage.build([1000], hostile=name, seed=name))
    try:
        code, out = pull(daemon, f"{reg.host}/fail/hostile:v1")
    finally:
        reg.close()
    for outside in (daemon.data_root.parent / "escape", Path("/abs/olute")):
        assert not outside.exists()
    if code == 0:  # clamped into the root, as Docker does
        daemon.cli("rmi", f"{reg.host}/fail/hostile:v1")
    else:
        assert f"refusing archive entry {name!r}" in out
        assert_store_clean(daemon, reg)


def test_daemon_killed_mid_pull_leaves_no_partial_image(
    tmp_path_factory: pytest.TempPathFactory, registry: FakeRegistry
) -> None:
    import signal
    import subprocess

    from tests.conftest import HAFEN

    d = Hafend(tmp_path_factory.mktemp("hafend-killed"))
    big = digest_of(registry.image.layers[1])
    registry.faults.stall_after = {big: 800_000}
    ref = f"{registry.host}/fail/killed:v1"
    try:
        d.start()
        pull = subprocess.Popen([HAFEN, "-H", d.host, "pull", ref], stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL)  # fmt: skip
        assert registry.stalled.wait(30)
        # the registry has sent its part; wait (bounded) until the daemon has written some
        ingest = d.data_root / "content" / "ingest"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not any(
            f.stat().st_size for f in ingest.glob("*") if f.is_file()
        ):
            time.sleep(0.05)
        d.kill(signal.SIGKILL)  # the daemon dies with a layer half-downloaded
        pull.wait(timeout=30)
        assert list(ingest.iterdir())  # the partial write
        d.start()
        assert_store_clean(d, registry)  # swept at start; no image recorded
        registry.faults.stall_after = {}
        d.cli("pull", ref)
        inspect = json.loads(d.cli("image", "inspect", ref).stdout)[0]
        assert inspect["Id"] == digest_of(registry.image.config)
    finally:
        d.cleanup()


def test_symlink_escape_and_device_nodes_stay_harmless(daemon: Hafend) -> None:
    target = Path("/tmp/hafen-escape-target")
    target.mkdir(exist_ok=True)
    try:
        for kind in ("symlink-escape", "device"):
            reg = FakeRegistry(FakeImage.build([1000], hostile=kind, seed=kind))
            try:
                code, out = pull(daemon, f"{reg.host}/fail/{kind}:v1")
            finally:
                reg.close()
            assert not (target / "owned").exists()  # nothing written outside the root
            # unpacked, confined: the link resolves inside the layer; no device node is made
            assert code == 0, out
            for layer in (daemon.data_root / "snapshots").glob("*/layers/*/diff"):
                node = layer / "dev" / "evil-mem"
                assert not (node.exists() and node.is_char_device())
            daemon.cli("rmi", f"{reg.host}/fail/{kind}:v1")
    finally:
        target.rmdir()


def test_pull_on_vfs_unpacks_in_order_resumes_and_leaves_nothing_on_failure(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # vfs cannot unpack a layer before its parent: blobs are downloaded first, layers
    # unpacked in chain order, each a full tree
    root = tmp_path_factory.mktemp("hafend-vfs-pull")
    (root / "daemon.json").write_text('{"storage-driver": "vfs"}')
    d = Hafend(root)
    reg = FakeRegistry(FakeImage.build([300_000, 2_000_000, 1000], seed="vfs-pull"))
    try:
        d.start()
        big = digest_of(reg.image.layers[1])
        reg.faults.drop_after = {big: 700_000}
        code, out = pull(d, f"{reg.host}/vfs/image:v1")
        assert code == 0, out
        assert "Storage Driver: vfs" in d.cli("info").stdout
        ranges = [r for m, p, r in reg.requests if p.endswith(big) and m == "GET"]
        assert ranges[0] == "" and ranges[1].startswith("bytes=")  # resumed
        inspect = json.loads(d.cli("image", "inspect", f"{reg.host}/vfs/image:v1").stdout)[0]
        assert len(inspect["RootFS"]["Layers"]) == 3
        vfs_layers = list((d.data_root / "snapshots" / "vfs" / "layers").iterdir())
        trees = sorted(sorted(p.name for p in (layer / "fs").iterdir()) for layer in vfs_layers)
        # each layer is the whole tree up to it
        assert trees == [["file0"], ["file0", "file1"], ["file0", "file1", "file2"]]
        d.cli("rmi", f"{reg.host}/vfs/image:v1")
        reg.faults.wrong_blob = big
        code, out = pull(d, f"{reg.host}/vfs/image:v2")
        assert code == 1 and "does not match its digest" in out
        assert_store_clean(d, reg)
    finally:
        reg.close()
        d.cleanup()
