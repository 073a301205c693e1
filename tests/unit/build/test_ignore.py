"""``.dockerignore`` matching: Docker's pattern rules, exceptions and their order."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from hafen.build.context import open_context
from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound


@pytest.mark.parametrize(
    ("patterns", "path", "excluded"),
    [
        (["*.log"], "a.log", True),
        (["*.log"], "dir/a.log", False),  # * does not cross directories
        (["**/*.log"], "dir/sub/a.log", True),
        (["**/*.log"], "a.log", True),
        (["dir"], "dir/anything/below", True),  # a parent match excludes the children
        (["/dir/"], "dir/x", True),  # leading and trailing slashes are cleaned
        (["./a/../b"], "b", True),
        (["a?c"], "abc", True),
        (["a?c"], "a/c", False),
        (["[ab]x"], "bx", True),
        (["[^ab]x"], "cx", True),
        (["\\*star"], "*star", True),
        (["\\*star"], "xstar", False),
        (["**"], "anything/at/all", True),
        (["docs/**/*.md"], "docs/a/b/c.md", True),
        (["docs/**/*.md"], "docs/c.md", True),
        (["*", "!keep"], "keep", False),
        (["*", "!keep", "keep"], "keep", True),  # the last matching line wins
        (["dir", "!dir/keep.txt"], "dir/keep.txt", False),
        (["dir", "!dir/keep.txt"], "dir/other", True),
        (["# comment", "", "  spaced.txt  "], "spaced.txt", True),
    ],
)
def test_patterns(patterns: list[str], path: str, excluded: bool) -> None:
    assert IgnoreRules(patterns).excluded(path) is excluded


def test_bad_patterns_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="exclusion"):
        IgnoreRules(["!"])
    with pytest.raises(InvalidArgument, match="unclosed"):
        IgnoreRules(["[ab"])


def _tar(files: dict[str, str], end_marker: bool = True) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, text in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            archive.addfile(info, io.BytesIO(text.encode()))
    data = buf.getvalue()
    if not end_marker:  # as the docker CLI sends it with -f outside the context
        data = data.rstrip(b"\0")
    return io.BytesIO(data)


def test_context_applies_dockerignore_and_reads_the_dockerfile(tmp_path: Path) -> None:
    files = {"Dockerfile": "FROM x\n", ".dockerignore": "*.tmp\nsub\n!sub/keep\n", "a.tmp": "",
             "b.txt": "b", "sub/keep": "k", "sub/drop": "d"}  # fmt: skip
    ctx = open_context(_tar(files), tmp_path)
    try:
        assert ctx.dockerfile == "FROM x\n"
        found = sorted(str(p.relative_to(ctx.root)) for p in ctx.root.rglob("*") if p.is_file())
        assert found == [".dockerignore", "Dockerfile", "b.txt", "sub/keep"]
    finally:
        ctx.close()
    assert not ctx.root.exists()


def test_context_without_end_of_archive_blocks_is_accepted(tmp_path: Path) -> None:
    ctx = open_context(_tar({"Dockerfile": "FROM y\n", "z": "last"}, end_marker=False), tmp_path)
    try:
        assert (ctx.root / "z").read_text() == "last"
    finally:
        ctx.close()


def test_missing_dockerfile_and_dockerfile_outside(tmp_path: Path) -> None:
    with pytest.raises(NotFound, match="Cannot locate specified Dockerfile: Other"):
        open_context(_tar({"a": "b"}), tmp_path, "Other")
    with pytest.raises(InvalidArgument, match="within the build context"):
        open_context(_tar({"a": "b"}), tmp_path, "../Dockerfile")
    assert list(tmp_path.iterdir()) == []  # nothing left behind
