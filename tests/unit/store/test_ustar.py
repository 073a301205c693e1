"""store.ustar: hand-written tar headers read back by tarfile, and the incremental parser
agreeing with tarfile on archives tarfile writes (ustar, PAX, GNU), fed in any chunking."""

from __future__ import annotations

import hashlib
import io
import tarfile

import pytest

from hafen.errors import InvalidArgument
from hafen.store import ustar


def _members(data: bytes, chunk: int) -> list[tuple[str, bytes, int, int, str, int, str]]:
    """(name, kind, mode, size, linkname, mtime, data sha256) per member, as parsed."""
    out = []
    digests: dict[str, hashlib._Hash] = {}

    def on_member(m: ustar.Member) -> ustar.DataSink | None:
        out.append((m.name.rstrip("/"), m.kind, m.mode, m.size, m.linkname, m.mtime, 0))
        if m.is_reg:
            h = digests[m.name] = hashlib.sha256()
            return h.update
        return None

    parser = ustar.TarParser(on_member)
    for i in range(0, len(data), chunk):
        parser.feed(data[i : i + chunk])
    parser.close()
    return [(*m[:6], digests[m[0]].hexdigest() if m[1] == ustar.REGTYPE else "") for m in out]  # type: ignore[misc]


def _tarfile_view(data: bytes) -> list[tuple[str, bytes, int, int, str, int, str]]:
    out = []
    with tarfile.open(fileobj=io.BytesIO(data)) as archive:
        for m in archive:
            digest = ""
            kind = m.type if m.type not in (tarfile.AREGTYPE, tarfile.CONTTYPE) else b"0"
            if m.isreg():
                f = archive.extractfile(m)
                assert f is not None
                digest = hashlib.sha256(f.read()).hexdigest()
            out.append((m.name, kind, m.mode, m.size if m.isreg() else 0, m.linkname,
                        int(m.mtime), digest))  # fmt: skip
    return out


def _sample(fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as archive:
        for name, data in [("a.txt", b"hello"), ("d/" + "long" * 40 + ".bin", b"x" * 5000),
                           ("empty", b""), ("ünï", b"utf")]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o640, 1_700_000_000
            archive.addfile(info, io.BytesIO(data))
        d = tarfile.TarInfo("d")
        d.type, d.mode = tarfile.DIRTYPE, 0o755
        archive.addfile(d)
        s = tarfile.TarInfo("link")
        s.type, s.linkname = tarfile.SYMTYPE, "a.txt"
        archive.addfile(s)
        h = tarfile.TarInfo("hard")
        h.type, h.linkname = tarfile.LNKTYPE, "a.txt"
        archive.addfile(h)
    return buf.getvalue()


@pytest.mark.parametrize("fmt", [tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])
@pytest.mark.parametrize("chunk", [1, 511, 512, 4096, 1 << 20])
def test_parser_agrees_with_tarfile_in_any_chunking(fmt: int, chunk: int) -> None:
    data = _sample(fmt)
    parsed = _members(data, chunk)
    if fmt == tarfile.GNU_FORMAT and chunk == 1:
        assert parsed == _members(data, 1 << 20)
    assert [p[:3] + p[4:] for p in parsed] == [t[:3] + t[4:] for t in _tarfile_view(data)]


def test_offsets_point_at_the_data() -> None:
    data = _sample(tarfile.PAX_FORMAT)
    found: dict[str, tuple[int, int]] = {}
    parser = ustar.TarParser(lambda m: found.setdefault(m.name, (m.offset_data, m.size)) and None)
    parser.feed(data)
    offset, size = found["a.txt"]
    assert data[offset : offset + size] == b"hello"


def test_written_headers_read_back_by_tarfile() -> None:
    long_name = "dir/" + "n" * 150
    body = (
        ustar.header("f", mode=0o755, size=3, mtime=12345) + b"abc" + ustar.padding(3)
        + ustar.header(long_name, mode=0o600, size=1) + b"z" + ustar.padding(1)
        + ustar.header("dir/", mode=0o700, kind=ustar.DIRTYPE)
        + ustar.header("s", mode=0o777, kind=ustar.SYMTYPE, linkname="t" * 120)
        + ustar.header("h", mode=0o644, kind=ustar.LNKTYPE, linkname="f")
        + ustar.header("big", mode=0o644, size=0, uid=1 << 30)
        + ustar.END
    )  # fmt: skip
    with tarfile.open(fileobj=io.BytesIO(body)) as archive:
        members = archive.getmembers()
        assert [m.name for m in members] == ["f", long_name, "dir", "s", "h", "big"]
        f = archive.extractfile(members[0])
        assert f is not None and f.read() == b"abc"
        assert (members[0].mode, members[0].mtime, members[0].uid) == (0o755, 12345, 0)
        assert members[2].isdir() and members[3].linkname == "t" * 120
        assert members[4].islnk() and members[5].uid == 1 << 30
    assert [m[0] for m in _members(body, 7)] == ["f", long_name, "dir", "s", "h", "big"]


def test_bad_input_is_refused() -> None:
    block = bytearray(ustar.header("f", mode=0o644, size=10))
    block[0] = ord("g")  # checksum no longer matches
    with pytest.raises(InvalidArgument, match="checksum"):
        ustar.TarParser(lambda m: None).feed(bytes(block))
    parser = ustar.TarParser(lambda m: None)
    parser.feed(ustar.header("f", mode=0o644, size=10) + b"short")
    with pytest.raises(InvalidArgument, match="unexpected end"):
        parser.close()
    # a missing end-of-archive (and the last padding) is fine: the docker CLI sends that
    parser = ustar.TarParser(lambda m: None)
    parser.feed(ustar.header("f", mode=0o644, size=10) + b"0123456789")
    parser.close()


@pytest.mark.parametrize(
    ("name", "mode", "size", "mtime", "kind", "link", "uid", "gid"),
    [
        ("f", 0o644, 10, 1_700_000_000, ustar.REGTYPE, "", 0, 0),
        ("d/", 0o755, 0, 5, ustar.DIRTYPE, "", 1000, 1000),
        ("s", 0o777, 0, 1, ustar.SYMTYPE, "target/x", 0, 0),
        ("n" * 100, 0o4755, 8**11 - 1, 8**11 - 1, ustar.REGTYPE, "", 8**7 - 1, 8**7 - 1),
        ("h", 0o600, 0, 0, ustar.LNKTYPE, "l" * 100, 0, 0),
    ],
)
def test_fast_header_is_the_plain_ustar_header(
    name: str, mode: int, size: int, mtime: int, kind: bytes, link: str, uid: int, gid: int
) -> None:
    fast = ustar.header(name, mode=mode, size=size, mtime=mtime, kind=kind, linkname=link,
                        uid=uid, gid=gid)  # fmt: skip
    assert fast == ustar._ustar(name.encode(), mode, uid, gid, size, mtime, kind, link.encode())
