"""Snapshot changes (``docker diff``) and their layer tar, on both snapshotters."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.store.changes import Change, changes, export_changes
from hafen.store.layers import chain_ids
from hafen.store.snapshots import OverlaySnapshotter, VfsSnapshotter, overlay_supported
from tests.unit.layer_fixtures import tar_of

Snap = OverlaySnapshotter | VfsSnapshotter

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting snapshots needs root")


_tar = tar_of


BASE_LAYER = _tar(
    ("etc", None),
    ("etc/keep", b"unchanged"),
    ("etc/edit", b"old"),
    ("etc/gone", b"deleted below"),
    ("var", None),
    ("var/cache", None),
    ("var/cache/x", b"x"),
    ("var/cache/y", b"y"),
    ("opt", None),
    ("opt/old", b"replaced dir"),
)
BASE = chain_ids(["sha256:" + hashlib.sha256(BASE_LAYER).hexdigest()])[0]


@pytest.fixture(params=["overlay", "vfs"])
def snap(request: pytest.FixtureRequest, tmp_path: Path) -> Snap:
    root = tmp_path / "snapshots"
    root.mkdir()
    s: Snap
    if request.param == "overlay":
        if not overlay_supported(root):
            pytest.skip(f"overlayfs cannot be mounted under {root}")
        s = OverlaySnapshotter(root / "overlay")
    else:
        s = VfsSnapshotter(root / "vfs")
    s.apply_layer(BASE, None, io.BytesIO(BASE_LAYER))
    return s


@pytest.fixture
def changed(snap: Snap, tmp_path: Path) -> Iterator[Snap]:
    """Snapshot ``c1`` over the base with one of every kind of change made through a mount."""
    snap.prepare("c1", BASE)
    target = tmp_path / "mnt"
    target.mkdir()
    snap.mount("c1", target)
    try:
        (target / "etc/edit").write_bytes(b"new content")
        (target / "etc/gone").unlink()
        (target / "etc/new").write_bytes(b"added")
        (target / "etc/sub").mkdir()
        (target / "etc/sub/deep").write_bytes(b"deep")
        os.symlink("keep", target / "etc/link")
        os.link(target / "etc/new", target / "etc/hard")
        import shutil

        shutil.rmtree(target / "var/cache")
        shutil.rmtree(target / "opt")
        (target / "opt").mkdir()  # overlay makes the re-created dir opaque
        (target / "opt/fresh").write_bytes(b"fresh")
        (target / "skip-me").write_bytes(b"excluded by the caller")
    finally:
        snap.unmount(target)
    yield snap


def _exclude(rel: str) -> bool:
    return rel == "skip-me"


def test_change_list_names_added_changed_and_deleted_paths(changed: Snap) -> None:
    got = changes(changed, "c1", exclude=_exclude)
    kinds = {c.path: c.kind for c in got}
    assert kinds["/etc"] == "C"
    assert kinds["/etc/edit"] == "C"
    assert kinds["/etc/gone"] == "D"
    assert kinds["/etc/new"] == "A"
    assert kinds["/etc/sub"] == "A" and kinds["/etc/sub/deep"] == "A"
    assert kinds["/etc/link"] == "A" and kinds["/etc/hard"] == "A"
    assert kinds["/var/cache"] == "D"
    assert "/var/cache/x" not in kinds  # only the topmost deleted directory
    assert kinds["/opt/fresh"] == "A"
    assert kinds["/opt/old"] == "D"
    assert "/etc/keep" not in kinds and "/skip-me" not in kinds
    assert Change("C", "/var") in got


def _members(data: bytes) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return {m.name: m for m in archive.getmembers()}


def test_layer_tar_has_oci_whiteouts_and_is_deterministic(changed: Snap) -> None:
    first, second = io.BytesIO(), io.BytesIO()
    stats = export_changes(changed, "c1", first, exclude=_exclude)
    assert export_changes(changed, "c1", second, exclude=_exclude).diff_id == stats.diff_id
    assert first.getvalue() == second.getvalue()
    assert stats.diff_id == "sha256:" + hashlib.sha256(first.getvalue()).hexdigest()
    members = _members(first.getvalue())
    assert "etc/.wh.gone" in members and members["etc/.wh.gone"].isreg()
    assert "var/.wh.cache" in members
    assert "skip-me" not in members and "etc/keep" not in members
    assert members["etc/link"].issym() and members["etc/link"].linkname == "keep"
    links = {members["etc/hard"].islnk(), members["etc/new"].islnk()}
    assert links == {True, False}  # one of the pair is stored as a hard link to the other
    names = list(members)
    assert names.index("etc") < names.index("etc/edit")  # parents before children
    if changed.name == "overlay":
        assert "opt/.wh..wh..opq" in members
        assert names.index("opt/.wh..wh..opq") == names.index("opt") + 1
    else:
        assert "opt/.wh.old" in members


def test_applying_the_layer_reproduces_the_snapshot(changed: Snap, tmp_path: Path) -> None:
    layer = io.BytesIO()
    stats = export_changes(changed, "c1", layer, exclude=_exclude)
    top = chain_ids([BASE, stats.diff_id])[1]
    layer.seek(0)
    changed.apply_layer(top, BASE, layer)
    changed.prepare("check", top)
    target = tmp_path / "check"
    target.mkdir()
    changed.mount("check", target)
    try:
        tree = {str(p.relative_to(target)) for p in target.rglob("*")}
        assert tree == {
            "etc", "etc/keep", "etc/edit", "etc/new", "etc/hard", "etc/link", "etc/sub",
            "etc/sub/deep", "var", "opt", "opt/fresh",
        }  # fmt: skip
        assert (target / "etc/edit").read_bytes() == b"new content"
        assert (target / "opt/fresh").read_bytes() == b"fresh"
    finally:
        changed.unmount(target)


def test_snapshot_over_nothing_is_all_additions(snap: Snap, tmp_path: Path) -> None:
    snap.prepare("empty", None)
    target = tmp_path / "m"
    target.mkdir()
    snap.mount("empty", target)
    try:
        (target / "a").mkdir()
        (target / "a/b").write_text("b")
    finally:
        snap.unmount(target)
    assert changes(snap, "empty") == [Change("A", "/a"), Change("A", "/a/b")]
    out = io.BytesIO()
    export_changes(snap, "empty", out)
    assert list(_members(out.getvalue())) == ["a", "a/b"]


def test_unchanged_snapshot_has_no_changes(snap: Snap) -> None:
    snap.prepare("idle", BASE)
    assert changes(snap, "idle") == []
    out = io.BytesIO()
    export_changes(snap, "idle", out)
    assert _members(out.getvalue()) == {}


def test_commit_turns_the_snapshot_into_the_layer_its_tar_describes(
    changed: Snap, tmp_path: Path
) -> None:
    layer = io.BytesIO()
    stats = export_changes(changed, "c1", layer, exclude=_exclude)
    top = chain_ids([BASE, stats.diff_id])[1]
    # the excluded file must go first: a committed layer holds exactly the exported changes
    (changed.upper_dir("c1") / "skip-me").unlink()
    changed.commit("c1", top)
    assert changed.has_layer(top)
    changed.prepare("check", top)
    target = tmp_path / "check"
    target.mkdir()
    changed.mount("check", target)
    try:
        tree = {str(p.relative_to(target)) for p in target.rglob("*")}
        assert tree == {
            "etc", "etc/keep", "etc/edit", "etc/new", "etc/hard", "etc/link", "etc/sub",
            "etc/sub/deep", "var", "opt", "opt/fresh",
        }  # fmt: skip
    finally:
        changed.unmount(target)
    changed.remove("c1")  # what is left of the used-up snapshot goes quietly


def test_layer_tar_keeps_special_files_xattrs_long_names_and_owners(
    snap: Snap, tmp_path: Path
) -> None:
    """The hand-written headers: fifos, xattrs (PAX), names past 100 bytes, big files'
    data, numeric owners and whole-second mtimes all read back with tarfile."""
    snap.prepare("special", None)
    target = tmp_path / "m"
    target.mkdir()
    snap.mount("special", target)
    long_name = "d/" + "n" * 140
    try:
        (target / "d").mkdir()
        (target / long_name).write_bytes(b"long")
        os.mkfifo(target / "fifo")
        (target / "big").write_bytes(os.urandom(3 * 1024 * 1024 + 7))
        (target / "attr").write_text("x")
        os.setxattr(target / "attr", "user.note", b"kept")
        os.chown(target / "attr", 1234, 5678)
        os.utime(target / "attr", (1_700_000_000.75, 1_700_000_000.75))
    finally:
        snap.unmount(target)
    out = io.BytesIO()
    stats = export_changes(snap, "special", out)
    data = out.getvalue()
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest() and stats.size == len(data)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        members = {m.name: m for m in archive}
        assert members["fifo"].isfifo()
        attr = members["attr"]
        assert (attr.uid, attr.gid, attr.mtime) == (1234, 5678, 1_700_000_000)
        assert attr.pax_headers.get("SCHILY.xattr.user.note") == "kept"
        assert members[long_name].isreg() and members["d"].isdir()
        big = archive.extractfile(members["big"])
        assert big is not None
        assert big.read() == (snap.upper_dir("special") / "big").read_bytes()
