"""``--log-opt mode=non-blocking`` / ``max-buffer-size`` with real containers: a log file
that stops taking writes blocks the container in blocking mode (dockerd's default) but
not in non-blocking mode, whose log then holds whole records from the start of the
output; daemon.json ``log-opts`` set the mode for every container.

A "stalled log file" is a FIFO put where the container's log file goes, held open by a
reader that does not read: writes to it block once the pipe is full, as on a stuck disk.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

from tests.conftest import Hafend

# enough output to fill the FIFO (64 KiB) and the container's pipe many times over
WRITER = "seq 1 100000; sleep 30"


def _output_done(pid: int, timeout: float) -> bool:
    """Whether the container's shell got past its output: it then runs ``sleep`` (busybox
    sh execs the last command of ``-c`` in place)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if Path(f"/proc/{pid}/comm").read_text().strip() == "sleep":
            return True
        time.sleep(0.05)
    return False


class StalledLog:
    """A FIFO at the container's log path, read only when ``drain`` is called."""

    def __init__(self, path: Path) -> None:
        os.mkfifo(path)
        self.fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        self.data = bytearray()
        self._thread: threading.Thread | None = None

    def drain(self) -> None:
        """Read everything from now on, until the shim closes its end (bounded)."""

        def run() -> None:
            os.set_blocking(self.fd, True)
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                chunk = os.read(self.fd, 1 << 16)
                if not chunk:
                    return
                self.data += chunk

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def close(self) -> None:
        if self._thread is not None:
            self._thread.join(60)
        os.close(self.fd)


def _start_with_stalled_log(d: Hafend, *opts: str) -> tuple[str, int, StalledLog]:
    cid = d.cli("create", *opts, "busybox", "sh", "-c", WRITER).stdout.strip()
    log = StalledLog(Path(d.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip()))
    d.cli("start", cid)
    pid = int(d.cli("inspect", "-f", "{{.State.Pid}}", cid).stdout)
    return cid, pid, log


def _check_records(data: bytes) -> list[int]:
    """Every line a whole json-file record; the numbers the container printed, in order
    and starting with its first line."""
    lines = data.decode().splitlines()
    records = [json.loads(line) for line in lines]
    assert all(r["stream"] == "stdout" and r["log"].endswith("\n") for r in records)
    numbers = [int(r["log"]) for r in records]
    assert numbers[0] == 1 and numbers == sorted(set(numbers))
    return numbers


def _stalled_file_does_not_block(d: Hafend, *opts: str) -> None:
    cid, pid, log = _start_with_stalled_log(d, *opts)
    try:
        assert _output_done(pid, 20), "the container blocked on its log file"
        # the shim still serves requests while its writer waits on the file
        assert d.cli("exec", cid, "echo", "alive", timeout=20).stdout == "alive\n"
        log.drain()
        d.cli("rm", "-f", cid, timeout=60)
        log.close()
        numbers = _check_records(bytes(log.data))
        assert len(numbers) < 100000  # records were dropped while the file was stalled
    finally:
        d.cli("rm", "-f", cid, check=False)
        if log._thread is None:
            log.drain()
            log.close()


def test_a_stalled_log_file_blocks_the_container_in_blocking_mode(hafend: Hafend) -> None:
    """The control: without a buffer the container waits for the file, and resumes when
    the file takes writes again — nothing is lost."""
    cid, pid, log = _start_with_stalled_log(hafend, "--log-opt", "mode=blocking")
    try:
        assert not _output_done(pid, 2)
        log.drain()
        assert _output_done(pid, 30)
        hafend.cli("rm", "-f", cid, timeout=60)
        log.close()
        assert _check_records(bytes(log.data)) == list(range(1, 100001))
    finally:
        hafend.cli("rm", "-f", cid, check=False)


def test_non_blocking_mode_keeps_the_container_running_past_a_stalled_log_file(
    hafend: Hafend,
) -> None:
    _stalled_file_does_not_block(
        hafend, "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=16k"
    )


def test_fast_writer_with_a_tiny_buffer_finishes_and_its_log_reads_whole(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "--log-opt", "mode=non-blocking", "--log-opt", "max-buffer-size=1k",
        "busybox", "seq", "1", "50000",
    ).stdout.strip()  # fmt: skip
    try:
        assert hafend.cli("wait", cid, timeout=60).stdout.strip() == "0"
        log_path = Path(hafend.cli("inspect", "-f", "{{.LogPath}}", cid).stdout.strip())
        numbers = _check_records(log_path.read_bytes())
        assert [int(x) for x in hafend.cli("logs", cid).stdout.split()] == numbers
        config = json.loads(hafend.cli("inspect", "-f", "{{json .HostConfig.LogConfig}}",
                                       cid).stdout)  # fmt: skip
        assert config["Config"] == {"mode": "non-blocking", "max-buffer-size": "1k"}
    finally:
        hafend.cli("rm", "-f", cid)


def test_daemon_json_log_opts_set_non_blocking_mode(fresh_hafend: Hafend) -> None:
    d = fresh_hafend
    d.kill()
    (d.root / "daemon.json").write_text(
        json.dumps({"log-opts": {"mode": "non-blocking", "max-buffer-size": "8k"}})
    )
    d.start()
    _stalled_file_does_not_block(d)
    # and a bad mode in daemon.json stops the daemon with dockerd's words
    d.kill()
    (d.root / "daemon.json").write_text(json.dumps({"log-opts": {"mode": "fast"}}))
    try:
        d.start(timeout=10)
        raise AssertionError("hafend started with log-opts mode=fast")
    except RuntimeError as e:
        assert "logging mode not supported: fast" in str(e)
