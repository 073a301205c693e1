"""Mount-point detection that sees bind mounts within one filesystem."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafen.store import _mount

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounting needs root")


def test_same_filesystem_bind_mount_is_seen(tmp_path: Path) -> None:
    source, target = tmp_path / "src dir", tmp_path / "target"
    source.mkdir()
    target.mkdir()
    assert not _mount.is_mount_point(target)
    _mount.mount(str(source), str(target), None, _mount.MS_BIND)
    try:
        assert not os.path.ismount(target)  # the trap: same device on both sides
        assert _mount.is_mount_point(target)
        assert not _mount.is_mount_point(source)
    finally:
        _mount.unmount(str(target))
    assert not _mount.is_mount_point(target)


def test_escaped_mount_point_names_are_decoded(tmp_path: Path) -> None:
    target = tmp_path / "with space"
    target.mkdir()
    _mount.mount(str(tmp_path), str(target), None, _mount.MS_BIND)
    try:
        assert _mount.is_mount_point(target)
    finally:
        _mount.unmount(str(target))
