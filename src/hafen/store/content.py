"""The content store: blobs addressed by their sha256 digest.

Lifecycle (as containerd's content store): a writer ingests bytes into a temp file under
``ingest/``, hashing as it goes; the ingestion is invisible until ``commit``, which
fsyncs, checks the digest against the expected one, and renames the file to
``blobs/sha256/<hex>``. A reader therefore never sees a partial or wrong blob, and an
interrupted write leaves only a temp file that the next start sweeps away.

Many blobs at once (a load, a build, a pull) skip the fsync apiece: each is verified
with ``durable=False``, the caller flushes the store once (``sync``: one ``syncfs``),
then commits them with ``durable=False`` and flushes again before it records anything
(see ``store/durability.py``).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import BinaryIO, Protocol

from hafen.errors import DigestMismatch, InvalidArgument, NotFound
from hafen.store import durability
from hafen.store.durability import start_writeback

_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


def check_digest(digest: str) -> str:
    """Return ``digest`` if it is ``sha256:<64 lowercase hex>``; refuse it otherwise."""
    if not isinstance(digest, str) or not _DIGEST.match(digest):
        raise InvalidArgument(f"invalid digest {digest!r}: expected sha256:<64 hex digits>")
    return digest


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


class BlobWriter(Protocol):
    """An open ingestion: ``write`` bytes, then ``commit`` (or leave the ``with`` to abort)."""

    def write(self, data: bytes) -> int: ...

    def verify(self, *, durable: bool = True) -> str:
        """Close and check the digest; still invisible until ``commit``."""

    def commit(self, *, durable: bool = True) -> str: ...

    def open_verified(self) -> BinaryIO:
        """Read the verified, not yet committed bytes (a layer unpacked before its blob
        is published)."""

    def abort(self) -> None: ...

    def reset(self) -> None:
        """Drop what was written so far (a download that must start over)."""

    @property
    def size(self) -> int: ...

    def __enter__(self) -> BlobWriter: ...

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None: ...


class ContentStore(Protocol):
    """Blobs by digest. ``writer`` ingests; nothing is visible before ``commit``.

    ``open``/``read_bytes`` of a missing digest raise ``NotFound``; ``delete`` of a
    missing one is a no-op (garbage collection may race with itself). ``sync`` flushes
    everything written under ``root`` (one ``syncfs``).
    """

    root: Path

    def writer(self, expected: str | None = None) -> BlobWriter: ...

    def put_bytes(self, data: bytes, expected: str | None = None) -> str: ...

    def exists(self, digest: str) -> bool: ...

    def info(self, digest: str) -> int: ...

    def open(self, digest: str) -> BinaryIO: ...

    def read_bytes(self, digest: str) -> bytes: ...

    def path(self, digest: str) -> Path: ...

    def delete(self, digest: str) -> None: ...

    def list(self) -> Iterator[str]: ...

    def sync(self) -> None: ...


class _FileBlobWriter:
    def __init__(self, store: FileContentStore, expected: str | None) -> None:
        self._store = store
        self._expected = check_digest(expected) if expected else None
        fd, name = tempfile.mkstemp(dir=store.root / "ingest", prefix="blob-")
        self._file = os.fdopen(fd, "wb")
        self._tmp = Path(name)
        self._hash = hashlib.sha256()
        self._size = 0
        self._done = False
        self._digest: str | None = None  # set once verified

    @property
    def size(self) -> int:
        return self._size

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self._file.write(data)
        self._size += len(data)
        return len(data)

    def reset(self) -> None:
        self._file.seek(0)
        self._file.truncate()
        self._hash = hashlib.sha256()
        self._size = 0

    def verify(self, *, durable: bool = True) -> str:
        """Close the ingestion and check its digest; the blob stays invisible until
        ``commit``. ``durable=False`` skips the fsync: the caller makes the data durable
        (one ``syncfs`` for many blobs) before it commits."""
        if self._digest is not None:
            return self._digest
        digest = "sha256:" + self._hash.hexdigest()
        self._file.flush()
        if durable:
            os.fsync(self._file.fileno())
        else:
            start_writeback(self._file.fileno())
        self._file.close()
        if self._expected and digest != self._expected:
            self._abort()
            raise DigestMismatch(
                f"content does not match its digest: expected {self._expected}, got {digest}"
            )
        self._digest = digest
        return digest

    def commit(self, *, durable: bool = True) -> str:
        """Verify (unless done) and rename the blob into place. ``durable=False``: the
        caller already synced the data and syncs the rename (``syncfs``) itself."""
        digest = self.verify(durable=durable)
        target = self._store.path(digest)
        os.replace(self._tmp, target)  # same content twice is harmless: same bytes
        if durable:
            dir_fd = os.open(target.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)
        self._done = True
        return digest

    def open_verified(self) -> BinaryIO:
        if self._digest is None or self._done:
            raise InvalidArgument("only a verified, uncommitted blob can be read back")
        return open(self._tmp, "rb")

    def abort(self) -> None:
        """Drop the ingestion (a no-op once committed)."""
        if not self._done:
            self._abort()

    def _abort(self) -> None:
        if not self._file.closed:
            self._file.close()
        self._tmp.unlink(missing_ok=True)
        self._done = True

    def __enter__(self) -> _FileBlobWriter:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if not self._done:
            self._abort()


class FileContentStore:
    """``<root>/blobs/sha256/<hex>``, ingestions in ``<root>/ingest/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        (root / "blobs" / "sha256").mkdir(parents=True, exist_ok=True)
        (root / "ingest").mkdir(parents=True, exist_ok=True)
        for leftover in (root / "ingest").iterdir():  # interrupted writes of a past run
            leftover.unlink(missing_ok=True)

    def path(self, digest: str) -> Path:
        return self.root / "blobs" / "sha256" / check_digest(digest)[7:]

    def writer(self, expected: str | None = None) -> _FileBlobWriter:
        return _FileBlobWriter(self, expected)

    def put_bytes(self, data: bytes, expected: str | None = None) -> str:
        with self.writer(expected) as w:
            w.write(data)
            return w.commit()

    def exists(self, digest: str) -> bool:
        return self.path(digest).exists()

    def info(self, digest: str) -> int:
        try:
            return self.path(digest).stat().st_size
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found")

    def open(self, digest: str) -> BinaryIO:
        try:
            return open(self.path(digest), "rb")
        except FileNotFoundError:
            raise NotFound(f"blob {digest} not found")

    def read_bytes(self, digest: str) -> bytes:
        with self.open(digest) as f:
            return f.read()

    def delete(self, digest: str) -> None:
        self.path(digest).unlink(missing_ok=True)

    def sync(self) -> None:
        """Flush everything written under the store to disk (one ``syncfs``)."""
        durability.syncfs(self.root)

    def list(self) -> Iterator[str]:
        for entry in (self.root / "blobs" / "sha256").iterdir():
            if len(entry.name) == 64:
                yield "sha256:" + entry.name
