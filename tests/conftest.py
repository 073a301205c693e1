"""Fixtures shared by the integration and compat suites: real ``hafend`` daemons.

Each daemon gets its own temporary data root, exec root and socket; it is started as a
real process and talked to over its real unix socket. Clean-up removes every container
it made, unmounts whatever is left under its roots and kills only the processes it
started (the daemon, and shims recorded in its exec root).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

VENV_BIN = Path(sys.executable).parent
HAFEN = str(VENV_BIN / "hafen")
HAFEND = str(VENV_BIN / "hafend")


class Hafend:
    """A real hafend on private roots, plus helpers to drive it with the real CLI."""

    def __init__(
        self, root: Path, extra_args: list[str] | None = None, prefix: list[str] | None = None
    ) -> None:
        self.root = root
        self.prefix = prefix or []  # e.g. an unshare command line the daemon runs under
        self.data_root = root / "data"
        self.exec_root = root / "exec"
        self.socket = root / "hafen.sock"
        self.host = f"unix://{self.socket}"
        self.log_path = root / "hafend.log"
        self.extra_args = extra_args or []
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "HAFEN_HOST": self.host, "DOCKER_HOST": self.host}

    def start(self, timeout: float = 20) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [*self.prefix, HAFEND, "--data-root", str(self.data_root), "--exec-root", str(self.exec_root),
                 "-H", self.host, "--config-file", str(self.root / "daemon.json"), *self.extra_args],
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
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=30)
        self.proc = None

    def cli(
        self, *args: str, input: bytes | str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [HAFEN, "-H", self.host, *args],
            input=input.decode() if isinstance(input, bytes) else input,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=self.env,
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"hafen {' '.join(args)} exited {result.returncode}\n"
                f"stdout: {result.stdout}\nstderr: {result.stderr}"
            )
        return result

    def edit_record(self, container_id: str, edit: Callable[[dict[str, Any]], None]) -> None:
        """Change a container's stored record (daemon stopped): what a daemon killed in
        the middle of an operation leaves behind."""
        with sqlite3.connect(self.data_root / "metadata.db") as db:
            (raw,) = db.execute(
                "SELECT record FROM containers WHERE id = ?", (container_id,)
            ).fetchone()
            record = json.loads(raw)
            edit(record)
            db.execute(
                "UPDATE containers SET record = ? WHERE id = ?", (json.dumps(record), container_id)
            )

    def bootstrap(self) -> str:
        out = self.cli("image", "bootstrap", "busybox", timeout=300).stdout
        return out.strip().splitlines()[-1]

    def shim_pids(self) -> list[int]:
        """Shims of this daemon's containers that still run (a shim.json may outlive its
        shim, and its pid may be anybody's by now: only live shims of ours count)."""
        pids = []
        for info in self.exec_root.glob("containers/*/shim.json"):
            with contextlib.suppress(ValueError, OSError):
                pid = int(json.loads(info.read_text())["shim_pid"])
                if _is_shim_of(pid, info.parent.name):
                    pids.append(pid)
        return pids

    def cleanup(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            ps = self.cli("ps", "-aq", "--no-trunc", check=False, timeout=30)
            ids = ps.stdout.split()
            if ids:
                self.cli("rm", "-f", *ids, check=False, timeout=120)
            self.kill(signal.SIGTERM)
        for pid in self.shim_pids():  # shims of containers the daemon could not remove
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
        unmount_under(self.root)
        shutil.rmtree(self.root, ignore_errors=True)


def _is_shim_of(pid: int, container_id: str) -> bool:
    """Whether ``pid`` is the shim of ``container_id``: its name is ``shim-<id[:10]>``
    (zygote-forked shims share one command line), or an exec'd one's argv has the id."""
    try:
        with open(f"/proc/{pid}/comm", "rb") as f:
            if f.read().strip() == f"shim-{container_id[:10]}".encode():
                return True
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return container_id.encode() in f.read().split(b"\0")
    except OSError:
        return False


def unmount_under(root: Path) -> None:
    prefix = str(root.resolve()) + "/"
    with open("/proc/self/mountinfo") as f:
        targets = [line.split()[4] for line in f]
    for target in sorted((t for t in targets if t.startswith(prefix)), key=len, reverse=True):
        subprocess.run(["umount", "-l", target], check=False, capture_output=True)


@pytest.fixture(scope="session")
def hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hafend]:
    """One daemon for the session, with busybox bootstrapped."""
    daemon = Hafend(tmp_path_factory.mktemp("hafend"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def fresh_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hafend]:
    """A daemon of the test's own (for restarts and kills), with busybox bootstrapped."""
    daemon = Hafend(tmp_path_factory.mktemp("hafend-own"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()
