"""A hafend inside a private network namespace made by the test (``unshare --net``).

Every daemon that creates bridges, veths or addresses runs here, so the machine's own
network is never touched. The daemon's unix socket is on the file system, so the CLI
outside the namespace still talks to it; clients that need the namespace's network run
under ``nsenter --net=/proc/<hafend pid>/ns/net``.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HAFEND, Hafend


class NetHafend(Hafend):
    """A hafend in a network namespace of its own, held by a ``sleep`` so that the daemon
    can be killed and started again inside the same namespace (restart tests)."""

    holder: subprocess.Popen[bytes] | None = None
    # when set: the daemon also gets a private mount namespace in which this file is
    # /etc/resolv.conf (the "host's resolvers" of DNS tests)
    resolv_conf: Path | None = None

    def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self.holder is None:
            argv = ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 3600"]
            if self.resolv_conf is not None:
                argv = ["unshare", "--net", "--mount", "--propagation", "private", "--",
                        "sh", "-c", 'mount --bind "$0" /etc/resolv.conf && ip link set lo up '
                        "&& exec sleep 3600", str(self.resolv_conf)]  # fmt: skip
            self.holder = subprocess.Popen(argv, start_new_session=True)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:  # until sh has exec'd sleep with lo up
                if Path(f"/proc/{self.holder.pid}/comm").read_text().strip() == "sleep":
                    break
                time.sleep(0.02)
        daemon = [
            HAFEND, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "-H", self.host, "--config-file", str(self.root / "daemon.json"), *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["nsenter", *self._namespaces(), "--", *daemon],
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
        raise RuntimeError(f"hafend did not answer in {timeout}s:\n{self.log_path.read_text()}")

    def _namespaces(self) -> list[str]:
        assert self.holder is not None
        flags = [f"--net=/proc/{self.holder.pid}/ns/net"]
        if self.resolv_conf is not None:
            flags.append(f"--mount=/proc/{self.holder.pid}/ns/mnt")
        return flags

    @property
    def daemon_pid(self) -> int:
        """A process in the daemon's namespace (the holder outlives daemon restarts)."""
        assert self.holder is not None
        return self.holder.pid

    def in_netns(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the daemon's network namespace (its "host" network)."""
        return subprocess.run(
            ["nsenter", f"--net=/proc/{self.daemon_pid}/ns/net", "--", *argv],
            capture_output=True, text=True, timeout=timeout, check=check,
        )  # fmt: skip

    def cleanup(self) -> None:
        try:
            super().cleanup()
        finally:
            if self.holder is not None:
                self.holder.kill()
                self.holder.wait(timeout=10)
                self.holder = None


@pytest.fixture(scope="module")
def net_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-net"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def other_host(d: NetHafend) -> subprocess.Popen[bytes]:
    """Another "host": a network namespace of its own (held by a ``sleep``) joined to the
    daemon's by a veth pair, 192.0.2.1 on the daemon's side, 192.0.2.2 on its own. The
    caller kills the returned holder; the veth goes with the namespace."""
    outside = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 600"]
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if Path(f"/proc/{outside.pid}/comm").read_text().strip() == "sleep":
            break
        time.sleep(0.02)
    d.in_netns("ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
    d.in_netns("ip", "link", "set", "ext1", "netns", str(outside.pid))
    d.in_netns("ip", "addr", "add", "192.0.2.1/24", "dev", "ext0")
    d.in_netns("ip", "link", "set", "ext0", "up")
    enter = ["nsenter", f"--net=/proc/{outside.pid}/ns/net", "--"]
    subprocess.run([*enter, "ip", "addr", "add", "192.0.2.2/24", "dev", "ext1"], check=True)
    subprocess.run([*enter, "ip", "link", "set", "ext1", "up"], check=True)
    return outside
