"""Mount option parsing and symlink-safe joins (no mounts are made here)."""

from __future__ import annotations

import os
from pathlib import Path

from hafen.runtime import _sys
from hafen.runtime.rootfs import parse_options, secure_join


def test_flags_and_data_are_split() -> None:
    opts = parse_options(["nosuid", "noexec", "mode=755", "size=65536k", "ro"])
    assert opts.flags == _sys.MS_NOSUID | _sys.MS_NOEXEC | _sys.MS_RDONLY
    assert opts.data == "mode=755,size=65536k"


def test_clearing_options_undo_earlier_ones() -> None:
    opts = parse_options(["ro", "nosuid", "rw", "suid"])
    assert opts.flags == 0


def test_rbind_and_propagation() -> None:
    opts = parse_options(["rbind", "rprivate", "slave"])
    assert opts.flags == _sys.MS_BIND | _sys.MS_REC
    assert opts.propagation == [_sys.MS_PRIVATE | _sys.MS_REC, _sys.MS_SLAVE]
    assert opts.data == ""


def test_devpts_options_pass_through_as_data() -> None:
    opts = parse_options(["nosuid", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"])
    assert opts.data == "newinstance,ptmxmode=0666,mode=0620,gid=5"


def test_secure_join_plain_paths(tmp_path: Path) -> None:
    assert secure_join(str(tmp_path), "/a/b") == str(tmp_path / "a" / "b")
    assert secure_join(str(tmp_path), "a/./b/../c") == str(tmp_path / "a" / "c")


def test_secure_join_clamps_dotdot_at_root(tmp_path: Path) -> None:
    assert secure_join(str(tmp_path), "/../../etc/passwd") == str(tmp_path / "etc" / "passwd")


def test_secure_join_absolute_symlink_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "etc").mkdir()
    os.symlink("/etc", tmp_path / "link")
    assert secure_join(str(tmp_path), "/link/passwd") == str(tmp_path / "etc" / "passwd")


def test_secure_join_relative_escape_is_clamped(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    os.symlink("../../../../../tmp", tmp_path / "a" / "up")
    assert secure_join(str(tmp_path), "/a/up/x") == str(tmp_path / "tmp" / "x")


def test_secure_join_symlink_loop_is_an_error(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    try:
        secure_join(str(tmp_path), "/loop/x")
    except OSError as e:
        assert "too many symlinks" in str(e)
    else:
        raise AssertionError("expected ELOOP")
