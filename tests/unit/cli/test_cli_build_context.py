"""The context ``hafen build`` sends: its manifest, and the sync that falls back to the
whole context against a daemon without hafen's /hafen/build/context (dockerd)."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from hafen.cli.commands.build import _ContextStream, _sync_context
from hafen.errors import NotFound


def _context(tmp_path: Path) -> Path:
    root = tmp_path / "ctx"
    (root / "d").mkdir(parents=True)
    (root / "Dockerfile").write_text("FROM busybox\n")
    (root / "d" / "a").write_text("a\n")
    os.symlink("a", root / "d" / "ln")
    return root


def _names(stream: _ContextStream) -> list[str]:
    data = b"".join(stream)
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        return archive.getnames()


class _Daemon:
    def __init__(self, need: list[int] | None) -> None:
        self.need = need
        self.entries: list[list[Any]] = []

    def build_context_session(self, key: str, entries: list[list[Any]]) -> dict[str, Any]:
        if self.need is None:
            raise NotFound("page not found")
        self.entries = entries
        return {"Session": "s1", "Need": self.need}


def test_the_manifest_lists_every_member_with_its_lstat_facts(tmp_path: Path) -> None:
    root = _context(tmp_path)
    entries = [m.manifest_entry() for m in _ContextStream(root, None, None).members()]
    st = os.lstat(root / "d" / "a")
    assert ["d/a", "f", 0o644, 2, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, ""] in entries
    assert [e[:2] for e in entries] == [["Dockerfile", "f"], ["d", "d"], ["d/a", "f"],
                                        ["d/ln", "l"]]  # fmt: skip
    outside = _ContextStream(root, None, "FROM scratch\n").members()
    made = [m.manifest_entry() for m in outside if m.stat is None]
    assert [e[1:] for e in made] == [["f", 0o600, 13, 0, 0, -1, ""],
                                     ["f", 0o644, len(outside[-2].rel), 0, 0, -1, ""]]  # fmt: skip


def test_a_member_changed_within_the_racy_window_is_always_sent(tmp_path: Path) -> None:
    root = _context(tmp_path)
    member = next(m for m in _ContextStream(root, None, None).members() if m.rel == "d/a")
    assert member.stat is not None
    changed = max(member.stat.st_mtime_ns, member.stat.st_ctime_ns)
    assert member.manifest_entry(changed)[6] == -1  # changed at the window's start: racy
    assert member.manifest_entry(changed + 1)[6] == member.stat.st_ino


def test_only_the_members_the_daemon_needs_are_sent(tmp_path: Path) -> None:
    stream = _ContextStream(_context(tmp_path), None, None)
    headers: dict[str, str] = {}
    _sync_context(_Daemon([2]), stream, headers)
    assert headers == {"X-Hafen-Context-Session": "s1"}
    assert _names(stream) == ["d/a"]


def test_a_daemon_without_context_sync_gets_the_whole_context(tmp_path: Path) -> None:
    stream = _ContextStream(_context(tmp_path), None, None)
    headers: dict[str, str] = {}
    _sync_context(_Daemon(None), stream, headers)
    assert headers == {}
    assert _names(stream) == ["Dockerfile", "d", "d/a", "d/ln"]
