"""Layer tars: unpacked with every path treated as hostile; made deterministically."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import io
import os
import stat
import tarfile
from pathlib import Path

import pytest

from hafen.errors import InvalidArgument, UnsafePath
from hafen.store.archive import open_layer_stream, tar_directory, unpack_layer

MTIME = 1_600_000_000


def _entry(
    name: str,
    kind: bytes = tarfile.REGTYPE,
    data: bytes = b"",
    *,
    mode: int = 0o644,
    linkname: str = "",
    mtime: int = MTIME,
    devmajor: int = 0,
    devminor: int = 0,
) -> tuple[tarfile.TarInfo, bytes]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.mtime = mtime
    info.linkname = linkname
    info.devmajor, info.devminor = devmajor, devminor
    info.size = len(data) if kind == tarfile.REGTYPE else 0
    return info, data


def _dir(name: str, mode: int = 0o755) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, tarfile.DIRTYPE, mode=mode)


def _file(name: str, data: bytes = b"", mode: int = 0o644) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, tarfile.REGTYPE, data, mode=mode)


def _symlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, tarfile.SYMTYPE, mode=0o777, linkname=target)


def _hardlink(name: str, target: str) -> tuple[tarfile.TarInfo, bytes]:
    return _entry(name, tarfile.LNKTYPE, mode=0o777, linkname=target)


def _tar(*entries: tuple[tarfile.TarInfo, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for info, data in entries:
            archive.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def _unpack(data: bytes, dest: Path, **kwargs: object) -> str:
    return unpack_layer(io.BytesIO(data), dest, **kwargs).diff_id  # type: ignore[arg-type]


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


@pytest.fixture
def sandbox(tmp_path: Path) -> tuple[Path, Path]:
    """A destination next to an 'outside' directory that hostile entries aim at."""
    dest = tmp_path / "sandbox" / "dest"
    outside = tmp_path / "sandbox" / "outside"
    outside.mkdir(parents=True)
    (outside / "keep").write_text("host file")
    (outside / "keep").chmod(0o600)
    return dest, outside


def _outside_untouched(outside: Path) -> None:
    assert sorted(os.listdir(outside)) == ["keep"]
    assert (outside / "keep").read_text() == "host file"
    assert stat.S_IMODE(os.stat(outside / "keep").st_mode) == 0o600


# --- plain unpacking ---------------------------------------------------------------


def test_files_dirs_symlinks_and_hardlinks_are_unpacked(tmp_path: Path) -> None:
    data = _tar(
        _dir("etc", 0o750),
        _file("etc/hostname", b"box\n", 0o600),
        _file("bin/tool", b"#!/bin/sh\n", 0o755),  # parent dir absent from the tar
        _symlink("etc/link", "hostname"),
        _hardlink("etc/hard", "etc/hostname"),
    )
    dest = tmp_path / "dest"
    _unpack(data, dest)
    assert _tree(dest) == {"etc", "etc/hostname", "bin", "bin/tool", "etc/link", "etc/hard"}
    assert (dest / "etc/hostname").read_bytes() == b"box\n"
    assert os.readlink(dest / "etc/link") == "hostname"
    assert os.stat(dest / "etc/hard").st_ino == os.stat(dest / "etc/hostname").st_ino
    assert (dest / "bin/tool").read_bytes() == b"#!/bin/sh\n"


def test_mode_and_mtime_are_preserved(tmp_path: Path) -> None:
    data = _tar(
        _dir("d", 0o711),
        _file("d/secret", b"s", 0o600),
        _file("d/setuid", b"x", 0o4755),
        _symlink("d/sym", "secret"),
    )
    dest = tmp_path / "dest"
    _unpack(data, dest)
    assert stat.S_IMODE(os.stat(dest / "d").st_mode) == 0o711
    assert stat.S_IMODE(os.stat(dest / "d/secret").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest / "d/setuid").st_mode) == 0o4755
    for rel in ("d", "d/secret", "d/setuid"):
        assert os.stat(dest / rel).st_mtime == MTIME, rel
    assert os.lstat(dest / "d/sym").st_mtime == MTIME


def test_diff_id_is_the_sha256_of_the_uncompressed_tar(tmp_path: Path) -> None:
    data = _tar(_file("a", b"hello"), _dir("b"))
    stats = unpack_layer(io.BytesIO(data), tmp_path / "dest")
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()
    assert stats.size == len(data)


def test_later_entries_replace_earlier_ones(tmp_path: Path) -> None:
    data = _tar(
        _symlink("x", "/etc"),
        _dir("x"),  # a directory replaces the symlink instead of following it
        _file("x/inside", b"1"),
        _file("y", b"old"),
        _file("y", b"new"),
    )
    dest = tmp_path / "dest"
    _unpack(data, dest)
    assert (dest / "x").is_dir() and not (dest / "x").is_symlink()
    assert (dest / "x/inside").read_bytes() == b"1"
    assert (dest / "y").read_bytes() == b"new"


# --- compression ---------------------------------------------------------------------


def test_plain_tar_passes_through_open_layer_stream(tmp_path: Path) -> None:
    data = _tar(_file("plain", b"p"))
    stream = open_layer_stream(io.BytesIO(data))
    stats = unpack_layer(stream, tmp_path / "dest")
    assert (tmp_path / "dest/plain").read_bytes() == b"p"
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


def test_gzip_layer_is_decompressed_and_diff_id_covers_the_uncompressed_tar(
    tmp_path: Path,
) -> None:
    data = _tar(_file("zipped", b"z" * 10_000))
    stream = open_layer_stream(io.BytesIO(gzip.compress(data)))
    stats = unpack_layer(stream, tmp_path / "dest")
    assert (tmp_path / "dest/zipped").read_bytes() == b"z" * 10_000
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


HAVE_ZSTANDARD = importlib.util.find_spec("zstandard") is not None


@pytest.mark.skipif(
    not HAVE_ZSTANDARD, reason="open_layer_stream uses the 'zstandard' module: not installed"
)
def test_zstd_layer_is_decompressed(tmp_path: Path) -> None:
    import zstandard

    data = _tar(_file("zst", b"compressed"))
    stream = open_layer_stream(io.BytesIO(zstandard.ZstdCompressor().compress(data)))
    stats = unpack_layer(stream, tmp_path / "dest")
    assert (tmp_path / "dest/zst").read_bytes() == b"compressed"
    assert stats.diff_id == "sha256:" + hashlib.sha256(data).hexdigest()


@pytest.mark.skipif(HAVE_ZSTANDARD, reason="only without the zstandard module")
def test_zstd_layer_without_zstandard_is_refused_with_a_message() -> None:
    with pytest.raises(InvalidArgument, match="zstandard"):
        open_layer_stream(io.BytesIO(b"\x28\xb5\x2f\xfd" + b"\0" * 32))


# --- malformed archives ----------------------------------------------------------------


def test_garbage_is_an_invalid_archive(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="invalid layer archive"):
        _unpack(b"this is not a tar file at all" * 40, tmp_path / "dest")


def test_a_tar_truncated_mid_file_is_an_invalid_archive(tmp_path: Path) -> None:
    data = _tar(_file("big", os.urandom(64 * 1024)))
    with pytest.raises(InvalidArgument, match="invalid layer archive"):
        _unpack(data[: 512 + 10_000], tmp_path / "dest")


def test_a_truncated_gzip_stream_is_an_invalid_archive(tmp_path: Path) -> None:
    blob = gzip.compress(_tar(_file("big", os.urandom(64 * 1024))))
    stream = open_layer_stream(io.BytesIO(blob[: len(blob) // 2]))
    with pytest.raises(InvalidArgument, match="invalid layer archive"):
        unpack_layer(stream, tmp_path / "dest")


# --- hostile paths -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["../evil", "a/../../evil", "./../outside/evil"])
def test_dotdot_escapes_are_refused(sandbox: tuple[Path, Path], name: str) -> None:
    dest, outside = sandbox
    with pytest.raises(UnsafePath, match="escapes"):
        _unpack(_tar(_file(name, b"pwned")), dest)
    _outside_untouched(outside)
    assert not (dest.parent / "evil").exists()


def test_absolute_paths_land_inside_dest(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    _unpack(_tar(_file(f"{outside}/abs", b"in"), _file("/abs/path", b"in")), dest)
    assert (dest / "abs/path").read_bytes() == b"in"
    assert (dest / str(outside).lstrip("/") / "abs").read_bytes() == b"in"
    _outside_untouched(outside)


@pytest.mark.parametrize("target", ["/", "../..", "../../..", "OUTSIDE"])
@pytest.mark.parametrize("tail", ["evil", "new/deep/evil"])
def test_files_written_through_a_symlink_stay_inside_dest(
    sandbox: tuple[Path, Path], target: str, tail: str
) -> None:
    # Each entry is aimed so that, were the symlink followed on the host, it would land
    # in `outside` (a temp dir), never in the real root.
    dest, outside = sandbox
    tmp = outside.parent.parent
    if target == "OUTSIDE":
        target, via = str(outside), ""
    else:
        host = {"/": Path("/"), "../..": tmp, "../../..": tmp.parent}[target]
        via = str(outside.relative_to(host)) + "/"
    _unpack(_tar(_symlink("link", target), _file(f"link/{via}{tail}", b"pwned")), dest)
    _outside_untouched(outside)
    if target.startswith("/"):  # an absolute target is resolved from dest's own root
        expected = dest / target.lstrip("/") / via / tail
    else:  # `..` is clamped at dest
        expected = dest / via / tail
    assert expected.read_bytes() == b"pwned"
    assert os.path.islink(dest / "link")


def test_a_directory_replaced_by_a_symlink_is_not_written_through_later(
    sandbox: tuple[Path, Path],
) -> None:
    # `a/` is made (and remembered as a parent) for `a/x`; then `a` becomes a symlink
    # aimed outside: a later `a/y` must resolve anew, inside dest, never outside.
    dest, outside = sandbox
    _unpack(_tar(_file("a/x", b"1"), _symlink("a", str(outside)), _file("a/y", b"pwned")), dest)
    _outside_untouched(outside)
    assert os.path.islink(dest / "a")
    assert (dest / str(outside).lstrip("/") / "y").read_bytes() == b"pwned"


def test_a_large_file_is_written_whole_between_small_ones(tmp_path: Path) -> None:
    big = os.urandom(3 * 1024 * 1024 + 17)  # spans several reader slices
    dest = tmp_path / "dest"
    _unpack(_tar(_file("s1", b"a"), _file("d/big", big), _file("d/s2", b"b" * 513)), dest)
    assert (dest / "d" / "big").read_bytes() == big
    assert (dest / "s1").read_bytes() == b"a"
    assert (dest / "d" / "s2").read_bytes() == b"b" * 513


def test_a_symlink_to_root_as_the_direct_parent_stays_inside_dest(
    sandbox: tuple[Path, Path],
) -> None:
    # `root -> /`, `link -> root<outside>`, then `link/evil`: followed on the host, the
    # last component of the parent would lead into `outside` (a temp dir).
    dest, outside = sandbox
    _unpack(
        _tar(
            _symlink("root", "/"),
            _symlink("link", f"root{outside}"),
            _file("link/evil", b"pwned"),
            _file("link/.wh.keep"),
        ),
        dest,
        whiteouts="vfs",
    )
    _outside_untouched(outside)
    assert (dest / str(outside).lstrip("/") / "evil").read_bytes() == b"pwned"


def test_symlink_chains_stay_inside_dest(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    _unpack(
        _tar(
            _symlink("a", "b"),
            _symlink("b", "../../.."),
            _dir("real"),
            _symlink("real/up", "../a"),
            _file("real/up/x", b"pwned"),
        ),
        dest,
    )
    _outside_untouched(outside)
    assert (dest / "x").read_bytes() == b"pwned"


def test_a_symlink_loop_is_refused(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    with pytest.raises(UnsafePath, match="symbolic links"):
        _unpack(_tar(_symlink("a", "b"), _symlink("b", "a"), _file("a/x", b"x")), dest)
    _outside_untouched(outside)


def test_whiteouts_through_a_symlink_do_not_delete_host_files(
    sandbox: tuple[Path, Path],
) -> None:
    dest, outside = sandbox
    for mode in ("vfs", "overlay"):
        _unpack(_tar(_symlink("link", str(outside)), _file("link/.wh.keep")), dest, whiteouts=mode)
        _outside_untouched(outside)


def test_an_opaque_dir_through_a_symlink_does_not_empty_host_dirs(
    sandbox: tuple[Path, Path],
) -> None:
    dest, outside = sandbox
    _unpack(_tar(_symlink("link", str(outside)), _file("link/.wh..wh..opq")), dest, whiteouts="vfs")
    _outside_untouched(outside)
    _unpack(_tar(_symlink("up", "../.."), _file("up/.wh..wh..opq")), dest, whiteouts="vfs")
    _outside_untouched(outside)


@pytest.mark.parametrize("name", [".wh..", "d/.wh..", ".wh.", "d/.wh.", "d/.wh.."])
def test_whiteouts_naming_a_parent_are_refused(sandbox: tuple[Path, Path], name: str) -> None:
    dest, outside = sandbox
    for mode in ("vfs", "overlay"):
        with pytest.raises(UnsafePath, match="whiteout"):
            _unpack(_tar(_dir("d"), _file("d/kept", b"k"), _file(name)), dest, whiteouts=mode)
        assert (dest / "d/kept").read_bytes() == b"k"
        _outside_untouched(outside)


@pytest.mark.parametrize("linkname", ["/etc/passwd", "../../etc/passwd", "OUTSIDE"])
def test_hardlinks_to_files_outside_are_refused(sandbox: tuple[Path, Path], linkname: str) -> None:
    dest, outside = sandbox
    linkname = str(outside / "keep") if linkname == "OUTSIDE" else linkname
    with pytest.raises(UnsafePath):
        _unpack(_tar(_hardlink("stolen", linkname)), dest)
    assert not os.path.lexists(dest / "stolen")
    _outside_untouched(outside)


def test_hardlinks_through_a_symlink_are_confined(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    _unpack(
        _tar(
            _file("keep", b"layer's own"),
            _symlink("host", "../.."),
            _hardlink("stolen", "host/keep"),
        ),
        dest,
    )
    assert os.stat(dest / "stolen").st_ino == os.stat(dest / "keep").st_ino
    assert os.stat(dest / "stolen").st_ino != os.stat(outside / "keep").st_ino
    _outside_untouched(outside)


def test_a_hardlink_to_a_symlink_links_the_symlink_itself(sandbox: tuple[Path, Path]) -> None:
    dest, outside = sandbox
    _unpack(
        _tar(
            _symlink("to-host", str(outside / "keep")),
            _symlink("dangling", "/does/not/exist"),
            _hardlink("h1", "to-host"),
            _hardlink("h2", "dangling"),
        ),
        dest,
    )
    assert os.lstat(dest / "h1").st_ino == os.lstat(dest / "to-host").st_ino
    assert os.path.islink(dest / "h1") and os.path.islink(dest / "h2")
    assert os.readlink(dest / "h2") == "/does/not/exist"
    _outside_untouched(outside)


def test_a_hardlink_to_a_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(UnsafePath):
        _unpack(_tar(_dir("d"), _hardlink("h", "d")), tmp_path / "dest")


def test_a_regular_file_replaces_a_symlink_instead_of_writing_through_it(
    sandbox: tuple[Path, Path],
) -> None:
    dest, outside = sandbox
    _unpack(_tar(_symlink("f", str(outside / "keep")), _file("f", b"replaced")), dest)
    assert not os.path.islink(dest / "f")
    assert (dest / "f").read_bytes() == b"replaced"
    _outside_untouched(outside)


def test_device_nodes_are_skipped_unless_allowed(tmp_path: Path) -> None:
    data = _tar(
        _entry("dev/null", tarfile.CHRTYPE, mode=0o666, devmajor=1, devminor=3),
        _entry("dev/sda", tarfile.BLKTYPE, mode=0o660, devmajor=8, devminor=0),
        _entry("dev/fifo", tarfile.FIFOTYPE, mode=0o600),
    )
    plain = tmp_path / "plain"
    _unpack(data, plain)
    assert not os.path.lexists(plain / "dev/null")
    assert not os.path.lexists(plain / "dev/sda")
    assert stat.S_ISFIFO(os.lstat(plain / "dev/fifo").st_mode)

    privileged = tmp_path / "privileged"
    _unpack(data, privileged, allow_devices=True)
    null = os.lstat(privileged / "dev/null")
    assert stat.S_ISCHR(null.st_mode) and os.major(null.st_rdev) == 1
    assert os.minor(null.st_rdev) == 3 and stat.S_IMODE(null.st_mode) == 0o666
    assert stat.S_ISBLK(os.lstat(privileged / "dev/sda").st_mode)


# --- whiteouts ---------------------------------------------------------------------


def _lower(dest: Path) -> None:
    _unpack(_tar(_dir("etc"), _file("etc/a", b"a"), _file("etc/b", b"b"), _dir("etc/sub")), dest)


def test_a_whiteout_removes_the_entry_in_vfs_mode(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    _lower(dest)
    _unpack(_tar(_file("etc/.wh.a"), _file("etc/.wh.sub")), dest, whiteouts="vfs")
    assert _tree(dest) == {"etc", "etc/b"}


def test_a_whiteout_becomes_a_0_0_char_device_in_overlay_mode(tmp_path: Path) -> None:
    dest = tmp_path / "diff"
    _unpack(_tar(_file("etc/.wh.a"), _file(".wh.gone")), dest, whiteouts="overlay")
    for rel in ("etc/a", "gone"):
        st = os.lstat(dest / rel)
        assert stat.S_ISCHR(st.st_mode), rel
        assert st.st_rdev == os.makedev(0, 0)
    assert not os.path.lexists(dest / "etc/.wh.a")


def test_opaque_marker_sets_the_overlay_xattr(tmp_path: Path) -> None:
    dest = tmp_path / "diff"
    _unpack(_tar(_dir("etc"), _file("etc/.wh..wh..opq"), _file("etc/new", b"n")), dest)
    assert os.getxattr(dest / "etc", "trusted.overlay.opaque") == b"y"
    assert _tree(dest) == {"etc", "etc/new"}


def test_opaque_marker_hides_lower_content_in_vfs_mode(tmp_path: Path) -> None:
    dest = tmp_path / "dest"
    _lower(dest)
    _file_after = _file("etc/new", b"n")
    _unpack(
        _tar(_file("etc/kept-before", b"k"), _file("etc/.wh..wh..opq"), _file_after),
        dest,
        whiteouts="vfs",
    )
    assert _tree(dest) == {"etc", "etc/kept-before", "etc/new"}


# --- tar_directory -------------------------------------------------------------------


def _sample_tree(root: Path) -> None:
    (root / "b/dir").mkdir(parents=True)
    (root / "a.txt").write_bytes(b"alpha")
    (root / "b/dir/c.bin").write_bytes(os.urandom(3000))
    (root / "b/dir/c.bin").chmod(0o640)
    (root / "link").symlink_to("a.txt")
    os.link(root / "a.txt", root / "b/hard")
    (root / "skip.log").write_text("excluded")


def test_tar_directory_is_deterministic_with_fixed_mtime_and_owner(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _sample_tree(src)
    first, second = io.BytesIO(), io.BytesIO()
    s1 = tar_directory(src, first, mtime=0, owner=(0, 0))
    os.utime(src / "a.txt", (12345, 12345))  # mtimes on disk do not matter any more
    s2 = tar_directory(src, second, mtime=0, owner=(0, 0))
    assert first.getvalue() == second.getvalue()
    assert s1 == s2
    assert s1.diff_id == "sha256:" + hashlib.sha256(first.getvalue()).hexdigest()
    assert s1.size == len(first.getvalue())
    with tarfile.open(fileobj=io.BytesIO(first.getvalue())) as archive:
        names = archive.getnames()
    assert names == sorted(names, key=lambda n: n.split("/"))


def test_tar_directory_round_trips_through_unpack_layer(tmp_path: Path) -> None:
    src = tmp_path / "src"
    src.mkdir()
    _sample_tree(src)
    out = io.BytesIO()
    made = tar_directory(src, out, mtime=MTIME, owner=(0, 0), exclude=lambda r: r.endswith(".log"))
    dest = tmp_path / "dest"
    unpacked = unpack_layer(io.BytesIO(out.getvalue()), dest)
    assert unpacked.diff_id == made.diff_id
    assert _tree(dest) == _tree(src) - {"skip.log"}
    assert (dest / "b/dir/c.bin").read_bytes() == (src / "b/dir/c.bin").read_bytes()
    assert stat.S_IMODE(os.stat(dest / "b/dir/c.bin").st_mode) == 0o640
    assert os.readlink(dest / "link") == "a.txt"
    assert os.stat(dest / "b/hard").st_ino == os.stat(dest / "a.txt").st_ino
    assert os.stat(dest / "b/dir").st_mtime == MTIME
