"""build.contextsync and the receiver's append mode: what a rebuild must send, and a
context made of a cached spool plus a delta that reads, digests and unpacks as if it
had been sent whole."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import pytest

from hafen.build import contextsync
from hafen.build.context import ContextReceiver, SyncBase
from hafen.build.contextsync import (
    CachedContext,
    ContextCache,
    ManifestEntry,
    parse_manifest,
)
from hafen.errors import InvalidArgument, NotFound
from tests.unit.layer_fixtures import tar_of


def _entry(path: str, mtime: int = 1, kind: str = "f", ino: int = 7) -> ManifestEntry:
    return ManifestEntry(path, kind, 0o644, 3, mtime, mtime, ino)


def _cached(tmp_path: Path, facts: list[ManifestEntry]) -> CachedContext:
    spool = tmp_path / f"spool-{len(list(tmp_path.iterdir()))}.tar"
    spool.write_bytes(b"\0" * 2048)
    index = {e.path: object() for e in facts}
    return CachedContext(spool, 1024, index, {e.path: e for e in facts}, 1024)


def test_manifest_entries_are_validated() -> None:
    assert parse_manifest({"Key": "k", "Entries": [["a", "f", 420, 3, 1, 1, 7, ""]]}) == (
        "k",
        [ManifestEntry("a", "f", 420, 3, 1, 1, 7)],
    )
    for bad in (
        [],
        {"Key": 1, "Entries": []},
        {"Key": "k", "Entries": {}},
        {"Key": "k", "Entries": [["a", "x", 420, 3, 1, 1, 7, ""]]},
        {"Key": "k", "Entries": [["a", "f", "420", 3, 1, 1, 7, ""]]},
        {"Key": "k", "Entries": [["a", "f", 420, -3, 1, 1, 7, ""]]},
        {"Key": "k", "Entries": [["a", "f", 420, 3, 1, 1, 7]]},
        {"Key": "k", "Entries": [["", "f", 420, 3, 1, 1, 7, ""]]},
        {"Key": "k", "Entries": [["a", "f", 420, 3, 1, 1, 7, ""]] * 2},
    ):
        with pytest.raises(InvalidArgument):
            parse_manifest(bad)


def test_a_first_build_sends_all_and_a_rebuild_only_what_changed(tmp_path: Path) -> None:
    cache = ContextCache()
    manifest = [_entry("a"), _entry("b"), _entry("made", ino=-1)]
    first = cache.plan("k", manifest)
    assert first.base is None and first.need == [0, 1, 2]
    assert cache.take(first.token) is first
    cache.store("k", _cached(tmp_path, manifest))

    again = cache.plan("k", [_entry("a"), _entry("b", mtime=2), _entry("made", ino=-1)])
    assert again.base is not None
    assert again.need == [1, 2]  # b changed; what the client makes is always sent


def test_a_cached_context_serves_one_build_at_a_time(tmp_path: Path) -> None:
    cache = ContextCache()
    cache.store("k", _cached(tmp_path, [_entry("a")]))
    owner = cache.plan("k", [_entry("a")])
    assert owner.base is not None and owner.need == []
    beside = cache.plan("k", [_entry("a")])  # the same directory, built at the same time
    assert beside.base is None and beside.need == [0]
    with pytest.raises(NotFound, match="unknown or expired"):
        cache.take("nosuch")


def test_an_untaken_plan_expires_and_its_spool_goes(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    cache = ContextCache()
    cached = _cached(tmp_path, [_entry("a")])
    cache.store("k", cached)
    plan = cache.plan("k", [_entry("a")])
    monkeypatch.setattr(contextsync, "PLAN_TTL", 0.0)
    time.sleep(0.01)
    cache.plan("other", [])  # any call sweeps
    with pytest.raises(NotFound):
        cache.take(plan.token)
    assert not cached.tar_path.exists()


def test_a_mostly_stale_spool_is_not_reused(tmp_path: Path) -> None:
    cache = ContextCache()
    cached = _cached(tmp_path, [_entry("a")])
    cached.size, cached.live_bytes = 20_000_000, 1_000_000
    cache.store("k", cached)
    plan = cache.plan("k", [_entry("a")])
    assert plan.base is None and plan.need == [0]
    assert not cached.tar_path.exists()


def test_store_replaces_and_clear_frees(tmp_path: Path) -> None:
    cache = ContextCache()
    old, new = _cached(tmp_path, [_entry("a")]), _cached(tmp_path, [_entry("a")])
    cache.store("k", old)
    cache.store("k", new)
    assert not old.tar_path.exists() and new.tar_path.exists()
    assert cache.clear() == 2048
    assert not new.tar_path.exists()


def _tar(members: list[tuple[str, bytes | None]]) -> bytes:
    return tar_of(*members)


def test_a_delta_appended_to_a_spool_makes_the_whole_context(tmp_path: Path) -> None:
    first = ContextReceiver(tmp_path)
    first.feed(_tar([("Dockerfile", b"FROM x\n"), ("d", None), ("d/a", b"old a"),
                     ("d/b", b"b stays"), ("d/gone", b"deleted later")]))  # fmt: skip
    ctx = first.finish()
    spool, index = first.tar_path, first.raw_index
    ctx.release = lambda: None  # kept, as a synced context is
    ctx.close()
    assert spool.exists()

    unchanged = ["Dockerfile", "d", "d/b"]
    base = SyncBase(spool, first.size, index, unchanged)
    second = ContextReceiver(tmp_path, base)
    second.feed(_tar([("d/a", b"new a"), ("d/c", b"new c")]))
    ctx = second.finish(expected=["d/a", "d/c"])
    assert second.tar_path == spool and ctx.appended
    assert sorted(ctx.index) == ["Dockerfile", "d", "d/a", "d/b", "d/c"]
    assert ctx.index["d/b"] == index["d/b"]  # untouched: same offset, same digest
    assert ctx.index["d/a"].digest == hashlib.sha256(b"new a").hexdigest()
    root = ctx.root
    assert (root / "d/a").read_bytes() == b"new a"
    assert (root / "d/b").read_bytes() == b"b stays"
    assert (root / "d/c").read_bytes() == b"new c"
    assert not (root / "d/gone").exists()
    assert ctx.dockerfile == "FROM x\n"
    ctx.close()
    assert not spool.exists()  # not released to a cache: removed


def test_a_delta_that_lacks_what_was_asked_for_is_refused(tmp_path: Path) -> None:
    first = ContextReceiver(tmp_path)
    first.feed(_tar([("Dockerfile", b"FROM x\n"), ("a", b"a")]))
    ctx = first.finish()
    ctx.release = lambda: None
    ctx.close()
    base = SyncBase(first.tar_path, first.size, first.raw_index, ["Dockerfile"])
    second = ContextReceiver(tmp_path, base)
    second.feed(_tar([]))
    with pytest.raises(InvalidArgument, match="lacks 'a'"):
        second.finish(expected=["a"])
    assert not first.tar_path.exists()  # a failed receive drops the spool
