"""The content store: blobs by sha256, visible only once whole and verified."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from hafen.errors import DigestMismatch, InvalidArgument, NotFound
from hafen.store.content import FileContentStore


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.fixture
def store(tmp_path: Path) -> FileContentStore:
    return FileContentStore(tmp_path / "content")


def _ingest_leftovers(store: FileContentStore) -> list[Path]:
    return list((store.root / "ingest").iterdir())


def test_put_then_read_round_trips_and_digest_is_sha256_of_the_bytes(
    store: FileContentStore,
) -> None:
    data = b"hello, layers\n" * 100
    digest = store.put_bytes(data)
    assert digest == _digest(data)
    assert store.exists(digest)
    assert store.read_bytes(digest) == data
    assert store.info(digest) == len(data)
    assert store.path(digest) == store.root / "blobs" / "sha256" / digest[7:]
    with store.open(digest) as f:
        assert f.read() == data
    assert list(store.list()) == [digest]
    assert _ingest_leftovers(store) == []


def test_put_with_the_right_expected_digest_is_accepted(store: FileContentStore) -> None:
    assert store.put_bytes(b"abc", expected=_digest(b"abc")) == _digest(b"abc")


def test_expected_mismatch_raises_and_leaves_no_blob_and_no_temp_file(
    store: FileContentStore,
) -> None:
    claimed = _digest(b"what was promised")
    with pytest.raises(DigestMismatch, match=claimed):
        store.put_bytes(b"what was sent", expected=claimed)
    assert not store.exists(claimed)
    assert not store.exists(_digest(b"what was sent"))
    assert list(store.list()) == []
    assert _ingest_leftovers(store) == []


def test_streaming_writer_of_several_chunks(store: FileContentStore) -> None:
    chunks = [b"a" * 1000, b"", b"b" * 70_000, b"c"]
    whole = b"".join(chunks)
    with store.writer(expected=_digest(whole)) as w:
        for chunk in chunks:
            w.write(chunk)
        assert w.size == len(whole)
        digest = w.commit()
    assert digest == _digest(whole)
    assert store.read_bytes(digest) == whole


def test_writer_left_without_commit_leaves_nothing(store: FileContentStore) -> None:
    with store.writer() as w:
        w.write(b"never committed")
    assert list(store.list()) == []
    assert not store.exists(_digest(b"never committed"))
    assert _ingest_leftovers(store) == []


def test_exception_mid_write_leaves_nothing(store: FileContentStore) -> None:
    with pytest.raises(RuntimeError), store.writer() as w:
        w.write(b"half of ")
        raise RuntimeError("connection reset")
    assert list(store.list()) == []
    assert _ingest_leftovers(store) == []


def test_abandoned_writer_is_invisible_and_swept_on_next_open(store: FileContentStore) -> None:
    w = store.writer()
    w.write(b"the daemon died here")
    assert list(store.list()) == []  # only a temp file under ingest/
    assert len(_ingest_leftovers(store)) == 1
    reopened = FileContentStore(store.root)
    assert _ingest_leftovers(reopened) == []
    assert list(reopened.list()) == []


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "abc",
        "sha256:",
        "sha256:" + "0" * 63,
        "sha256:" + "0" * 65,
        "sha256:" + "A" * 64,
        "sha512:" + "0" * 64,
        "0" * 64,
        "sha256:../../" + "0" * 58,
    ],
)
def test_bad_digest_strings_are_refused(store: FileContentStore, bad: str) -> None:
    with pytest.raises(InvalidArgument, match="invalid digest"):
        store.path(bad)
    with pytest.raises(InvalidArgument):
        store.exists(bad)
    with pytest.raises(InvalidArgument):
        store.read_bytes(bad)
    with pytest.raises(InvalidArgument):
        store.delete(bad)
    if bad:  # an empty expected digest means "no expectation"
        with pytest.raises(InvalidArgument):
            store.put_bytes(b"x", expected=bad)
    assert _ingest_leftovers(store) == []


def test_delete_removes_the_blob_and_is_idempotent(store: FileContentStore) -> None:
    keep = store.put_bytes(b"keep")
    gone = store.put_bytes(b"gone")
    store.delete(gone)
    assert not store.exists(gone)
    assert list(store.list()) == [keep]
    store.delete(gone)  # a second delete (a racing GC) is a no-op


def test_missing_blob_is_not_found(store: FileContentStore) -> None:
    missing = _digest(b"never stored")
    assert not store.exists(missing)
    with pytest.raises(NotFound):
        store.read_bytes(missing)
    with pytest.raises(NotFound):
        store.open(missing)
    with pytest.raises(NotFound):
        store.info(missing)


def test_same_content_twice_is_one_blob(store: FileContentStore) -> None:
    assert store.put_bytes(b"same") == store.put_bytes(b"same")
    assert list(store.list()) == [_digest(b"same")]
