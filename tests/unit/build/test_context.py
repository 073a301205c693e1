"""build.context: the context tar received in one pass (plain or compressed, in any
chunking), indexed with the digests a COPY cache key needs; bad archives refused with
nothing left behind."""

from __future__ import annotations

import bz2
import gzip
import hashlib
import io
import lzma
import stat
import tarfile
from pathlib import Path

import pytest

from hafen.build.context import ContextReceiver
from hafen.errors import InvalidArgument


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data in [("Dockerfile", b"FROM x\n"), ("src/a.py", b"print(1)\n" * 300)]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, 1_600_000_000
            archive.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("src/b.py")
        link.type, link.linkname = tarfile.LNKTYPE, "src/a.py"
        archive.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("compress", [None, gzip.compress, bz2.compress, lzma.compress])
@pytest.mark.parametrize("chunk", [3, 1 << 20])
def test_receiver_indexes_plain_and_compressed_streams(tmp_path: Path, compress, chunk) -> None:  # type: ignore[no-untyped-def]
    data = _tar()
    wire = compress(data) if compress else data
    receiver = ContextReceiver(tmp_path)
    for i in range(0, len(wire), chunk):
        receiver.feed(wire[i : i + chunk])
    ctx = receiver.finish()
    try:
        assert ctx.dockerfile == "FROM x\n"
        a = ctx.index["src/a.py"]
        assert a.digest == hashlib.sha256(b"print(1)\n" * 300).hexdigest()
        assert (a.kind, a.mode, a.mtime, a.size) == (stat.S_IFREG, 0o644, 1_600_000_000, 2700)
        assert ctx.index["src"].kind == stat.S_IFDIR  # the parent the tar left implicit
        assert ctx.index["src/b.py"].digest == a.digest  # a hard link has its target's content
        assert ctx.tar_path is not None and ctx.tar_path.read_bytes() == data  # spooled plain
        assert (ctx.root / "src/b.py").read_bytes() == b"print(1)\n" * 300
    finally:
        ctx.close()
    assert list(tmp_path.iterdir()) == []


def test_receiver_refuses_a_truncated_or_corrupt_stream(tmp_path: Path) -> None:
    data = _tar()
    receiver = ContextReceiver(tmp_path)
    receiver.feed(data[:1500])  # cut inside src/a.py's data
    with pytest.raises(InvalidArgument, match="unexpected end"):
        receiver.finish()
    receiver = ContextReceiver(tmp_path)
    receiver.feed(gzip.compress(data)[:-20])
    with pytest.raises(InvalidArgument, match="compressed data cut short"):
        receiver.finish()
    receiver = ContextReceiver(tmp_path)
    with pytest.raises(InvalidArgument, match="invalid build context archive: invalid tar archive"):
        receiver.feed(b"this is not a tar archive" * 30)
    receiver.abort()
    assert list(tmp_path.iterdir()) == []  # nothing left behind
