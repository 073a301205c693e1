"""A hafend inside a private network namespace made by the test (``unshare --net``).

Every daemon that creates bridges, veths or addresses runs here, so the machine's own
network is never touched. The daemon's unix socket is on the file system, so the CLI
outside the namespace still talks to it; clients that need the namespace's network run
under ``nsenter --net=/proc/<hafend pid>/ns/net``.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import HAFEND, Hafend


class NetHafend(Hafend):
    def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        daemon = [
            HAFEND, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
            "-H", self.host, "--config-file", str(self.root / "daemon.json"), *self.extra_args,
        ]  # fmt: skip
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                ["unshare", "--net", "--fork", "--kill-child", "--",
                 "sh", "-c", 'ip link set lo up && exec "$@"', "sh", *daemon],
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

    def kill(self, sig: int = signal.SIGKILL) -> None:
        """Signal hafend itself: ``unshare --fork`` blocks SIGTERM and waits for its child."""
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(OSError, IndexError, ValueError):
                os.kill(self.daemon_pid, sig)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    @property
    def daemon_pid(self) -> int:
        """The hafend process (the child of ``unshare``)."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children").read_text().split()
        return int(children[0])

    def in_netns(
        self, *argv: str, check: bool = True, timeout: float = 30
    ) -> subprocess.CompletedProcess[str]:
        """Run a command in the daemon's network namespace (its "host" network)."""
        return subprocess.run(
            ["nsenter", f"--net=/proc/{self.daemon_pid}/ns/net", "--", *argv],
            capture_output=True, text=True, timeout=timeout, check=check,
        )  # fmt: skip


@pytest.fixture(scope="module")
def net_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-net"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()
