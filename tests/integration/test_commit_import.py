"""commit, diff and import over a real daemon: a container's changes become a layer
(whiteouts included), --change directives land in the config, a rootfs tarball
becomes a runnable image."""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from pathlib import Path

from tests.conftest import HAFEN, Hafend


def test_diff_and_commit_round_trip(hafend: Hafend) -> None:
    hafend.cli("run", "--name", "to-commit", "busybox", "sh", "-c",
               "echo hi > /hello; rm /bin/ls; mkdir /newdir; echo x >> /etc/passwd")  # fmt: skip
    try:
        diff = hafend.cli("diff", "to-commit").stdout.splitlines()
        assert diff == ["C /bin", "D /bin/ls", "C /etc", "C /etc/passwd", "A /hello", "A /newdir"]
        image_id = hafend.cli(
            "commit", "-c", 'CMD ["cat", "/hello"]', "-c", "ENV MODE=committed",
            "-c", "LABEL team=ship", "-m", "a message", "-a", "Ship <ship@hafen>",
            "to-commit", "committed:v1",
        ).stdout.strip()  # fmt: skip
        assert image_id.startswith("sha256:")
        assert hafend.cli("run", "--rm", "committed:v1").stdout == "hi\n"
        gone = hafend.cli("run", "--rm", "committed:v1", "ls", check=False)
        assert gone.returncode == 127  # the whiteout hides /bin/ls
        inspect = json.loads(hafend.cli("image", "inspect", "committed:v1").stdout)[0]
        assert inspect["Id"] == image_id
        assert inspect["Author"] == "Ship <ship@hafen>"
        assert inspect["Comment"] == "a message"
        assert "MODE=committed" in inspect["Config"]["Env"]
        assert inspect["Config"]["Labels"] == {"team": "ship"}
        base = json.loads(hafend.cli("image", "inspect", "busybox").stdout)[0]
        assert inspect["RootFS"]["Layers"][:-1] == base["RootFS"]["Layers"]
        history = hafend.cli("history", "--no-trunc", "committed:v1").stdout.splitlines()
        assert "a message" in history[1]
        bad = hafend.cli("commit", "-c", "RUN rm -rf /", "to-commit", "bad:v1", check=False)
        assert bad.returncode == 1 and "RUN is not a valid change command" in bad.stderr
    finally:
        hafend.cli("rm", "-f", "to-commit", check=False)
        hafend.cli("rmi", "committed:v1", check=False)


def test_import_a_rootfs_tarball_with_changes(hafend: Hafend, tmp_path: Path) -> None:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
        note = b"imported\n"
        info = tarfile.TarInfo("note.txt")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    archive = tmp_path / "rootfs.tar.gz"
    archive.write_bytes(raw.getvalue())
    image_id = hafend.cli(
        "import", "-c", 'ENTRYPOINT ["/bin/busybox"]', "-m", "from a tarball",
        str(archive), "imported:v1",
    ).stdout.strip()  # fmt: skip
    assert image_id.startswith("sha256:")
    try:
        out = hafend.cli("run", "--rm", "imported:v1", "cat", "/note.txt").stdout
        assert out == "imported\n"
        inspect = json.loads(hafend.cli("image", "inspect", "imported:v1").stdout)[0]
        assert inspect["Comment"] == "from a tarball"
        assert len(inspect["RootFS"]["Layers"]) == 1
        with open(archive, "rb") as f:  # from stdin too
            result = subprocess.run(
                [HAFEN, "-H", hafend.host, "import", "-", "imported:v2"], stdin=f,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
        assert result.returncode == 0, result.stderr
        garbage = tmp_path / "garbage.tar"
        garbage.write_bytes(b"\x1f\x8b not really gzip")
        bad = hafend.cli("import", str(garbage), "bad:v1", check=False)
        assert bad.returncode == 1
        assert "bad" not in hafend.cli("images").stdout.split()
    finally:
        hafend.cli("rmi", "imported:v1", "imported:v2", check=False)


def test_export_then_import_gives_the_same_files(hafend: Hafend, tmp_path: Path) -> None:
    hafend.cli("run", "--name", "to-export", "busybox", "sh", "-c",
               "echo exported > /out.txt; rm /bin/ls")  # fmt: skip
    try:
        archive = tmp_path / "fs.tar"
        hafend.cli("export", "-o", str(archive), "to-export")
        with tarfile.open(archive) as tar:
            names = set(tar.getnames())
            member = tar.extractfile("out.txt")
            assert member is not None and member.read() == b"exported\n"
        assert "bin/busybox" in names
        assert "bin/ls" not in names  # the whiteout applied, not exported
        assert not any(".wh." in n for n in names)
        hafend.cli("import", str(archive), "exported:v1")
        ran = hafend.cli("run", "--rm", "exported:v1", "/bin/busybox", "cat", "/out.txt")
        assert ran.stdout == "exported\n"
    finally:
        hafend.cli("rm", "-f", "to-export", check=False)
        hafend.cli("rmi", "exported:v1", check=False)


def test_commit_of_a_running_container_pauses_it_and_lets_it_go_on(hafend: Hafend) -> None:
    hafend.cli("run", "-d", "--name", "live-commit", "busybox", "sh", "-c",
               "echo live > /live; sleep 300")  # fmt: skip
    try:
        for _ in range(50):
            if hafend.cli("diff", "live-commit").stdout:
                break
        hafend.cli("commit", "live-commit", "livecommit:v1")
        state = json.loads(hafend.cli("inspect", "live-commit").stdout)[0]["State"]
        assert state["Status"] == "running" and not state["Paused"]
        out = hafend.cli("run", "--rm", "livecommit:v1", "cat", "/live").stdout
        assert out == "live\n"
    finally:
        hafend.cli("rm", "-f", "live-commit", check=False)
        hafend.cli("rmi", "livecommit:v1", check=False)


def test_import_from_a_url_downloads_the_tarball(hafend: Hafend, tmp_path: Path) -> None:
    import functools
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w:gz") as tar:
        tar.add("/bin/busybox", arcname="bin/busybox")
        note = b"from a url\n"
        info = tarfile.TarInfo("note.txt")
        info.size = len(note)
        tar.addfile(info, io.BytesIO(note))
    served = tmp_path / "www"
    served.mkdir()
    (served / "rootfs.tar.gz").write_bytes(raw.getvalue())

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=served))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        image_id = hafend.cli("import", f"{base}/rootfs.tar.gz", "fromurl:v1").stdout.strip()
        assert image_id.startswith("sha256:")
        out = hafend.cli("run", "--rm", "fromurl:v1", "/bin/busybox", "cat", "/note.txt").stdout
        assert out == "from a url\n"
        missing = hafend.cli("import", f"{base}/nothere.tar", "fromurl:v2", check=False)
        assert missing.returncode == 1 and "answered 404" in missing.stderr
        bad = hafend.cli("import", "ftp://127.0.0.1/x.tar", "fromurl:v3", check=False)
        assert bad.returncode == 1
        assert "fromurl" not in hafend.cli(
            "images", "--format", "{{.Repository}}:{{.Tag}}"
        ).stdout.replace("fromurl:v1", "")
    finally:
        server.shutdown()
        server.server_close()
        hafend.cli("rmi", "fromurl:v1", check=False)
