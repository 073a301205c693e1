"""runtime/_os.py: what it writes of ``os`` gives what ``os`` gives."""

from __future__ import annotations

import os
import posixpath
from pathlib import Path

import pytest

from hafen.runtime import _os

PATHS = [
    "", "/", "//", "///", "a", "/a", "a/", "/a/", "a//b", "/a/./b/../c", "../a", "a/../..",
    "/../a", "//a/b", "///a//b/", "./", ".", "..", "a/b/c/", "/a/b/c", "rootfs/../../etc",
    "a/./.././b", "/dev//shm/", "é/ü",
]  # fmt: skip


@pytest.mark.parametrize("p", PATHS)
def test_path_functions_match_posixpath(p: str) -> None:
    assert _os.path.dirname(p) == posixpath.dirname(p)
    assert _os.path.basename(p) == posixpath.basename(p)
    assert _os.path.normpath(p) == posixpath.normpath(p)
    if p:
        assert _os.path.abspath(p) == posixpath.abspath(p)


@pytest.mark.parametrize(
    "parts", [("a", "b"), ("/a", "/b", "c"), ("a/", "b"), ("", "b"), ("a", ""), ("/", "x/", "y")]
)
def test_join_matches_posixpath(parts: tuple[str, ...]) -> None:
    assert _os.path.join(*parts) == posixpath.join(*parts)


def test_file_kind_tests_match_os_path(tmp_path: Path) -> None:
    (tmp_path / "dir").mkdir()
    (tmp_path / "file").write_text("x")
    (tmp_path / "link").symlink_to("file")
    (tmp_path / "dangling").symlink_to("missing")
    os.mkfifo(tmp_path / "fifo")
    for name in ("dir", "file", "link", "dangling", "fifo", "missing", "file/under-a-file"):
        p = str(tmp_path / name)
        for check in ("exists", "lexists", "isdir", "isfile", "islink"):
            assert getattr(_os.path, check)(p) == getattr(os.path, check)(p), (name, check)
    assert _os.path.exists("bad\0path") is False  # ValueError, as os.path


def test_makedirs_makes_parents_and_keeps_os_errors(tmp_path: Path) -> None:
    old_umask = os.umask(0)
    try:
        _os.makedirs(str(tmp_path / "a/b/c"), mode=0o700)
    finally:
        os.umask(old_umask)
    assert (tmp_path / "a/b/c").stat().st_mode & 0o777 == 0o700
    assert (tmp_path / "a").stat().st_mode & 0o777 == 0o777  # parents: 0o777, as os
    _os.makedirs(str(tmp_path / "a/b/c/"), exist_ok=True)
    with pytest.raises(FileExistsError):
        _os.makedirs(str(tmp_path / "a/b"))
    (tmp_path / "file").write_text("x")
    with pytest.raises(FileExistsError):
        _os.makedirs(str(tmp_path / "file"), exist_ok=True)  # exists, but not a directory
    with pytest.raises(NotADirectoryError):
        _os.makedirs(str(tmp_path / "file/sub"), exist_ok=True)


def test_fsencode_and_posix_names_match_os() -> None:
    for name in ("plain", "é", "bad\udcff"):
        assert _os.fsencode(name) == os.fsencode(name)
    assert _os.fsencode(b"raw") == b"raw"
    for name in ("open", "O_CLOEXEC", "waitstatus_to_exitcode", "_exit", "RTLD_NOW", "X_OK"):
        assert getattr(_os, name) == getattr(os, name)
