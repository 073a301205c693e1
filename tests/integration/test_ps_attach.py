"""ps filters and sizes, attach (output, exit status, detach keys), port."""

from __future__ import annotations

import json
import os
import pty
import time

from tests.conftest import HAFEN, Hafend
from tests.integration.test_api import call


def test_ps_before_since_volume_size_filters(hafend: Hafend) -> None:
    a = hafend.cli("create", "--name", "ps-a", "busybox", "true").stdout.strip()
    b = hafend.cli("create", "--name", "ps-b", "-v", "/data", "busybox", "true").stdout.strip()
    c = hafend.cli("create", "--name", "ps-c", "busybox", "true").stdout.strip()
    try:
        before = hafend.cli("ps", "-aq", "--no-trunc", "--filter", "before=ps-c").stdout.split()
        assert a in before and b in before and c not in before
        since = hafend.cli("ps", "-aq", "--no-trunc", "--filter", "since=ps-a").stdout.split()
        assert b in since and c in since and a not in since
        vol = hafend.cli("ps", "-aq", "--no-trunc", "--filter", "volume=/data").stdout.split()
        assert vol == [b]
        last = hafend.cli("ps", "-alq", "--no-trunc").stdout.split()
        assert last == [c]
        assert hafend.cli("ps", "-a", "-n", "2", "-q").stdout.split() == [c[:12], b[:12]]
        status, body, _ = call(
            hafend, "GET", '/containers/json?all=1&size=1&filters={"name":["ps-a"]}'
        )
        assert status == 200 and body[0]["SizeRw"] >= 0 and body[0]["SizeRootFs"] > 0
        out = hafend.cli("ps", "-a", "-s", "--filter", "name=ps-a").stdout
        assert "SIZE" in out.splitlines()[0] and "virtual" in out
        r = hafend.cli("ps", "--filter", "before=nope", check=False)
        assert r.returncode != 0 and "No such container: nope" in r.stderr
    finally:
        hafend.cli("rm", "-f", a, b, c)


def test_attach_streams_output_and_returns_the_exit_status(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "busybox", "sh", "-c", "sleep 1; echo done; exit 6"
    ).stdout.strip()
    try:
        r = hafend.cli("attach", cid, check=False, timeout=30)
        assert r.stdout == "done\n" and r.returncode == 6
        r = hafend.cli("attach", cid, check=False)
        assert r.returncode == 1 and "start it first" in r.stderr
    finally:
        hafend.cli("rm", "-f", cid)


def test_attach_detach_keys_leave_the_container_running(hafend: Hafend) -> None:
    cid = hafend.cli("run", "-dit", "busybox", "sh").stdout.strip()
    try:
        pid, fd = pty.fork()
        if pid == 0:  # the child: hafen attach on a terminal
            os.execve(HAFEN, [HAFEN, "-H", hafend.host, "attach", "--detach-keys", "ctrl-x,x", cid],
                      dict(os.environ))  # fmt: skip
        time.sleep(1.0)
        os.write(fd, b"echo hi-there\r")
        time.sleep(0.5)
        os.write(fd, b"\x18x")  # ctrl-x, x
        deadline = time.monotonic() + 15
        status = None
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            try:
                os.read(fd, 4096)
            except OSError:
                pass
            time.sleep(0.05)
        assert status is not None and os.waitstatus_to_exitcode(status) == 0
        os.close(fd)
        state = json.loads(hafend.cli("inspect", "-f", "{{json .State}}", cid).stdout)
        assert state["Running"] is True
    finally:
        hafend.cli("rm", "-f", cid)


def test_port_without_published_ports(hafend: Hafend) -> None:
    cid = hafend.cli("run", "-d", "busybox", "sleep", "30").stdout.strip()
    try:
        assert hafend.cli("port", cid).stdout == ""
        r = hafend.cli("port", cid, "80", check=False)
        assert r.returncode == 1 and "No public port '80/tcp' published" in r.stderr
    finally:
        hafend.cli("rm", "-f", cid)


def test_ps_answers_from_the_daemons_records_not_from_container_files(hafend: Hafend) -> None:
    """ps -a stays flat with many containers because it reads nothing per container:
    with their directories out of the way, the listing (state, exit code) is unchanged."""
    created = hafend.cli("create", "busybox", "true").stdout.strip()
    exited = hafend.cli("run", "-d", "busybox", "sh", "-c", "exit 3").stdout.strip()
    hafend.cli("wait", exited)
    moved = []
    try:
        for cid in (created, exited):
            for root in (hafend.data_root, hafend.exec_root):
                path = root / "containers" / cid
                if path.exists():
                    os.rename(path, f"{path}.away")
                    moved.append(path)
        fmt = "{{.ID}} {{.State}} {{.Status}}"
        rows = hafend.cli("ps", "-a", "--no-trunc", "--format", fmt).stdout.splitlines()
        mine = {
            r.split()[0]: r.split(None, 1)[1] for r in rows if r.split()[0] in (created, exited)
        }
        assert mine[created] == "created Created"
        assert mine[exited].startswith("exited Exited (3) ")
    finally:
        for path in moved:
            os.rename(f"{path}.away", path)
        hafend.cli("rm", "-f", created, exited)
