"""A spy that checks hafen's durability rule while real stores publish (store/durability.py).

It wraps ``durability.syncfs``, ``os.rename``/``os.replace`` and metadata transactions:

- at each flush it notes every file, directory and symlink under the watched roots
  (inode → size and mtime) — what that flush made durable;
- a rename that publishes a blob (``blobs/sha256/<hex>``) or a layer (``layers/<hex>``)
  must move only things unchanged since the last flush: nothing visible is ever partly
  written after a machine crash;
- a metadata transaction must not start while a publishing rename is not yet flushed:
  nothing is recorded that a crash could take away.

Violations are collected (not raised, so that no caller's cleanup hides them).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from hafen.store import durability
from hafen.store.metadata import MetadataStore

_PUBLISHED = re.compile(r"/(blobs/sha256/[0-9a-f]{64}|layers/[0-9a-f]{64})$")


class DurabilitySpy:
    def __init__(self, monkeypatch: pytest.MonkeyPatch, *roots: Path) -> None:
        self.roots = roots
        self.events: list[str] = []
        self.violations: list[str] = []
        self._flushed: dict[int, tuple[int, int]] = {}
        self._unflushed_renames: list[str] = []
        real_syncfs = durability.syncfs
        real_rename, real_replace = os.rename, os.replace
        real_transaction = MetadataStore.transaction

        def syncfs(path: Path) -> None:
            real_syncfs(path)
            self._flushed = dict(self._walk_roots())
            self._unflushed_renames.clear()
            self.events.append("flush")

        def rename(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            published = bool(_PUBLISHED.search(os.fspath(dst)))
            if published:
                self._check_flushed(Path(src), Path(dst).name)
            real_rename(src, dst, *args, **kwargs)
            if published:
                self._unflushed_renames.append(Path(dst).name)
                self.events.append("publish")

        def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
            published = bool(_PUBLISHED.search(os.fspath(dst)))
            if published:
                self._check_flushed(Path(src), Path(dst).name)
            real_replace(src, dst, *args, **kwargs)
            if published:
                self._unflushed_renames.append(Path(dst).name)
                self.events.append("publish")

        @contextmanager
        def transaction(store: MetadataStore) -> Iterator[Any]:
            if self._unflushed_renames:
                self.violations.append(
                    f"recorded while the renames of {self._unflushed_renames} are not flushed"
                )
            self.events.append("record")
            with real_transaction(store) as db:
                yield db

        monkeypatch.setattr(durability, "syncfs", syncfs)
        monkeypatch.setattr(os, "rename", rename)
        monkeypatch.setattr(os, "replace", replace)
        monkeypatch.setattr(MetadataStore, "transaction", transaction)

    def _walk_roots(self) -> Iterator[tuple[int, tuple[int, int]]]:
        for root in self.roots:
            for path in _tree(root):
                st = os.lstat(path)
                yield st.st_ino, (st.st_size, st.st_mtime_ns)

    def _check_flushed(self, src: Path, name: str) -> None:
        for path in _tree(src):
            st = os.lstat(path)
            if self._flushed.get(st.st_ino) != (st.st_size, st.st_mtime_ns):
                self.violations.append(f"{name[:12]}: {path} was not flushed before publication")

    @property
    def flushes(self) -> int:
        return self.events.count("flush")

    def assert_rule_held(self, *, renames_flushed: bool = True) -> None:
        """No violation, something was published, and (unless the caller flushes the
        renames itself, as for a snapshotter alone) the last renames were flushed."""
        assert self.violations == []
        assert "publish" in self.events, "nothing was published: the test proves nothing"
        if renames_flushed:
            assert self._unflushed_renames == [], "renames left unflushed"


def _tree(top: Path) -> Iterator[str]:
    """``top`` and everything under it (symlinks not followed)."""
    yield str(top)
    if top.is_dir() and not top.is_symlink():
        for dirpath, dirnames, filenames in os.walk(top):
            for name in dirnames + filenames:
                yield os.path.join(dirpath, name)
