"""Incremental build contexts: the daemon keeps the last context of each client directory,
and a rebuild sends only the files whose metadata changed (as BuildKit's context sync).

Lifecycle of one synced build (hafen's own CLI; the docker CLI sends whole tars):

1. ``plan`` gets the client's manifest (every member it would send, with its ``lstat``
   facts) under a key naming its context directory; it takes that key's cached context
   out of the cache (one build at a time owns it) and answers a token and the indices of
   the members to send: those whose facts differ from the cached ones, or all of them
   when nothing usable is cached;
2. ``take`` (the ``/build`` request naming the token) hands the plan over: the delta tar
   is appended to the cached spool (``ContextReceiver.append_to``), whose unchanged
   members keep their offsets and digests, so nothing unchanged is read, written or
   hashed again;
3. when the build ends, ``store`` puts the new context back as the key's; a receive that
   failed drops it instead (the next build sends everything).

Plans not taken within ``PLAN_TTL`` seconds are dropped with their spool files. A spool
whose stale bytes (replaced members) outweigh its live ones (and 8 MiB) is not reused: the client
sends everything and the spool starts afresh. Nothing is kept across daemon restarts
(``Builder.sweep`` clears the work directory).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hafen.build.context import BuildContext, ContextEntry, ContextReceiver, SyncBase
from hafen.errors import InvalidArgument, NotFound

PLAN_TTL = 120.0
MAX_CONTEXTS = 16  # cached contexts kept; the least recently used goes first
MAX_MANIFEST_ENTRIES = 1_000_000
STALE_BYTES_ALLOWED = 8 * 1024 * 1024  # replaced members a spool may hold, at the least
KINDS = frozenset("fdlh")  # file, directory, symlink, hard link


@dataclass(frozen=True)
class ManifestEntry:
    """One member the client would send, as its ``lstat`` saw it.

    ``ino`` < 0 marks a member made by the client (a Dockerfile from outside the
    context, a rewritten ``.dockerignore``): it is always sent.
    """

    path: str
    kind: str
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    linkname: str = ""

    @classmethod
    def from_json(cls, item: Any) -> ManifestEntry:
        if not isinstance(item, list) or len(item) != 8:
            raise InvalidArgument(f"context manifest entry must be an 8-item array: {item!r}")
        path, kind, mode, size, mtime_ns, ctime_ns, ino, linkname = item
        if not isinstance(path, str) or not path or kind not in KINDS:
            raise InvalidArgument(f"context manifest entry has a bad path or kind: {item!r}")
        numbers = (mode, size, mtime_ns, ctime_ns, ino)
        if not all(isinstance(n, int) and not isinstance(n, bool) for n in numbers):
            raise InvalidArgument(f"context manifest entry has a non-integer field: {item!r}")
        if not isinstance(linkname, str) or size < 0:
            raise InvalidArgument(f"context manifest entry is malformed: {item!r}")
        return cls(path, kind, mode, size, mtime_ns, ctime_ns, ino, linkname)

    def to_json(self) -> list[Any]:
        return [self.path, self.kind, self.mode, self.size, self.mtime_ns, self.ctime_ns,
                self.ino, self.linkname]  # fmt: skip


@dataclass
class CachedContext:
    """A spool tar and what is known of its members: the raw index (before
    ``.dockerignore``), and for each path the manifest facts its member was sent with."""

    tar_path: Path
    size: int  # bytes of the spool that hold members; an append starts here
    index: dict[str, ContextEntry]
    facts: dict[str, ManifestEntry]
    live_bytes: int

    def discard(self) -> None:
        self.tar_path.unlink(missing_ok=True)


@dataclass
class SyncPlan:
    """What ``plan`` decided for one build: the base to append to (None: a fresh spool)
    and the manifest the delta completes."""

    token: str
    key: str
    manifest: list[ManifestEntry]
    base: CachedContext | None
    need: list[int]
    made: float = field(default_factory=time.monotonic)

    def needed_paths(self) -> list[str]:
        return [self.manifest[i].path for i in self.need]


class ContextCache:
    """The cached contexts of one daemon, by client key, and the plans handed out."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._contexts: dict[str, CachedContext] = {}  # in use order: oldest first
        self._plans: dict[str, SyncPlan] = {}

    def plan(self, key: str, manifest: list[ManifestEntry]) -> SyncPlan:
        """Decide what the client must send for ``manifest``; the plan's base (if any)
        leaves the cache until ``store`` puts a context back."""
        if not key or len(key) > 200:
            raise InvalidArgument("context key must be 1 to 200 characters")
        if len(manifest) > MAX_MANIFEST_ENTRIES:
            raise InvalidArgument(f"context manifest has more than {MAX_MANIFEST_ENTRIES} entries")
        with self._lock:
            self._expire()
            base = self._contexts.pop(key, None)
        if base is not None and (
            not base.tar_path.exists()
            or base.size - base.live_bytes > max(base.live_bytes, STALE_BYTES_ALLOWED)
        ):
            base.discard()  # gone, or more stale than live: start afresh
            base = None
        if base is None:
            need = list(range(len(manifest)))
        else:
            facts = base.facts
            need = [
                i
                for i, entry in enumerate(manifest)
                if entry.ino < 0 or facts.get(entry.path) != entry or entry.path not in base.index
            ]
        plan = SyncPlan(secrets.token_hex(16), key, manifest, base, need)
        with self._lock:
            self._plans[plan.token] = plan
        return plan

    def take(self, token: str) -> SyncPlan:
        """The plan a ``/build`` request names; it can be taken once."""
        with self._lock:
            self._expire()
            plan = self._plans.pop(token, None)
        if plan is None:
            raise NotFound(
                f"build context session {token[:16]} is unknown or expired: run the build again"
            )
        return plan

    def store(self, key: str, context: CachedContext) -> None:
        """``context`` becomes ``key``'s; whatever it replaces is removed."""
        with self._lock:
            old = self._contexts.pop(key, None)
            self._contexts[key] = context
            evicted = []
            while len(self._contexts) > MAX_CONTEXTS:
                oldest = next(iter(self._contexts))
                evicted.append(self._contexts.pop(oldest))
        if old is not None and old.tar_path != context.tar_path:
            old.discard()
        for item in evicted:
            item.discard()

    def receiver(self, plan: SyncPlan, work_dir: Path) -> ContextReceiver:
        """The receiver of a synced build's stream: it appends to the plan's base (or
        starts a fresh spool); the base is dropped if that fails (blocking)."""
        if plan.base is None:
            return ContextReceiver(work_dir)
        needed = set(plan.needed_paths())
        unchanged = [e.path for e in plan.manifest if e.path not in needed]
        base = SyncBase(plan.base.tar_path, plan.base.size, plan.base.index, unchanged)
        try:
            return ContextReceiver(work_dir, base)
        except BaseException:
            plan.base.discard()
            raise

    def keep(self, plan: SyncPlan, receiver: ContextReceiver, ctx: BuildContext) -> None:
        """Closing ``ctx`` makes its spool the plan's key's cached context (instead of
        removing it)."""
        index = receiver.raw_index
        facts = {e.path: e for e in plan.manifest if e.ino >= 0}
        size = receiver.size

        def release() -> None:
            if ctx.tar_path is not None:
                live = _live_bytes(index)
                self.store(plan.key, CachedContext(ctx.tar_path, size, index, facts, live))

        ctx.release = release

    def clear(self) -> int:
        """Drop every cached context not in use (``builder prune``); the bytes freed."""
        with self._lock:
            contexts = list(self._contexts.values())
            self._contexts.clear()
        freed = 0
        for item in contexts:
            with contextlib.suppress(OSError):
                freed += item.tar_path.stat().st_size
            item.discard()
        return freed

    def _expire(self) -> None:
        now = time.monotonic()
        for token in [t for t, p in self._plans.items() if now - p.made > PLAN_TTL]:
            plan = self._plans.pop(token)
            if plan.base is not None:
                plan.base.discard()


def _live_bytes(index: dict[str, ContextEntry]) -> int:
    """About how many bytes of the spool the index still points at (headers included)."""
    return sum(512 + (-e.size % 512) + e.size if e.offset else 512 for e in index.values())


def parse_manifest(body: Any) -> tuple[str, list[ManifestEntry]]:
    """The key and entries of a ``POST /hafen/build/context`` body."""
    if not isinstance(body, dict):
        raise InvalidArgument("context manifest must be a JSON object")
    key = body.get("Key")
    entries = body.get("Entries")
    if not isinstance(key, str):
        raise InvalidArgument("context manifest needs a string Key")
    if not isinstance(entries, list):
        raise InvalidArgument("context manifest needs an Entries array")
    manifest = [ManifestEntry.from_json(item) for item in entries]
    if len({e.path for e in manifest}) != len(manifest):
        raise InvalidArgument("context manifest names a path twice")
    return key, manifest


__all__ = [
    "CachedContext",
    "ContextCache",
    "ManifestEntry",
    "SyncPlan",
    "parse_manifest",
]
