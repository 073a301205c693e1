"""The metadata database: SQLite in WAL mode, one transaction per change."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

from hafen.store.metadata import SCHEMA_VERSION, MetadataStore


@pytest.fixture
def db(tmp_path: Path) -> Iterator[MetadataStore]:
    store = MetadataStore(tmp_path / "meta" / "metadata.db")
    try:
        yield store
    finally:
        store.close()


def _add_image(conn: sqlite3.Connection, image_id: str) -> None:
    conn.execute(
        "INSERT INTO images (id, config_digest, created, added) VALUES (?, ?, ?, ?)",
        (image_id, image_id, "2024-01-01T00:00:00Z", 0.0),
    )


def test_the_database_is_created_in_wal_mode_with_its_schema(db: MetadataStore) -> None:
    assert db.path.exists()
    assert db.query("PRAGMA journal_mode")[0][0] == "wal"
    assert db.query("PRAGMA user_version")[0][0] == SCHEMA_VERSION
    tables = {row["name"] for row in db.query("SELECT name FROM sqlite_master WHERE type='table'")}
    assert {"images", "tags", "layers", "containers"} <= tables


def test_a_committed_transaction_is_visible(db: MetadataStore) -> None:
    with db.transaction() as conn:
        _add_image(conn, "sha256:one")
        conn.execute("INSERT INTO tags VALUES (?, ?)", ("docker.io/library/a:latest", "sha256:one"))
    assert [r["id"] for r in db.query("SELECT id FROM images")] == ["sha256:one"]
    assert db.query("SELECT image_id FROM tags")[0][0] == "sha256:one"


def test_an_exception_rolls_back_every_step(db: MetadataStore) -> None:
    with pytest.raises(RuntimeError), db.transaction() as conn:
        _add_image(conn, "sha256:half")
        conn.execute("INSERT INTO tags VALUES (?, ?)", ("docker.io/library/h:1", "sha256:half"))
        raise RuntimeError("crash between steps")
    assert db.query("SELECT COUNT(*) FROM images")[0][0] == 0
    assert db.query("SELECT COUNT(*) FROM tags")[0][0] == 0
    with db.transaction() as conn:  # the connection is usable afterwards
        _add_image(conn, "sha256:after")
    assert db.query("SELECT COUNT(*) FROM images")[0][0] == 1


def test_a_nested_transaction_joins_the_outer_one(db: MetadataStore) -> None:
    with pytest.raises(RuntimeError), db.transaction() as outer:
        _add_image(outer, "sha256:outer")
        with db.transaction() as inner:
            _add_image(inner, "sha256:inner")
        raise RuntimeError("outer fails after the inner block")
    assert db.query("SELECT COUNT(*) FROM images")[0][0] == 0


def test_foreign_keys_are_enforced(db: MetadataStore) -> None:
    with pytest.raises(sqlite3.IntegrityError), db.transaction() as conn:
        conn.execute("INSERT INTO tags VALUES (?, ?)", ("docker.io/library/x:1", "sha256:nope"))
    assert db.query("SELECT COUNT(*) FROM tags")[0][0] == 0


def test_reopening_keeps_the_data(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    first = MetadataStore(path)
    with first.transaction() as conn:
        _add_image(conn, "sha256:kept")
    first.close()
    second = MetadataStore(path)
    try:
        assert [r["id"] for r in second.query("SELECT id FROM images")] == ["sha256:kept"]
        assert second.query("PRAGMA journal_mode")[0][0] == "wal"
    finally:
        second.close()
