"""The busybox bootstrap: a real image from busybox-static, deterministic, idempotent."""

from __future__ import annotations

import gzip
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.images.bootstrap import BUSYBOX_BINARY, _is_static, bootstrap_busybox
from hafen.images.service import ImageService
from hafen.store.content import FileContentStore
from hafen.store.metadata import MetadataStore
from hafen.store.snapshots.vfs import VfsSnapshotter

pytestmark = pytest.mark.skipif(
    not _is_static(BUSYBOX_BINARY), reason="busybox-static is not installed (scripts/setup does)"
)


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageService]:
    metadata = MetadataStore(tmp_path / "metadata.db")
    yield ImageService(
        FileContentStore(tmp_path / "content"), metadata, VfsSnapshotter(tmp_path / "snapshots")
    )
    metadata.close()


def test_bootstrap_builds_one_gzip_layer_with_applets_config_and_manifest(
    images: ImageService,
) -> None:
    result = bootstrap_busybox(images)
    assert result.created
    image = images.resolve("busybox:latest")
    assert image.id == result.image_id
    runtime = image.config.runtime
    assert runtime["Cmd"] == ["sh"]
    assert any(e.startswith("PATH=") and "/bin" in e for e in runtime["Env"])
    assert image.manifest_digest is not None
    manifest = json.loads(images.content.read_bytes(image.manifest_digest))
    assert manifest["schemaVersion"] == 2
    assert manifest["config"]["digest"] == image.id
    (layer,) = manifest["layers"]
    assert layer["mediaType"].endswith("tar.gzip")
    with (
        images.content.open(layer["digest"]) as blob,
        gzip.open(blob) as raw,
        tarfile.open(fileobj=raw, mode="r|") as tar,
    ):
        members = {m.name: m for m in tar}
    assert members["bin/busybox"].isreg() or members["bin/busybox"].islnk()
    assert "bin/sh" in members and "etc/passwd" in members
    assert members["tmp"].mode == 0o1777
    assert all(m.uid == 0 and m.gid == 0 for m in members.values())
    rootfs = images.snapshotter.layer_dir(image.chain_id)  # type: ignore[attr-defined]
    assert (rootfs / "bin" / "sh").stat().st_ino == (rootfs / "bin" / "busybox").stat().st_ino
    assert "nobody:x:65534:65534" in (rootfs / "etc" / "passwd").read_text()


def test_bootstrap_again_is_a_no_op_reporting_the_same_image(images: ImageService) -> None:
    first = bootstrap_busybox(images)
    blobs = sorted(images.content.list())
    second = bootstrap_busybox(images)
    assert second.image_id == first.image_id
    assert not second.created
    assert sorted(images.content.list()) == blobs


def test_bootstrap_under_another_tag_reuses_the_image(images: ImageService) -> None:
    first = bootstrap_busybox(images)
    other = bootstrap_busybox(images, "base/busybox:1")
    assert other.image_id == first.image_id
    assert not other.created
    assert sorted(images.resolve(first.image_id).repo_tags) == ["base/busybox:1", "busybox:latest"]
