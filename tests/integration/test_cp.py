"""``cp`` and the archive API: both directions, stopped containers, mounts, hostile tars."""

from __future__ import annotations

import base64
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Hafend
from tests.integration.test_api import UnixHTTPConnection


@pytest.fixture
def box(hafend: Hafend) -> Iterator[str]:
    cid = hafend.cli("run", "-d", "busybox", "sleep", "300").stdout.strip()
    try:
        yield cid
    finally:
        hafend.cli("rm", "-f", cid, check=False)


def request(
    d: Hafend, method: str, path: str, body: bytes | None = None
) -> tuple[int, dict, bytes]:
    conn = UnixHTTPConnection(str(d.socket))
    try:
        conn.request(method, path, body=body)
        r = conn.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        conn.close()


def tar_of(entries: list[tuple[str, bytes | None, str]]) -> bytes:
    """(name, data or None for a dir, symlink target or "") → tar bytes."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data, link in entries:
            info = tarfile.TarInfo(name)
            if link:
                info.type, info.linkname = tarfile.SYMTYPE, link
                tar.addfile(info)
            elif data is None:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def test_cp_both_ways_with_hafen(hafend: Hafend, box: str, tmp_path: Path) -> None:
    src = tmp_path / "src"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "f.txt").write_text("hello\n")
    hafend.cli("cp", str(src), f"{box}:/tmp/copied")  # a new name: the dir is renamed
    hafend.cli("cp", str(src / "sub" / "f.txt"), f"{box}:/tmp/")  # into a dir: same name
    out = hafend.cli("exec", box, "sh", "-c", "cat /tmp/copied/sub/f.txt /tmp/f.txt").stdout
    assert out == "hello\nhello\n"
    back = tmp_path / "back"
    back.mkdir()
    hafend.cli("cp", f"{box}:/tmp/copied", str(back))
    assert (back / "copied" / "sub" / "f.txt").read_text() == "hello\n"
    hafend.cli("cp", f"{box}:/etc/hostname", str(back / "hn"))  # a file mounted over /etc
    assert (back / "hn").read_text() == box[:12] + "\n"


def test_cp_with_a_stopped_container(hafend: Hafend, tmp_path: Path) -> None:
    cid = hafend.cli("create", "busybox", "cat", "/data.txt").stdout.strip()
    try:
        (tmp_path / "data.txt").write_text("from the host\n")
        hafend.cli("cp", str(tmp_path / "data.txt"), f"{cid}:/")
        r = hafend.cli("start", "-a", cid)
        assert r.stdout == "from the host\n"
        hafend.cli("cp", f"{cid}:/data.txt", str(tmp_path / "again.txt"))
        assert (tmp_path / "again.txt").read_text() == "from the host\n"
    finally:
        hafend.cli("rm", "-f", cid)


def test_archive_api_stat_header_and_errors(hafend: Hafend, box: str) -> None:
    status, headers, _ = request(hafend, "HEAD", f"/containers/{box}/archive?path=/etc")
    assert status == 200
    stat = json.loads(base64.b64decode(headers["x-docker-container-path-stat"]))
    assert stat["name"] == "etc" and stat["mode"] & (1 << 31)
    status, _, body = request(hafend, "GET", f"/containers/{box}/archive?path=/nope")
    assert status == 404 and b"Could not find the file /nope" in body
    assert request(hafend, "GET", f"/containers/{box}/archive")[0] == 400
    status, _, body = request(hafend, "PUT", f"/containers/{box}/archive?path=/etc/passwd",
                              tar_of([("x", b"1", "")]))  # fmt: skip
    assert status == 400 and b"not a directory" in body
    status, _, body = request(hafend, "PUT", f"/containers/{box}/archive?path=/tmp", b"not a tar")
    assert status == 400


def test_put_archive_never_writes_outside_the_container(
    hafend: Hafend, box: str, tmp_path: Path
) -> None:
    target = tmp_path / "victim"
    target.mkdir()
    # a symlink to a host path, then a file through it; and a climbing name
    hostile = tar_of(
        [("esc", None, str(target)), ("esc/owned", b"pwned", ""), ("../../climb", b"x", "")]
    )
    status, _, _ = request(hafend, "PUT", f"/containers/{box}/archive?path=/tmp", hostile)
    assert status == 400  # the climbing entry is refused
    assert list(target.iterdir()) == []
    through_link = tar_of([("esc", None, str(target)), ("esc/owned", b"pwned", "")])
    status, _, _ = request(hafend, "PUT", f"/containers/{box}/archive?path=/tmp", through_link)
    assert status == 200
    assert list(target.iterdir()) == []  # the link resolved inside the container
    out = hafend.cli("exec", box, "cat", f"{target}/owned").stdout
    assert out == "pwned"
