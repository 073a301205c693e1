"""ImageService over real stores in a temp dir: storing, resolving, tagging, Docker's rmi rules."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.errors import Conflict, DigestMismatch, ImageNotFound, InvalidArgument
from hafen.images.service import ImageService, ImageUser, LayerBlob
from hafen.store.content import FileContentStore
from hafen.store.layers import chain_ids
from hafen.store.metadata import MetadataStore
from hafen.store.snapshots.overlay import OverlaySnapshotter
from hafen.store.snapshots.vfs import VfsSnapshotter


def layer_tar(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


@pytest.fixture
def images(tmp_path: Path) -> Iterator[ImageService]:
    metadata = MetadataStore(tmp_path / "metadata.db")
    service = ImageService(
        FileContentStore(tmp_path / "content"), metadata, VfsSnapshotter(tmp_path / "snapshots")
    )
    yield service
    metadata.close()


def add_image(
    images: ImageService,
    layers: list[dict[str, bytes]],
    tags: list[str],
    label: str = "",
    diff_ids: list[str] | None = None,
) -> str:
    blobs: list[LayerBlob] = []
    real_diff_ids: list[str] = []
    for files in layers:
        raw = layer_tar(files)
        real_diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        blobs.append(LayerBlob(images.content.put_bytes(gzip.compress(raw, mtime=0))))
    config = {
        "architecture": "amd64",
        "os": "linux",
        "created": "2026-01-01T00:00:00Z",
        "config": {"Cmd": ["sh"], "Labels": {"l": label}},
        "rootfs": {"type": "layers", "diff_ids": diff_ids or real_diff_ids},
    }
    return images.store_image(json.dumps(config).encode(), blobs, tags=tags).id


def test_stored_image_resolves_by_tag_full_id_and_id_prefix(images: ImageService) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["app:1"])
    assert images.resolve("app:1").id == image_id
    assert images.resolve("docker.io/library/app:1").id == image_id
    assert images.resolve(image_id).id == image_id
    assert images.resolve(image_id.removeprefix("sha256:")[:12]).id == image_id
    image = images.resolve("app:1")
    assert image.repo_tags == ["app:1"]
    assert image.chain_id == image.diff_ids[-1]
    assert image.size > 0


def test_unknown_image_is_not_found_with_docker_wording(images: ImageService) -> None:
    with pytest.raises(ImageNotFound, match="No such image: nothere"):
        images.resolve("nothere")


def test_layers_are_unpacked_once_and_shared(images: ImageService) -> None:
    add_image(images, [{"base": b"b"}], ["one"], label="1")
    add_image(images, [{"base": b"b"}, {"top": b"t"}], ["two"], label="2")
    rows = images.metadata.query("SELECT chain_id FROM layers")
    assert len(rows) == 2
    top = images.resolve("two").chain_id
    assert top is not None
    layer_dir = images.snapshotter.layer_dir(top)  # type: ignore[attr-defined]
    assert (layer_dir / "base").read_bytes() == b"b"
    assert (layer_dir / "top").read_bytes() == b"t"


def test_layer_whose_content_differs_from_config_is_refused_and_not_kept(
    images: ImageService,
) -> None:
    wrong = "sha256:" + "0" * 64
    with pytest.raises(DigestMismatch, match="unpacks to"):
        add_image(images, [{"a": b"1"}], ["bad"], diff_ids=[wrong])
    assert not images.snapshotter.has_layer(wrong)
    assert images.list() == []


def test_config_listing_other_layer_count_is_refused(images: ImageService) -> None:
    config = {"rootfs": {"type": "layers", "diff_ids": []}}
    blob = images.content.put_bytes(gzip.compress(layer_tar({"a": b"1"})))
    with pytest.raises(InvalidArgument, match="lists 0 layers but 1 were given"):
        images.store_image(json.dumps(config).encode(), [LayerBlob(blob)])


def test_tag_adds_a_name_and_rmi_of_one_name_only_untags(images: ImageService) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["app:1"])
    images.tag("app:1", "other/app:2")
    assert sorted(images.resolve(image_id).repo_tags) == ["app:1", "other/app:2"]
    assert images.remove("app:1") == [{"Untagged": "app:1"}]
    assert images.resolve(image_id).repo_tags == ["other/app:2"]


def test_rmi_of_last_name_deletes_image_layers_and_blobs(images: ImageService) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["app"])
    chain = images.resolve("app").chain_id
    items = images.remove("app")
    assert items[0] == {"Untagged": "app:latest"}
    assert {"Deleted": image_id} in items
    assert {"Deleted": chain} in items
    assert images.list() == []
    assert chain is not None and not images.snapshotter.has_layer(chain)
    assert list(images.content.list()) == []


def test_deleting_one_image_keeps_layers_another_image_uses(images: ImageService) -> None:
    add_image(images, [{"base": b"b"}], ["one"], label="1")
    add_image(images, [{"base": b"b"}, {"top": b"t"}], ["two"], label="2")
    base = images.resolve("one").chain_id
    assert base is not None
    images.remove("two")
    assert images.snapshotter.has_layer(base)
    assert images.resolve("one").chain_id == base
    images.remove("one")
    assert not images.snapshotter.has_layer(base)


def test_rmi_by_id_of_image_with_several_tags_needs_force(images: ImageService) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["a:1", "b:1"])
    with pytest.raises(Conflict, match="referenced in multiple repositories"):
        images.remove(image_id[7:19])
    items = images.remove(image_id[7:19], force=True)
    assert {"Untagged": "a:1"} in items and {"Untagged": "b:1"} in items
    assert {"Deleted": image_id} in items


def test_image_of_stopped_container_needs_force_and_is_then_only_untagged(
    images: ImageService,
) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["app"])

    def users(_: str) -> list[ImageUser]:
        return [ImageUser("c" * 64, running=False)]

    with pytest.raises(Conflict, match="must force"):
        images.remove("app", in_use=users)
    assert images.remove("app", force=True, in_use=users) == [{"Untagged": "app:latest"}]
    assert images.resolve(image_id).repo_tags == []  # dangling, kept for its container


def test_image_of_running_container_cannot_be_deleted_even_forced(images: ImageService) -> None:
    image_id = add_image(images, [{"a": b"1"}], ["app"])

    def users(_: str) -> list[ImageUser]:
        return [ImageUser("c" * 64, running=True)]

    with pytest.raises(Conflict, match="cannot be forced"):
        images.remove(image_id, force=True, in_use=users)
    assert images.exists(image_id)


def test_list_returns_every_image_with_its_tags(images: ImageService) -> None:
    add_image(images, [{"a": b"1"}], ["one"], label="1")
    add_image(images, [{"a": b"2"}], ["two:x"], label="2")
    assert sorted(t for i in images.list() for t in i.repo_tags) == ["one:latest", "two:x"]


def test_state_survives_reopening_the_stores(tmp_path: Path) -> None:
    metadata = MetadataStore(tmp_path / "metadata.db")
    first = ImageService(
        FileContentStore(tmp_path / "content"), metadata, VfsSnapshotter(tmp_path / "snapshots")
    )
    image_id = add_image(first, [{"a": b"1"}], ["app"])
    metadata.close()
    reopened = ImageService(
        FileContentStore(tmp_path / "content"),
        MetadataStore(tmp_path / "metadata.db"),
        VfsSnapshotter(tmp_path / "snapshots"),
    )
    image = reopened.resolve("app")
    assert image.id == image_id
    assert image.chain_id == chain_ids(image.diff_ids)[-1]


def test_a_lease_keeps_a_pulls_layers_and_blobs_from_a_concurrent_rmi(
    images: ImageService,
) -> None:
    # A pull of "two" found the layer of "one" present and leased it; meanwhile "one" is
    # removed: the layer and its blob survive until "two" is recorded and the lease ends.
    add_image(images, [{"base": b"b"}], ["one"], label="1")
    one = images.resolve("one")
    base = one.chain_id
    assert base is not None
    (blob,) = images.layer_blobs(one)
    assert blob is not None
    with images.lease([base], [blob]):
        items = images.remove("one")
        assert {"Deleted": one.id} in items and {"Deleted": base} not in items
        assert images.snapshotter.has_layer(base)
        assert images.content.exists(blob)
        add_image(images, [{"base": b"b"}, {"top": b"t"}], ["two"], label="2")
    assert images.resolve("two").diff_ids[0] == base
    images.remove("two")
    assert not images.snapshotter.has_layer(base)
    assert not images.content.exists(blob)


def test_without_a_lease_rmi_collects_an_unreferenced_layer(images: ImageService) -> None:
    add_image(images, [{"base": b"b"}], ["one"])
    base = images.resolve("one").chain_id
    assert base is not None
    with images.lease([], []):
        images.remove("one")
    assert not images.snapshotter.has_layer(base)


def test_streamed_layer_is_unpacked_and_its_blob_committed_only_when_published(
    tmp_path: Path,
) -> None:
    metadata = MetadataStore(tmp_path / "metadata.db")
    service = ImageService(
        FileContentStore(tmp_path / "content"), metadata, OverlaySnapshotter(tmp_path / "ov")
    )
    raw = layer_tar({"etc/hello": b"world"})
    blob = gzip.compress(raw, mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(raw).hexdigest()
    staged = service.stage_layer_stream(diff_id, LayerBlob(digest), io.BytesIO(blob), None)
    assert (staged.path / "diff" / "etc" / "hello").read_bytes() == b"world"
    assert not service.content.exists(digest)  # verified, not yet visible
    service.sync()
    service.publish_layer(diff_id, staged, flushed=True)
    assert service.content.read_bytes(digest) == blob
    assert service.snapshotter.has_layer(diff_id)
    # a blob whose bytes are not its digest: nothing staged, nothing kept
    wrong = "sha256:" + "1" * 64
    with pytest.raises(DigestMismatch):
        service.stage_layer_stream(diff_id, LayerBlob(wrong), io.BytesIO(blob), None)
    assert not service.content.exists(wrong)
    assert list((tmp_path / "content" / "ingest").iterdir()) == []
    assert [p for p in (tmp_path / "ov" / "layers").iterdir() if p.name.startswith(".")] == []
    metadata.close()
