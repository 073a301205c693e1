"""The durability rule in the stores: what a snapshotter or the content store makes visible
was flushed (``syncfs``) first — proved by a spy on every flush and publishing rename."""

from __future__ import annotations

import hashlib
import io
import os
from pathlib import Path

import pytest

from hafen.store import durability
from hafen.store.content import FileContentStore
from hafen.store.layers import chain_ids
from hafen.store.snapshots import OverlaySnapshotter, VfsSnapshotter, overlay_supported
from hafen.store.snapshots._common import publish, staging_dir
from tests.unit.layer_fixtures import snapshotter_on, tar_of
from tests.unit.store.durability_spy import DurabilitySpy

Snap = OverlaySnapshotter | VfsSnapshotter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="snapshots keep owners: needs root")


def _tar(files: dict[str, bytes]) -> bytes:
    return tar_of(*files.items())


LAYERS = [_tar({"a": b"1" * 5000}), _tar({"b": b"2" * 70000, "c/d": b"3"})]
DIFF_IDS = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in LAYERS]
BASE, TOP = chain_ids(DIFF_IDS)


@pytest.fixture(params=["overlay", "vfs"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Snap:
    return snapshotter_on(request.param, tmp_path)


def test_the_spy_catches_a_directory_published_without_a_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DurabilitySpy(monkeypatch, tmp_path)
    staging = staging_dir(tmp_path / "layers")
    (staging / "file").write_bytes(b"still in the page cache")
    publish(staging, tmp_path / "layers" / ("a" * 64), flush=False)
    assert spy.violations and "was not flushed" in spy.violations[0]


def test_the_spy_catches_a_file_written_after_the_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DurabilitySpy(monkeypatch, tmp_path)
    staging = staging_dir(tmp_path / "layers")
    durability.syncfs(tmp_path)
    (staging / "parent").write_text("sha256:" + "b" * 64)  # after the flush: not durable
    publish(staging, tmp_path / "layers" / ("a" * 64), flush=False)
    assert any("parent" in v for v in spy.violations)


def test_applied_layers_are_flushed_before_they_are_renamed_into_place(
    snapshotter: Snap, monkeypatch: pytest.MonkeyPatch
) -> None:
    spy = DurabilitySpy(monkeypatch, snapshotter.root)
    snapshotter.apply_layer(BASE, None, io.BytesIO(LAYERS[0]))
    snapshotter.apply_layer(TOP, BASE, io.BytesIO(LAYERS[1]))
    assert spy.events == ["flush", "publish", "flush", "publish"]  # one syncfs per layer
    spy.assert_rule_held(renames_flushed=False)  # the caller flushes before it records


def test_a_committed_snapshot_is_flushed_before_it_becomes_a_layer(
    snapshotter: Snap, monkeypatch: pytest.MonkeyPatch
) -> None:
    snapshotter.apply_layer(BASE, None, io.BytesIO(LAYERS[0]))
    snapshotter.prepare("build-1", BASE)
    # what a build step or container wrote (straight into the writable dir: no mount)
    (snapshotter.upper_dir("build-1") / "new").write_bytes(b"x" * 100_000)
    spy = DurabilitySpy(monkeypatch, snapshotter.root)
    snapshotter.commit("build-1", TOP)
    assert spy.events == ["flush", "publish"]
    spy.assert_rule_held(renames_flushed=False)
    assert (snapshotter.layer_dir(TOP) / "new").stat().st_size == 100_000


def test_overlay_staged_layers_carry_their_parent_into_the_callers_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "snapshots"
    root.mkdir()
    if not overlay_supported(root):
        pytest.skip("overlayfs cannot be mounted here")
    snapshotter = OverlaySnapshotter(root / "overlay")
    spy = DurabilitySpy(monkeypatch, snapshotter.root)
    base, _ = snapshotter.stage_layer(io.BytesIO(LAYERS[0]), None)
    top, _ = snapshotter.stage_layer(io.BytesIO(LAYERS[1]), BASE)
    snapshotter.sync()  # a pull: one flush for every layer it staged
    snapshotter.publish_staged(BASE, base, flushed=True)
    snapshotter.publish_staged(TOP, top, flushed=True)
    snapshotter.sync()
    assert spy.events == ["flush", "publish", "publish", "flush"]
    spy.assert_rule_held()
    assert (snapshotter.layer_dir(TOP).parent / "parent").read_text() == BASE
    # not flushed by the caller: publish_staged flushes itself
    again, _ = snapshotter.stage_layer(io.BytesIO(_tar({"e": b"4"})), TOP)
    snapshotter.publish_staged("sha256:" + "c" * 64, again, flushed=False)
    assert spy.events[-2:] == ["flush", "publish"]
    spy.assert_rule_held(renames_flushed=False)


def test_blobs_written_without_fsync_are_published_only_after_one_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileContentStore(tmp_path / "content")
    spy = DurabilitySpy(monkeypatch, store.root)
    writers = []
    for i in range(3):
        writer = store.writer()
        writer.write(bytes([i]) * 10_000)
        writer.verify(durable=False)
        writers.append(writer)
    store.sync()
    for writer in writers:
        writer.commit(durable=False)
    store.sync()
    assert spy.events == ["flush", "publish", "publish", "publish", "flush"]
    spy.assert_rule_held()


def test_flush_syncs_each_filesystem_once(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[Path] = []
    monkeypatch.setattr(durability, "syncfs", calls.append)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    durability.flush(tmp_path / "a", tmp_path / "b", Path("/proc"))
    assert calls == [tmp_path / "a", Path("/proc")]
    assert durability.same_filesystem(tmp_path / "a", tmp_path / "b")
    assert not durability.same_filesystem(tmp_path, Path("/proc"))
