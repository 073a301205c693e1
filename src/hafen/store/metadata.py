"""The metadata database: one SQLite file in WAL mode for images, tags, layers, containers,
volumes, networks and IP allocations.

The store owns the schema and its migrations; each service (images, containers) writes
its own queries against it through ``transaction()``. Every multi-step change is one
transaction, so a crash at any moment leaves either the old state or the new one.

SQLite connections are cheap and not shared between threads: each thread gets its own
connection (``threading.local``), which lets the daemon run blocking queries in worker
threads while the event loop keeps serving.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    id              TEXT PRIMARY KEY,          -- sha256:<hex of config JSON>
    config_digest   TEXT NOT NULL,
    manifest_digest TEXT,                      -- the manifest it was stored with, if any
    chain_id        TEXT,                      -- ChainID of the top layer, NULL without layers
    created         TEXT NOT NULL,             -- RFC 3339, from the image config
    size            INTEGER NOT NULL DEFAULT 0,-- bytes of the unpacked layers
    added           REAL NOT NULL              -- unix time the image was recorded here
);
CREATE TABLE IF NOT EXISTS tags (
    ref       TEXT PRIMARY KEY,                -- normalized: docker.io/library/busybox:latest
    image_id  TEXT NOT NULL REFERENCES images(id)
);
CREATE INDEX IF NOT EXISTS tags_by_image ON tags(image_id);
CREATE TABLE IF NOT EXISTS layers (
    chain_id  TEXT PRIMARY KEY,
    diff_id   TEXT NOT NULL,
    parent    TEXT,                            -- chain id of the layer below, NULL at the base
    blob      TEXT,                            -- digest of the compressed blob it came from
    size      INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS containers (
    id       TEXT PRIMARY KEY,                 -- 64 hex digits
    name     TEXT NOT NULL UNIQUE,             -- without the leading slash
    image_id TEXT NOT NULL,
    created  REAL NOT NULL,
    record   TEXT NOT NULL                     -- JSON of containers.model.Container
);
CREATE INDEX IF NOT EXISTS containers_by_image ON containers(image_id);
CREATE TABLE IF NOT EXISTS volumes (
    name        TEXT PRIMARY KEY,
    driver      TEXT NOT NULL,
    mountpoint  TEXT NOT NULL,                 -- host path of the data (inspect's Mountpoint)
    created_at  TEXT NOT NULL,                 -- RFC 3339
    labels      TEXT NOT NULL DEFAULT '{}',    -- JSON object
    options     TEXT NOT NULL DEFAULT '{}'     -- JSON object: the driver's options
);
CREATE TABLE IF NOT EXISTS build_cache (
    key        TEXT NOT NULL,                  -- sha256 of parent image + instruction + inputs
    image_id   TEXT NOT NULL,                  -- an image that build step produced
    parent_id  TEXT,                           -- the image it ran on (NULL over scratch)
    created    REAL NOT NULL,
    last_used  REAL NOT NULL,
    PRIMARY KEY (key, image_id)                -- --no-cache rebuilds add rows, never orphan
);
CREATE INDEX IF NOT EXISTS build_cache_by_parent ON build_cache(parent_id);
CREATE TABLE IF NOT EXISTS networks (
    id      TEXT PRIMARY KEY,                  -- 64 hex digits
    name    TEXT NOT NULL UNIQUE,
    record  TEXT NOT NULL                      -- JSON of network.model.Network
);
CREATE TABLE IF NOT EXISTS ip_allocations (
    network_id   TEXT NOT NULL,
    address      TEXT NOT NULL,
    container_id TEXT NOT NULL,
    PRIMARY KEY (network_id, address)          -- one holder per address, ever at a time
);
"""


class MetadataStore:
    """Opens (creating if needed) ``<root>/metadata.db`` and hands out transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        # executescript commits any open transaction first, so the schema script carries
        # its own BEGIN/COMMIT instead of running inside transaction()
        conn = self._connection()
        try:
            conn.executescript(
                f"BEGIN IMMEDIATE;\n{_SCHEMA}\nPRAGMA user_version = {SCHEMA_VERSION};\nCOMMIT;"
            )
        except BaseException:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One atomic unit of work: committed on success, rolled back on any exception."""
        conn = self._connection()
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: tuple[object, ...] = ()) -> list[sqlite3.Row]:
        """A read outside any transaction (WAL readers never block the writer)."""
        return list(self._connection().execute(sql, params))

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
