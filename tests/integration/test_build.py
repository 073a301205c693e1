"""``hafen build`` / ``hafen builder prune`` against a real hafend: flags, display, mounts, ADD,
parallel stages, and a cache that survives a daemon restart."""

from __future__ import annotations

import contextlib
import http.server
import io
import json
import os
import subprocess
import tarfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HAFEN, Hafend


@pytest.fixture(autouse=True, scope="module")
def _leave_only_busybox(hafend: Hafend) -> Iterator[None]:
    """The session daemon is shared: this module's images and build cache go at its end."""
    yield
    keep = hafend.cli("images", "-q", "--no-trunc", "busybox").stdout.split()
    ids = hafend.cli("images", "-a", "-q", "--no-trunc").stdout.split()
    for image_id in ids:
        if image_id not in keep:
            hafend.cli("rmi", "-f", image_id, check=False)
    hafend.cli("builder", "prune", "-f", check=False)


def ctx_dir(root: Path, dockerfile: str, files: dict[str, str | bytes] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, data in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data)
    return root


def run_in(d: Hafend, image: str, script: str) -> str:
    return d.cli("run", "--rm", image, "sh", "-c", script).stdout


def test_tags_iidfile_quiet_labels_and_plain_progress(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nRUN echo step-output\nLABEL from=file\n")
    iid = tmp_path / "iid"
    out = hafend.cli("build", "-t", "cli-a:1", "-t", "cli-b", "--label", "extra=yes",
                     "--progress", "plain", "--iidfile", str(iid), str(ctx)).stdout  # fmt: skip
    assert "Step 2/4 : RUN echo step-output" in out and "\nstep-output\n" in out
    assert "Step 4/4 : LABEL" in out and "Successfully tagged cli-b:latest" in out
    image_id = iid.read_text()
    assert image_id.startswith("sha256:")
    info = json.loads(hafend.cli("image", "inspect", "cli-a:1").stdout)[0]
    assert info["Id"] == image_id
    assert info["Config"]["Labels"] == {"from": "file", "extra": "yes"}
    assert json.loads(hafend.cli("image", "inspect", "cli-b").stdout)[0]["Id"] == image_id
    quiet = hafend.cli("build", "-q", str(ctx)).stdout
    assert quiet == image_id.replace("extra", "") + "\n" or quiet.startswith("sha256:")
    assert "Step" not in quiet


def test_tty_progress_folds_step_output(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(
        tmp_path / "c", "FROM busybox\nRUN for i in 1 2 3 4 5 6 7 8; do echo line$i; done\n"
    )
    out = hafend.cli("build", "--no-cache", "--progress", "tty", str(ctx)).stdout
    assert "\x1b[2m  line8\x1b[0m" in out  # output shown dimmed in the window
    assert "\x1b[J" in out  # and cleared when the step is done
    assert out.rstrip().splitlines()[-1].startswith("Successfully built")


def test_failing_run_exit_code_output_and_nothing_tagged(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nRUN echo failing-now >&2; exit 5\n")
    result = hafend.cli("build", "-t", "never:tagged", "--progress", "plain", str(ctx), check=False)
    assert result.returncode == 5
    assert "failing-now" in result.stdout
    assert "The command '/bin/sh -c echo failing-now >&2; exit 5' returned a non-zero code: 5" in (
        result.stderr
    )
    assert hafend.cli("image", "inspect", "never:tagged", check=False).returncode != 0


def test_dockerfile_from_stdin_and_context_tar_from_stdin(hafend: Hafend, tmp_path: Path) -> None:
    out = hafend.cli("build", "-q", "-", input="FROM busybox\nENV FROM_STDIN=1\n").stdout.strip()
    info = json.loads(hafend.cli("image", "inspect", out).stdout)[0]
    assert "FROM_STDIN=1" in info["Config"]["Env"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        for name, data in (("Dockerfile", b"FROM busybox\nCOPY f /f\n"), ("f", b"tarred")):
            entry = tarfile.TarInfo(name)
            entry.size = len(data)
            archive.addfile(entry, io.BytesIO(data))
    image = hafend.cli("build", "-q", "-", input=buf.getvalue()).stdout.strip()
    assert run_in(hafend, image, "cat /f") == "tarred"


def test_run_mounts_cache_bind_tmpfs(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(
        tmp_path / "c",
        """FROM busybox
RUN --mount=type=cache,target=/cache echo x >> /cache/count && wc -l < /cache/count > /seen
RUN --mount=type=bind,source=data,target=/mnt/data cat /mnt/data/file > /from-bind
RUN --mount=type=tmpfs,target=/scratch,size=1m echo gone > /scratch/file && ls /scratch > /tmpfs-ls && awk '$2 == "/scratch" {print $3}' /proc/mounts > /tmpfs-type && df -k /scratch | awk 'NR == 2 {print $2}' > /tmpfs-kb
""",
        {"data/file": "bound"},
    )
    image = hafend.cli("build", "-q", "--no-cache", str(ctx)).stdout.strip()
    first = run_in(hafend, image, "cat /seen")
    again = hafend.cli("build", "-q", "--no-cache", str(ctx)).stdout.strip()
    assert int(run_in(hafend, again, "cat /seen")) == int(first) + 1  # the cache dir persisted
    # the mount points the runtime created are not part of the image
    script = "cat /from-bind; cat /tmpfs-ls; test -e /scratch || echo no-scratch; ls -A /mnt || :"
    assert run_in(hafend, again, script) == "boundfile\nno-scratch\n"
    # the tmpfs mount is a real tmpfs of the asked size, never on the build's disk
    assert run_in(hafend, again, "cat /tmpfs-type /tmpfs-kb") == "tmpfs\n1024\n"


def test_independent_stages_run_in_parallel(hafend: Hafend, tmp_path: Path) -> None:
    # each stage waits (bounded) for the other's marker in a shared cache mount: built one
    # after the other, the first would give up and fail
    wait = ("touch /sync/{me}; i=0; while [ ! -e /sync/{other} ] && [ $i -lt 100 ]; do sleep 0.1; "
            "i=$((i+1)); done; test -e /sync/{other}")  # fmt: skip
    ctx = ctx_dir(
        tmp_path / "c",
        f"""FROM busybox AS a
RUN --mount=type=cache,id=parallel-{tmp_path.name},target=/sync {wait.format(me="a", other="b")}
FROM busybox AS b
RUN --mount=type=cache,id=parallel-{tmp_path.name},target=/sync {wait.format(me="b", other="a")}
FROM busybox
COPY --from=a /bin/true /a
COPY --from=b /bin/true /b
""",
    )
    hafend.cli("build", "--no-cache", str(ctx), timeout=120)


@contextlib.contextmanager
def http_server(root: Path) -> Iterator[str]:
    handler = lambda *a: http.server.SimpleHTTPRequestHandler(*a, directory=str(root))  # noqa: E731
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def test_add_url_and_local_tar_extraction(hafend: Hafend, tmp_path: Path) -> None:
    served = tmp_path / "served"
    served.mkdir()
    (served / "remote.txt").write_text("over http")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as archive:
        entry = tarfile.TarInfo("inside/packed.txt")
        entry.size = 6
        archive.addfile(entry, io.BytesIO(b"packed"))
    with http_server(served) as url:
        ctx = ctx_dir(
            tmp_path / "c",
            f"FROM busybox\nADD {url}/remote.txt /downloads/\nADD bundle.tar.gz /unpacked/\n"
            "COPY bundle.tar.gz /not-unpacked/\n",
            {"bundle.tar.gz": buf.getvalue()},
        )
        image = hafend.cli("build", "-q", str(ctx)).stdout.strip()
    out = run_in(hafend, image, "cat /downloads/remote.txt; echo; stat -c %a /downloads/remote.txt; "
                 "cat /unpacked/inside/packed.txt; echo; ls /not-unpacked")  # fmt: skip
    assert out == "over http\n600\npacked\nbundle.tar.gz\n"


def test_builder_prune_drops_the_cache(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", f"FROM busybox\nRUN echo {tmp_path.name} > /f\n")
    hafend.cli("build", "-t", "prune-me", str(ctx))
    assert "Using cache" in hafend.cli("build", str(ctx)).stdout
    out = hafend.cli("builder", "prune", "-f").stdout
    assert "Total reclaimed space:" in out
    assert "Using cache" not in hafend.cli("build", str(ctx)).stdout
    assert run_in(hafend, "prune-me", "cat /f") == tmp_path.name + "\n"  # tagged image intact


def test_cache_survives_a_daemon_restart(fresh_hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nCOPY f /f\nRUN cat /f > /g\n", {"f": "v1"})
    first = fresh_hafend.cli("build", "-q", str(ctx)).stdout.strip()
    fresh_hafend.kill()
    fresh_hafend.start()
    out = fresh_hafend.cli("build", "--progress", "plain", str(ctx)).stdout
    assert out.count("Using cache") == 2
    assert f"Successfully built {first.removeprefix('sha256:')[:12]}" in out


@pytest.mark.parametrize(
    ("dockerfile", "message"),
    [
        ("FROM busybox\nFROBNICATE x\n", "Dockerfile:2: unknown instruction: FROBNICATE"),
        ("FROM busybox\nCOPY --from=nowhere /x /y\n", "nowhere"),
        ("RUN echo\n", "Dockerfile:1: RUN before the first FROM"),
        ("FROM busybox\nSHELL /bin/bash -c\n", "SHELL requires the arguments to be in JSON form"),
        ("FROM busybox\nCOPY --bogus=1 a b\n", "unknown flag: --bogus"),
    ],
)
def test_bad_dockerfiles_are_refused_with_their_line(
    hafend: Hafend, tmp_path: Path, dockerfile: str, message: str
) -> None:
    ctx = ctx_dir(tmp_path / "c", dockerfile)
    result = hafend.cli("build", str(ctx), check=False)
    assert result.returncode != 0
    assert message in result.stderr


def test_copy_exclude_and_add_checksum(hafend: Hafend, tmp_path: Path) -> None:
    import hashlib

    served = tmp_path / "served"
    served.mkdir()
    (served / "pinned.txt").write_text("pinned")
    good = "sha256:" + hashlib.sha256(b"pinned").hexdigest()
    files: dict[str, str | bytes] = {"dir/a.txt": "a", "dir/b.log": "b", "dir/sub/skip": "s",
                                     "dir/sub/keep": "k"}  # fmt: skip
    with http_server(served) as url:
        ctx = ctx_dir(
            tmp_path / "c",
            "FROM busybox\nCOPY --exclude=*.log --exclude=sub/skip dir /d/\n"
            f"ADD --checksum={good} {url}/pinned.txt /pinned\n",
            files,
        )
        image = hafend.cli("build", "-q", str(ctx)).stdout.strip()
        bad = ctx_dir(
            tmp_path / "bad",
            f"FROM busybox\nADD --checksum=sha256:{'0' * 64} {url}/pinned.txt /p\n",
        )
        result = hafend.cli("build", str(bad), check=False)
    assert run_in(hafend, image, "cd /d && find . -type f | sort; cat /pinned") == (
        "./a.txt\n./sub/keep\npinned"
    )
    assert result.returncode != 0 and "digest mismatch" in result.stderr


def test_restart_sweeps_what_an_interrupted_build_left(
    fresh_hafend: Hafend, tmp_path: Path
) -> None:
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nRUN sleep 30\n")
    proc = subprocess.Popen(
        [HAFEN, "-H", fresh_hafend.host, "build", "--progress", "plain", str(ctx)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if "Running in" in line:
                break
        work = fresh_hafend.data_root / "build"
        assert any(p.name.startswith("context-") for p in work.iterdir())
        fresh_hafend.kill()  # the daemon dies mid-build
    finally:
        proc.kill()
        proc.wait()
    fresh_hafend.start()
    leftovers = [p.name for p in (fresh_hafend.data_root / "build").iterdir()]
    assert leftovers == ["cache-mounts"]
    active = fresh_hafend.data_root / "snapshots" / "overlay" / "active"
    if active.exists():
        assert not [p for p in active.iterdir() if p.name.startswith("build-")]


def test_intermediate_images_show_only_with_all(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", f'FROM busybox\nENV STEP={tmp_path.name}\nRUN true\nCMD ["sh"]\n')
    image = hafend.cli("build", "-q", "-t", "layered:test", str(ctx)).stdout.strip()
    shown = hafend.cli("images", "-q", "--no-trunc").stdout.split()
    everything = hafend.cli("images", "-a", "-q", "--no-trunc").stdout.split()
    assert image in shown and image in everything
    hidden = set(everything) - set(shown)
    assert len(hidden) >= 2  # the ENV and RUN steps' images are the build's intermediates


def test_cli_context_stream_dockerignore_links_and_long_names(
    hafend: Hafend, tmp_path: Path
) -> None:
    """``hafen build`` sends the context itself (hand-written tar, streamed): .dockerignore
    with a re-included file, symlinks, hard links, names past 100 bytes, modes, and a
    Dockerfile from outside the context all arrive as the daemon's COPY sees them."""
    long_name = "deep/" + "n" * 120 + ".txt"
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\n", {
        ".dockerignore": "secret.txt\nlogs\n!logs/keep.log\n*.tmp\n",
        "secret.txt": "no", "logs/drop.log": "no", "logs/keep.log": "kept", "a.tmp": "no",
        "app/main.sh": "#!/bin/sh\necho hi\n", long_name: "long",
    })  # fmt: skip
    os.chmod(ctx / "app/main.sh", 0o751)
    os.symlink("app/main.sh", ctx / "link")
    os.link(ctx / "app/main.sh", ctx / "app/hard.sh")
    outside = tmp_path / "Outside.Dockerfile"
    outside.write_text("FROM busybox\nCOPY . /ctx/\n")
    image = hafend.cli("build", "-q", "-f", str(outside), str(ctx)).stdout.strip()
    listing = run_in(hafend, image, "cd /ctx && find . | sort && stat -c '%a %n' app/main.sh"
                     " && readlink link && tail -1 app/hard.sh && cat logs/keep.log && echo"
                     " && cat deep/n*")  # fmt: skip
    lines = listing.splitlines()
    assert "./secret.txt" not in lines and "./a.tmp" not in lines
    assert not [line for line in lines if ".dockerfile." in line]  # as the docker CLI hides it
    assert "./logs/drop.log" not in lines and "./logs/keep.log" in lines
    assert "./" + long_name in lines and "751 app/main.sh" in lines
    assert "app/main.sh" in lines and lines[-3:] == ["echo hi", "kept", "long"]


def test_a_rebuild_sends_only_what_changed_and_sees_every_change(
    hafend: Hafend, tmp_path: Path
) -> None:
    """hafen's CLI syncs a context directory incrementally (its own /hafen/build/context):
    changed, added, removed and retyped paths all reach COPY, and a rebuild of an
    unchanged directory sends nothing."""
    from hafen.cli.commands.build import _ContextStream
    from hafen.client import APIClient

    script = "cd /c && find . | sort && cat a sub/c/x 2>/dev/null; readlink ln; cat hard"
    ctx = ctx_dir(tmp_path / "c", f'FROM busybox\nCOPY . /c\nCMD ["sh", "-c", "{script}"]\n',
                  {"a": "first a\n", "b": "bee\n", "sub/c": "a file\n"})  # fmt: skip
    os.symlink("a", ctx / "ln")
    os.link(ctx / "a", ctx / "hard")
    hafend.cli("build", "-q", "-t", "sync-test", str(ctx))
    assert hafend.cli("run", "--rm", "sync-test").stdout.splitlines() == [
        ".", "./Dockerfile", "./a", "./b", "./hard", "./ln", "./sub", "./sub/c",
        "first a", "a", "first a",
    ]  # fmt: skip

    (ctx / "a").write_text("second a\n")  # the hard link sees it too
    (ctx / "b").unlink()
    (ctx / "sub/c").unlink()
    (ctx / "sub/c").mkdir()
    (ctx / "sub/c/x").write_text("now a directory\n")
    hafend.cli("build", "-q", "-t", "sync-test", str(ctx))
    assert hafend.cli("run", "--rm", "sync-test").stdout.splitlines() == [
        ".", "./Dockerfile", "./a", "./hard", "./ln", "./sub", "./sub/c", "./sub/c/x",
        "second a", "now a directory", "a", "second a",
    ]  # fmt: skip

    time.sleep(2.1)  # the files changed just now were sent racily: rebuilt once more,
    hafend.cli("build", "-q", "-t", "sync-test", str(ctx))  # they are remembered
    stream = _ContextStream(ctx, None, None)
    entries = [m.manifest_entry(time.time_ns() - 2_000_000_000) for m in stream.members()]
    answer = APIClient(hafend.host).build_context_session(stream.key, entries)
    assert answer["Need"] == []  # nothing changed since the last build
    (ctx / "b").write_text("back")  # the cached context is held by that session now:
    hafend.cli("build", "-q", "-t", "sync-test", str(ctx))  # this build sends it all
    assert "./b" in hafend.cli("run", "--rm", "sync-test").stdout.splitlines()
