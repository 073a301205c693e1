"""COPY/ADD helpers: destinations, source lookup, and cache digests from the index or the files."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import pytest

from hafen.build.context import open_context
from hafen.build.copy import destination, find_sources, sources_digest
from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound, UnsafePath


@pytest.mark.parametrize(
    ("dest", "workdir", "want"),
    [
        ("/abs", "/w", "/abs"),
        ("rel", "/w", "/w/rel"),
        ("rel/", "/w", "/w/rel/"),
        (".", "/w", "/w/"),
        ("./", "", "/"),
        ("../up", "/w/x", "/w/up"),
    ],
)
def test_destination(dest: str, workdir: str, want: str) -> None:
    assert destination(dest, workdir) == want


def _context_tar() -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:

        def add(name: str, data: bytes | None = None, mode: int = 0o644) -> None:
            info = tarfile.TarInfo(name)
            info.mtime = 1_700_000_000
            if data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                archive.addfile(info)
            else:
                info.size, info.mode = len(data), mode
                archive.addfile(info, io.BytesIO(data))

        add("Dockerfile", b"FROM x\n")
        add("dir")
        add("dir/a.txt", b"a")
        add("dir/b.log", b"b", 0o600)
        add("dir/sub")
        add("dir/sub/c.txt", b"c", 0o755)
        add("top1.txt", b"1")
        add("top2.txt", b"2")
    buf.seek(0)
    return buf


@pytest.mark.parametrize(
    ("names", "exclude"),
    [(["dir"], None), (["*.txt"], None), (["dir", "top1.txt"], None), (["dir"], ["*.log"]),
     (["./dir/sub"], None), (["dir/*/c.txt"], None)],
)  # fmt: skip
def test_index_digest_equals_the_files_digest(tmp_path: Path, names: list[str],
                                              exclude: list[str] | None) -> None:  # fmt: skip
    ctx = open_context(_context_tar(), tmp_path)
    try:
        rules = IgnoreRules(exclude) if exclude else None
        from_index = ctx.sources_digest(names, rules)
        assert from_index is not None
        assert not any(p.name.startswith("context-") and p.is_dir() for p in tmp_path.iterdir())
        from_files = sources_digest(find_sources(ctx.root, names, exclude=rules), rules)
        assert from_index == from_files
    finally:
        ctx.close()


def test_digest_changes_with_content_and_mode(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / "d").mkdir(parents=True)
    (root / "d" / "f").write_text("one")
    first = sources_digest(find_sources(root, ["d"]))
    (root / "d" / "f").write_text("two")
    second = sources_digest(find_sources(root, ["d"]))
    os.chmod(root / "d" / "f", 0o700)
    third = sources_digest(find_sources(root, ["d"]))
    assert len({first, second, third}) == 3


def test_source_errors(tmp_path: Path) -> None:
    (tmp_path / "x").write_text("x")
    with pytest.raises(UnsafePath, match="outside the build context"):
        find_sources(tmp_path, ["../etc/passwd"])
    with pytest.raises(NotFound, match="file not found in build context"):
        find_sources(tmp_path, ["missing"])
    with pytest.raises(InvalidArgument, match="no source files were specified"):
        find_sources(tmp_path, ["*.none"])


@pytest.mark.parametrize("count", [3, 300])  # in order, and by the parallel writers
def test_copy_from_tar_writes_what_copy_sources_writes(tmp_path: Path, count: int) -> None:
    """COPY straight from the context tar (by index offsets) gives the same files, modes,
    owners and mtimes as copying from the unpacked context."""
    from hafen.build.copy import copy_from_tar, copy_sources, expand_names

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for d in range(min(count, 7)):
            info = tarfile.TarInfo(f"src/d{d}")
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o750, 1_500_000_000 + d
            archive.addfile(info)
        for i in range(count):
            info = tarfile.TarInfo(f"src/d{i % 7}/f{i}.bin")
            data = os.urandom(i * 37 % 5000)
            info.size, info.mode, info.mtime = (
                len(data),
                (0o640, 0o755, 0o664, 0o4755)[i % 4],
                1_600_000_000 + i,
            )
            archive.addfile(info, io.BytesIO(data))
    buf.seek(0)
    ctx = open_context(buf, tmp_path / "work", dockerfile_text="FROM x\n")
    try:
        found = expand_names(ctx.index, ["src"], None)
        assert found is not None and ctx.tar_path is not None
        direct, walked = tmp_path / "direct", tmp_path / "walked"
        direct.mkdir()
        walked.mkdir()
        assert copy_from_tar(ctx.tar_path, ctx.index, found, direct, "/app/",
                             owner=None, chmod=None, exclude=None)  # fmt: skip
        copy_sources(walked, find_sources(ctx.root, ["src"]), "/app/", owner=None, chmod=None,
                     unpack_archives=False)  # fmt: skip

        def tree(root: Path) -> list[tuple[str, int, int, bytes]]:
            return sorted(
                (str(p.relative_to(root)), p.stat().st_mode, int(p.stat().st_mtime),
                 p.read_bytes() if p.is_file() else b"")
                for p in root.rglob("*") if p.name != "app"  # made by the COPY: "now"
            )  # fmt: skip

        assert len(tree(direct)) == count + min(count, 7)
        assert tree(direct) == tree(walked)
    finally:
        ctx.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="mounting overlayfs needs root")
def test_copy_from_tar_into_the_overlay_upper_dir_matches_the_mounted_copy(tmp_path: Path) -> None:
    """With ``upper``/``detach`` the files of new directories are written into the upper
    dir after the unmount; remounted, the tree is what writing through the mount gives,
    over a lower layer that already has the destination and a file the COPY replaces."""
    import subprocess

    from hafen.build.copy import copy_from_tar, expand_names

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in [("src/top.txt", b"new top")] + [
            (f"src/d{i % 5}/f{i}.bin", os.urandom(i * 53 % 3000)) for i in range(150)
        ]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_650_000_000
            archive.addfile(info, io.BytesIO(data))
    buf.seek(0)
    ctx = open_context(buf, tmp_path / "work", dockerfile_text="FROM x\n")
    trees = []
    try:
        found = expand_names(ctx.index, ["src"], None)
        assert found is not None and ctx.tar_path is not None
        for direct in (False, True):
            base = tmp_path / ("direct" if direct else "mounted")
            for d in ("lower/app", "upper", "work", "merged"):
                (base / d).mkdir(parents=True)
            (base / "lower/app/top.txt").write_text("old top")
            (base / "lower/app/keep").write_text("kept")
            opts = f"lowerdir={base}/lower,upperdir={base}/upper,workdir={base}/work"
            mount = ["mount", "-t", "overlay", "overlay", "-o", opts, str(base / "merged")]
            subprocess.run(mount, check=True)
            mounted = [True]

            def detach(base: Path = base, mounted: list[bool] = mounted) -> None:
                if mounted[0]:
                    subprocess.run(["umount", str(base / "merged")], check=True)
                    mounted[0] = False

            try:
                assert copy_from_tar(ctx.tar_path, ctx.index, found, base / "merged", "/app/",
                                     owner=None, chmod=None, exclude=None,
                                     upper=base / "upper" if direct else None,
                                     detach=detach if direct else None)  # fmt: skip
                assert mounted[0] is not direct  # the direct copy finished unmounted
            finally:
                detach()
            subprocess.run(mount, check=True)
            try:
                merged = base / "merged"
                trees.append(sorted(
                    (str(p.relative_to(merged)), p.stat().st_mode, int(p.stat().st_mtime),
                     p.read_bytes() if p.is_file() else b"")
                    for p in merged.rglob("*") if p.name != "app"
                ))  # fmt: skip
            finally:
                subprocess.run(["umount", str(base / "merged")], check=True)
    finally:
        ctx.close()
    assert trees[0] == trees[1]
    assert len(trees[0]) == 2 + 5 + 150 and (b"new top" in [t[3] for t in trees[0]])
