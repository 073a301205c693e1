"""One suite for every snapshotter: layers by ChainID, writable snapshots, real mounts."""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument, InvalidConfig, NotFound
from hafen.store.layers import chain_ids
from hafen.store.snapshots import (
    OverlaySnapshotter,
    VfsSnapshotter,
    overlay_supported,
    select_snapshotter,
)
from tests.unit.layer_fixtures import snapshotter_on, tar_of

Snap = OverlaySnapshotter | VfsSnapshotter
Mount = Callable[[str], Path]

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting snapshots needs root")


_tar = tar_of


# The base layer, and a second one that deletes etc/a (whiteout), replaces everything
# under dir/ (opaque) and adds etc/c.
LAYER1 = _tar(
    ("etc", None),
    ("etc/a", b"a from layer 1"),
    ("etc/b", b"b from layer 1"),
    ("dir", None),
    ("dir/old", b"hidden by the opaque dir above"),
)
LAYER2 = _tar(
    ("etc/.wh.a", b""),
    ("etc/c", b"c from layer 2"),
    ("dir/.wh..wh..opq", b""),
    ("dir/new", b"only this in dir"),
)
DIFF_IDS = ["sha256:" + hashlib.sha256(layer).hexdigest() for layer in (LAYER1, LAYER2)]
BASE, TOP = chain_ids(DIFF_IDS)
MERGED = {"etc", "etc/b", "etc/c", "dir", "dir/new"}


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def _is_mounted(path: Path) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4] == str(path) for line in f)


@pytest.fixture(params=["overlay", "vfs"])
def snapshotter(request: pytest.FixtureRequest, tmp_path: Path) -> Snap:
    return snapshotter_on(request.param, tmp_path)


@pytest.fixture
def mount(snapshotter: Snap, tmp_path: Path) -> Iterator[Mount]:
    """Mount a snapshot at a fresh target; every mount left is unmounted at teardown."""
    targets: list[Path] = []

    def _mount(key: str) -> Path:
        target = tmp_path / "mnt" / key
        target.mkdir(parents=True)
        snapshotter.mount(key, target)
        targets.append(target)
        return target

    try:
        yield _mount
    finally:
        for target in reversed(targets):
            if _is_mounted(target):
                snapshotter.unmount(target)
        assert not any(_is_mounted(t) for t in targets)


@pytest.fixture
def layered(snapshotter: Snap) -> Snap:
    """Both layers applied."""
    assert snapshotter.apply_layer(BASE, None, io.BytesIO(LAYER1)).diff_id == DIFF_IDS[0]
    assert snapshotter.apply_layer(TOP, BASE, io.BytesIO(LAYER2)).diff_id == DIFF_IDS[1]
    return snapshotter


def _staging_left(snapshotter: Snap) -> list[Path]:
    return list(snapshotter.root.rglob(".staging-*"))


def test_applied_layers_are_there_by_chain_id(layered: Snap) -> None:
    assert layered.has_layer(BASE) and layered.has_layer(TOP)
    assert not layered.has_layer("sha256:" + "0" * 64)
    assert _staging_left(layered) == []


def test_mounted_snapshot_shows_the_merged_layers(layered: Snap, mount: Mount) -> None:
    layered.prepare("c1", TOP)
    root = mount("c1")
    assert _is_mounted(root)
    assert _tree(root) == MERGED
    assert (root / "etc/b").read_bytes() == b"b from layer 1"
    assert (root / "etc/c").read_bytes() == b"c from layer 2"
    assert (root / "dir/new").read_bytes() == b"only this in dir"


def test_a_snapshot_of_the_base_chain_sees_only_the_base(layered: Snap, mount: Mount) -> None:
    layered.prepare("base", BASE)
    assert _tree(mount("base")) == {"etc", "etc/a", "etc/b", "dir", "dir/old"}


def test_a_snapshot_over_nothing_is_empty_and_writable(snapshotter: Snap, mount: Mount) -> None:
    snapshotter.prepare("scratch", None)
    root = mount("scratch")
    assert _tree(root) == set()
    (root / "hello").write_text("hi")
    assert (snapshotter.upper_dir("scratch") / "hello").read_text() == "hi"


def test_writes_go_to_the_upper_dir_and_not_into_the_layers(layered: Snap, mount: Mount) -> None:
    layered.prepare("c1", TOP)
    root = mount("c1")
    before = layered.usage("c1")
    (root / "written").write_bytes(b"w" * 100_000)
    assert layered.usage("c1") >= before + 100_000
    (root / "etc/b").write_bytes(b"changed in the container")
    (root / "etc/c").unlink()

    upper = layered.upper_dir("c1")
    assert (upper / "written").read_bytes() == b"w" * 100_000
    assert (upper / "etc/b").read_bytes() == b"changed in the container"
    assert not (upper / "etc/c").is_file()

    layered.prepare("c2", TOP)  # another container on the same layers sees them unchanged
    other = mount("c2")
    assert _tree(other) == MERGED
    assert (other / "etc/b").read_bytes() == b"b from layer 1"
    assert (other / "etc/c").read_bytes() == b"c from layer 2"


def test_unmount_then_remove_cleans_up(layered: Snap, mount: Mount) -> None:
    layered.prepare("c1", TOP)
    root = mount("c1")
    (root / "scribble").write_text("x")
    layered.unmount(root)
    assert not _is_mounted(root)
    assert _tree(root) == set()
    upper = layered.upper_dir("c1")
    assert upper.exists()
    layered.remove("c1")
    assert not upper.exists()
    assert not upper.parent.exists()
    with pytest.raises(NotFound):
        layered.mount("c1", root)
    layered.remove("c1")  # removing what is gone is a no-op
    assert layered.has_layer(TOP)  # the layers stay for the next container


def test_a_snapshot_key_is_taken_once(layered: Snap) -> None:
    layered.prepare("c1", TOP)
    with pytest.raises(InvalidArgument, match="already exists"):
        layered.prepare("c1", BASE)
    assert _staging_left(layered) == []


def test_prepare_over_a_missing_chain_is_not_found(snapshotter: Snap) -> None:
    with pytest.raises(NotFound):
        snapshotter.prepare("c1", TOP)
    assert not snapshotter.upper_dir("c1").exists()


def test_remove_layer(layered: Snap) -> None:
    layered.remove_layer(TOP)
    assert not layered.has_layer(TOP)
    assert layered.has_layer(BASE)
    layered.remove_layer(TOP)  # again: a no-op
    # and it can be applied again
    layered.apply_layer(TOP, BASE, io.BytesIO(LAYER2))
    assert layered.has_layer(TOP)


def test_apply_layer_over_a_missing_parent_is_not_found(snapshotter: Snap) -> None:
    with pytest.raises(NotFound, match="parent"):
        snapshotter.apply_layer(TOP, BASE, io.BytesIO(LAYER2))
    assert not snapshotter.has_layer(TOP)
    assert _staging_left(snapshotter) == []


def test_a_failed_apply_leaves_no_layer_behind(layered: Snap) -> None:
    big = _tar(("etc/first", b"1"), ("etc/big", os.urandom(200_000)))
    broken = big[: len(big) // 2]  # the stream dies in the middle of a file
    chain = chain_ids([*DIFF_IDS, "sha256:" + hashlib.sha256(big).hexdigest()])[-1]
    with pytest.raises(InvalidArgument):
        layered.apply_layer(chain, TOP, io.BytesIO(broken))
    assert not layered.has_layer(chain)
    assert _staging_left(layered) == []
    assert layered.has_layer(TOP)


def test_stale_staging_dirs_are_swept_on_open(layered: Snap) -> None:
    (layered.root / "layers" / ".staging-crashed" / "diff").mkdir(parents=True)
    (layered.root / "active" / ".staging-crashed" / "upper").mkdir(parents=True)
    reopened = type(layered)(layered.root)
    assert _staging_left(reopened) == []
    assert reopened.has_layer(TOP)


def test_select_snapshotter_picks_overlay_here_and_vfs_when_asked(tmp_path: Path) -> None:
    if overlay_supported(tmp_path):
        assert isinstance(select_snapshotter(tmp_path / "a"), OverlaySnapshotter)
        assert isinstance(select_snapshotter(tmp_path / "a", "overlay2"), OverlaySnapshotter)
    chosen = select_snapshotter(tmp_path / "b", prefer="vfs")
    assert isinstance(chosen, VfsSnapshotter) and chosen.name == "vfs"
    assert chosen.root == tmp_path / "b" / "vfs"
    with pytest.raises(InvalidConfig, match="btrfs"):
        select_snapshotter(tmp_path / "c", prefer="btrfs")


def test_a_volatile_mount_shows_the_same_tree_and_can_be_mounted_again(
    layered: Snap, tmp_path: Path
) -> None:
    """An auto-remove container's snapshot is mounted volatile (no sync at unmount): the
    tree and the writes are the same, and mounting it again (volatile or not) works."""
    layered.prepare("c1", TOP)
    root = tmp_path / "mnt" / "c1"
    root.mkdir(parents=True)
    for volatile in (True, True, False):
        layered.mount("c1", root, volatile=volatile)
        try:
            assert _tree(root) >= MERGED
            (root / "scribble").write_text("x")
        finally:
            layered.unmount(root)
    assert (layered.upper_dir("c1") / "scribble").read_text() == "x"
    layered.remove("c1")
