"""One daemon per data root, exec root and socket: a second is refused, the first unharmed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.conftest import HAFEND, Hafend


def _second(first: Hafend, tmp_path: Path, **overrides: str) -> subprocess.CompletedProcess[str]:
    args = {
        "--data-root": str(first.data_root),
        "--exec-root": str(first.exec_root),
        "-H": f"unix://{tmp_path / 'second.sock'}",
        "--config-file": str(first.root / "daemon.json"),
    }
    args.update(overrides)
    argv = [HAFEND, *(x for pair in args.items() for x in pair)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


def test_a_second_daemon_on_the_same_data_root_is_refused(
    fresh_hafend: Hafend, tmp_path: Path
) -> None:
    fresh_hafend.cli("run", "-d", "--name", "keeper", "busybox", "sleep", "300")
    result = _second(fresh_hafend, tmp_path, **{"--exec-root": str(tmp_path / "exec")})
    assert result.returncode != 0
    assert f"is using {fresh_hafend.data_root}" in result.stderr
    assert f"(pid {fresh_hafend.proc.pid})" in result.stderr  # type: ignore[union-attr]
    assert not (tmp_path / "second.sock").exists()
    # the first daemon and its container are untouched
    state = fresh_hafend.cli("inspect", "-f", "{{.State.Status}}", "keeper").stdout.strip()
    assert state == "running"


def test_a_second_daemon_on_the_same_exec_root_or_socket_is_refused(
    fresh_hafend: Hafend, tmp_path: Path
) -> None:
    same_exec = _second(fresh_hafend, tmp_path, **{"--data-root": str(tmp_path / "data")})
    assert same_exec.returncode != 0 and f"is using {fresh_hafend.exec_root}" in same_exec.stderr
    same_socket = _second(
        fresh_hafend, tmp_path,
        **{"--data-root": str(tmp_path / "d2"), "--exec-root": str(tmp_path / "e2"),
           "-H": fresh_hafend.host},
    )  # fmt: skip
    assert same_socket.returncode != 0 and "already listening" in same_socket.stderr
    assert fresh_hafend.socket.exists()
    fresh_hafend.cli("version")


def test_a_restart_after_the_first_daemon_exits_takes_the_roots_over(fresh_hafend: Hafend) -> None:
    fresh_hafend.kill()  # SIGKILL: the kernel drops the locks with the process
    fresh_hafend.start()
    fresh_hafend.cli("version")
