"""Daemon-wide ``userns-remap``: root in the container is a subordinate uid on the host.

hafend runs in a private mount namespace where /etc/subuid and /etc/subgid are test
files (bind-mounted), so the machine's own files are never edited.
"""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HAFEND, Hafend

START = 300000


class RemappedHafend(Hafend):
    def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "subuid").write_text(f"dockremap:{START}:65536\n")
        (self.root / "subgid").write_text(f"dockremap:{START}:65536\n")
        (self.root / "daemon.json").write_text(json.dumps({"userns-remap": "default"}))
        script = (
            f"mount --bind {self.root}/subuid /etc/subuid && "
            f'mount --bind {self.root}/subgid /etc/subgid && exec "$@"'
        )
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                 HAFEND, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                 "-H", self.host, "--config-file", str(self.root / "daemon.json")],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                start_new_session=True,
            )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"hafend exited early:\n{self.log_path.read_text()}")
            if self.cli("version", check=False, timeout=10).returncode == 0:
                return
            time.sleep(0.1)
        raise RuntimeError(f"hafend did not answer:\n{self.log_path.read_text()}")


@pytest.fixture(scope="module")
def remapped() -> Iterator[Hafend]:
    # The remapped root makes the container's mounts: it must be able to walk there
    # (dockerd's data root must be traversable too). Not under pytest's temp root: every
    # pytest session that starts (other suites run beside this one) chmods
    # /tmp/pytest-of-<user> back to 0700, which would lock the remapped root out.
    root = Path(tempfile.mkdtemp(prefix="hafen-remap-"))
    os.chmod(root, 0o711)
    d = RemappedHafend(root)
    d.start()
    try:
        d.bootstrap()
        yield d
    finally:
        d.cleanup()  # removes root too


def test_root_in_the_container_is_a_subordinate_uid(remapped: Hafend) -> None:
    remapped.cli("run", "-d", "--name", "remap1", "busybox", "sleep", "60")
    try:
        inside = remapped.cli(
            "exec", "remap1", "sh", "-c",
            "id -u; cat /proc/self/uid_map; touch /root-owned && stat -c %u /root-owned",
        ).stdout.split()  # fmt: skip
        assert inside[0] == "0"
        assert inside[1:4] == ["0", str(START), "65536"]
        assert inside[4] == "0"  # root in the container owns the files it writes
        pid = json.loads(remapped.cli("inspect", "remap1").stdout)[0]["State"]["Pid"]
        with open(f"/proc/{pid}/status") as f:
            uids = next(line for line in f if line.startswith("Uid:")).split()[1:]
        assert uids == [str(START)] * 4  # on the host: the subordinate uid
    finally:
        remapped.cli("rm", "-f", "remap1", check=False)


def test_userns_host_keeps_host_ids(remapped: Hafend) -> None:
    out = remapped.cli(
        "run", "--rm", "--userns", "host", "busybox", "cat", "/proc/self/uid_map"
    ).stdout.split()
    assert out == ["0", "0", "4294967295"]


def test_bad_remap_setting_refuses_to_start(tmp_path: Path) -> None:
    d = Hafend(tmp_path / "bad")
    d.root.mkdir(parents=True)
    (d.root / "daemon.json").write_text(json.dumps({"userns-remap": "no-such-user-here"}))
    with pytest.raises(RuntimeError, match="no subordinate uid range"):
        d.start(timeout=15)
    assert os.path.exists(d.log_path)


def test_remapped_root_writes_named_volume_tmpfs_and_etc_files(remapped: Hafend) -> None:
    """A new named volume (empty and copied-up), a tmpfs, a created bind source and the
    /etc files belong to the container's root, as with dockerd: root can write them."""
    bind_src = remapped.root / "created-by-run" / "sub"
    script = (
        "for d in /data /etc /t /b; do echo hi-$d > $d/f && cat $d/f; done; "
        "echo 10.9.9.9 extra >> /etc/hosts && echo hosts-ok; stat -c '%u:%g' /data /b /etc/hosts"
    )
    try:
        out = remapped.cli(
            "run", "--rm", "-v", "rvol:/data", "-v", "rcopy:/etc", "--tmpfs", "/t",
            "-v", f"{bind_src}:/b", "busybox", "sh", "-c", script,
        ).stdout.split()  # fmt: skip
        assert out == [
            "hi-/data", "hi-/etc", "hi-/t", "hi-/b", "hosts-ok", "0:0", "0:0", "0:0",
        ]  # fmt: skip
        # Read back by a second container, and seen from the host as the subordinate root.
        again = remapped.cli("run", "--rm", "-v", "rvol:/data", "busybox", "cat", "/data/f")
        assert again.stdout.strip() == "hi-/data"
        mountpoint = json.loads(remapped.cli("volume", "inspect", "rvol").stdout)[0]["Mountpoint"]
        for path in (mountpoint, f"{mountpoint}/f", str(bind_src), str(bind_src.parent)):
            st = os.stat(path)
            assert (st.st_uid, st.st_gid) == (START, START), path
        # Copy-up kept the image's (shifted) ownership: passwd is root's inside.
        copy_mp = json.loads(remapped.cli("volume", "inspect", "rcopy").stdout)[0]["Mountpoint"]
        assert os.stat(f"{copy_mp}/passwd").st_uid == START
    finally:
        remapped.cli("volume", "rm", "-f", "rvol", "rcopy", check=False)
