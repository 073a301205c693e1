"""The durability rule on every path that stores an image — load, import, commit's layer
writer, bootstrap, a pull's staged layers: blobs and layers are flushed before they are
renamed into place, and the renames before the image is recorded (a spy on ``syncfs``,
the renames and the metadata transactions checks each step against the files)."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.layer_fixtures import image_service, tar_of
from tests.unit.store.durability_spy import DurabilitySpy

from hafen.images.bootstrap import BUSYBOX_BINARY, _is_static, bootstrap_busybox
from hafen.images.commit import CommitOptions, commit_layer, import_tarball, write_layer
from hafen.images.load import load_archive
from hafen.images.service import ImageService, LayerBlob

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="layers keep owners: needs root")


def _tar(files: dict[str, bytes]) -> bytes:
    return tar_of(*files.items())


LAYERS = [_tar({f"l{i}/file": bytes([65 + i]) * (30_000 * (i + 1))}) for i in range(3)]


def _config(diff_ids: list[str]) -> bytes:
    return json.dumps(
        {
            "architecture": "amd64",
            "os": "linux",
            "created": "2026-01-01T00:00:00Z",
            "config": {"Cmd": ["sh"]},
            "rootfs": {"type": "layers", "diff_ids": diff_ids},
        }
    ).encode()


def _docker_archive(path: Path) -> Path:
    diff_ids = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in LAYERS]
    config = _config(diff_ids)
    with tarfile.open(path, "w") as archive:

        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("config.json", config)
        for i, layer in enumerate(LAYERS):
            add(f"layer{i}/layer.tar", layer)
        manifest = [
            {
                "Config": "config.json",
                "RepoTags": ["loaded:1"],
                "Layers": [f"layer{i}/layer.tar" for i in range(len(LAYERS))],
            }
        ]
        add("manifest.json", json.dumps(manifest).encode())
    return path


@pytest.fixture(params=["overlay", "vfs"])
def images(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ImageService]:
    yield from image_service(request.param, tmp_path)


def _spy(images: ImageService, monkeypatch: pytest.MonkeyPatch) -> DurabilitySpy:
    return DurabilitySpy(monkeypatch, images.content.root, images.snapshotter.root)


def test_load_flushes_blobs_and_layers_before_renaming_and_recording_them(
    images: ImageService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _docker_archive(tmp_path / "image.tar")
    spy = _spy(images, monkeypatch)
    [loaded] = load_archive(images, archive)
    spy.assert_rule_held()
    assert spy.events[-1] == "record"
    # overlay: one flush for all the data, one for the renames; vfs: one more per layer
    expected = 2 if images.snapshotter.name == "overlay" else 2 + len(LAYERS)
    assert spy.flushes == expected
    assert images.resolve("loaded:1").id == loaded.image_id
    assert list((images.content.root / "ingest").iterdir()) == []
    # loading it again writes nothing new and still records only after a flush
    archive = _docker_archive(tmp_path / "again.tar")
    spy.events.clear()
    load_archive(images, archive)
    assert spy.violations == []


def test_import_flushes_its_layer_before_the_image_is_recorded(
    images: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _spy(images, monkeypatch)
    source = io.BytesIO(gzip.compress(LAYERS[1]))
    image = import_tarball(images, source, CommitOptions(tags=["imported:1"]))
    spy.assert_rule_held()
    assert spy.flushes == (2 if images.snapshotter.name == "overlay" else 3)
    assert images.resolve("imported:1").id == image.id


def test_a_committed_layer_on_a_parent_is_flushed_before_it_is_recorded(
    images: ImageService, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    [loaded] = load_archive(images, _docker_archive(tmp_path / "image.tar"))
    parent = images.resolve(loaded.image_id)
    spy = _spy(images, monkeypatch)

    def produce(out: io.BufferedIOBase) -> None:
        out.write(_tar({"changed": b"by the container"}))

    with write_layer(images, produce) as layer:  # type: ignore[arg-type]
        assert not images.content.exists(layer.digest)  # written, not yet visible
        image = commit_layer(images, parent, layer, CommitOptions(tags=["committed:1"]))
    spy.assert_rule_held()
    assert image.diff_ids[:-1] == parent.diff_ids
    assert images.content.exists(layer.digest)


def test_a_failed_store_leaves_no_blob_and_no_layer_behind(
    images: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    def produce(out: io.BufferedIOBase) -> None:
        out.write(LAYERS[0])

    with write_layer(images, produce) as layer:  # type: ignore[arg-type]
        config = _config(["sha256:" + "0" * 64])  # a DiffID the layer does not have
        with pytest.raises(Exception, match="unpacks to"):
            images.store_image(config, [LayerBlob(layer.digest)], pending=[layer.writer])
    assert not images.content.exists(layer.digest)
    assert list((images.content.root / "ingest").iterdir()) == []
    assert [p for p in images.snapshotter.root.rglob(".staging-*")] == []
    assert images.list() == []


@pytest.mark.skipif(not _is_static(BUSYBOX_BINARY), reason="busybox-static is not installed")
def test_bootstrap_flushes_before_it_publishes_and_records(
    images: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = _spy(images, monkeypatch)
    result = bootstrap_busybox(images, "busybox:durable")
    spy.assert_rule_held()
    assert result.created
    assert spy.flushes == (2 if images.snapshotter.name == "overlay" else 3)


def test_a_streamed_layer_published_without_the_callers_flush_is_flushed_first(
    images: ImageService, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not images.can_stage_layers():
        pytest.skip("only overlay stages layers")
    blob = gzip.compress(LAYERS[0], mtime=0)
    digest = "sha256:" + hashlib.sha256(blob).hexdigest()
    diff_id = "sha256:" + hashlib.sha256(LAYERS[0]).hexdigest()
    spy = _spy(images, monkeypatch)
    staged = images.stage_layer_stream(diff_id, LayerBlob(digest), io.BytesIO(blob), None)
    images.publish_layer(diff_id, staged, flushed=False)
    assert spy.events == ["flush", "publish", "publish"]  # the blob, then the layer
    spy.assert_rule_held(renames_flushed=False)
