"""RUN --mount flags become bind specs; bad ones are refused before anything is mounted."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.build.dockerfile import parse
from hafen.build.runstep import run_mounts
from hafen.errors import InvalidArgument


def _mounts(tmp_path: Path, flag: str) -> tuple[list[str], int]:
    node = next(n for n in parse(f"FROM busybox\nRUN {flag} true\n").nodes if n.keyword == "run")
    binds, cleanups = run_mounts(node, "/work", tmp_path, {}, lambda: tmp_path, {})
    for cleanup in cleanups:
        cleanup()
    return binds, len(cleanups)


def test_tmpfs_mount_with_a_bad_size_is_refused_and_mounts_nothing(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="bad size '12q'"):
        _mounts(tmp_path, "--mount=type=tmpfs,target=/t,size=12q")
    assert list(tmp_path.iterdir()) == []


def test_tmpfs_mount_target_is_relative_to_workdir_and_cleaned_up(tmp_path: Path) -> None:
    binds, cleanups = _mounts(tmp_path, "--mount=type=tmpfs,target=scratch,size=64k")
    assert len(binds) == 1 and binds[0].endswith(":/work/scratch") and cleanups == 1
    assert list(tmp_path.iterdir()) == []  # unmounted and removed


def test_unknown_mount_type_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="unsupported type 'ssh'"):
        _mounts(tmp_path, "--mount=type=ssh,target=/s")
