"""Non-blocking log mode in the shim: the output side never waits on the file, records that
do not fit in max-buffer-size are dropped whole (counted, said once), the rest is written
in order; blocking mode writes as before."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

from hafen.shim.logbuffer import LogRing
from hafen.shim.logfile import JsonLogWriter, LocalLogWriter
from hafen.shim.proto import STDOUT


class SlowFile:
    """A write target that blocks until released (a log file on a stalled disk)."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.batches: list[list[bytes]] = []

    def write(self, records: list[bytes]) -> None:
        self.release.wait(60)  # far longer than any bound below: waiting on it shows
        self.batches.append(records)

    @property
    def records(self) -> list[bytes]:
        return [r for batch in self.batches for r in batch]


def _wait(predicate: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_putting_never_waits_on_a_stalled_file_and_drops_what_does_not_fit(
    capfd: pytest.CaptureFixture[str],
) -> None:
    slow = SlowFile()
    ring = LogRing(slow.write, max_bytes=100, path="/x/c.log")
    records = [b"%09d\n" % i for i in range(1000)]  # 10 bytes each
    started = time.monotonic()
    for record in records:
        ring.put([record])  # the first is taken by the writer, which then stalls
    assert time.monotonic() - started < 30  # never waited on the stalled (60 s) file
    assert ring.queued_bytes <= 100
    assert ring.dropped >= 1000 - 2 * 10  # a batch the writer holds, and 100 bytes queued
    slow.release.set()
    assert ring.close()
    written = slow.records
    assert len(written) + ring.dropped == 1000
    assert written[0] == records[0]  # the output starts as the container's did
    assert written == sorted(written)  # in order, whole records, a subsequence
    assert set(written) <= set(records)
    err = capfd.readouterr().err
    assert err.count("log buffer full (max-buffer-size 100 bytes)") == 1  # said once
    assert f"{ring.dropped} log records for /x/c.log were dropped" in err


def test_a_record_bigger_than_the_buffer_still_goes_when_nothing_waits() -> None:
    slow = SlowFile()
    slow.release.set()
    ring = LogRing(slow.write, max_bytes=10, path="c.log")
    ring.put([b"x" * 50])
    assert ring.close()
    assert slow.records == [b"x" * 50] and ring.dropped == 0


def test_close_gives_a_stuck_file_a_bounded_time(capfd: pytest.CaptureFixture[str]) -> None:
    slow = SlowFile()
    ring = LogRing(slow.write, max_bytes=1000, path="c.log")
    ring.put([b"first\n"])
    _wait(lambda: ring.queued_bytes == 0)  # the writer holds it, stalled
    ring.put([b"second\n"])
    started = time.monotonic()
    assert not ring.close(timeout=0.2)
    assert time.monotonic() - started < 30  # not the stalled file's 60 s
    assert "stalled: 1 queued log records not written" in capfd.readouterr().err
    slow.release.set()


def test_a_failing_write_loses_its_batch_only(capfd: pytest.CaptureFixture[str]) -> None:
    got: list[bytes] = []
    calls = 0

    def write(records: list[bytes]) -> None:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise ValueError("boom")
        got.extend(records)

    ring = LogRing(write, max_bytes=1000, path="c.log")
    ring.put([b"lost\n"])
    _wait(lambda: calls == 1)
    ring.put([b"kept\n"])
    assert ring.close()
    assert got == [b"kept\n"]
    assert "writing c.log failed: ValueError('boom'); 1 log records lost" in capfd.readouterr().err


@pytest.mark.parametrize("writer", [JsonLogWriter, LocalLogWriter])
def test_non_blocking_writer_writes_every_record_when_the_file_keeps_up(
    tmp_path: Path, writer: type[JsonLogWriter]
) -> None:
    log = writer(str(tmp_path / "c.log"), max_size=2000, max_files=3, buffer_size=1 << 20)
    for i in range(300):
        log.write(STDOUT, b"line-%d\n" % i)
    log.write(STDOUT, b"partial")
    log.close()
    assert log.ring is not None and log.ring.dropped == 0
    files = sorted(tmp_path.iterdir())
    assert [f.name for f in files] == ["c.log", "c.log.1", "c.log.2"]  # rotation still works
    assert all(f.stat().st_size <= 2000 for f in files)
    if writer is JsonLogWriter:
        lines = [
            json.loads(line)["log"] for f in reversed(files) for line in f.read_text().splitlines()
        ]
        assert lines[-1] == "partial"
        numbers = [int(x.split("-")[1]) for x in lines[:-1]]
        assert numbers == list(range(numbers[0], 300))  # the newest, in order, none lost


def test_non_blocking_writer_drops_whole_json_records_under_a_stalled_file(
    tmp_path: Path,
) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"), buffer_size=1024)
    stall = threading.Event()
    real = log._write_records

    def slow(records: list[bytes]) -> None:
        stall.wait(60)
        real(records)

    log.ring._write = slow  # type: ignore[union-attr]
    started = time.monotonic()
    for i in range(5000):
        log.write(STDOUT, b"record-%d\n" % i)
    assert time.monotonic() - started < 30  # the output side never waited (60 s)
    stall.set()
    log.close()
    assert log.ring is not None and 0 < log.ring.dropped < 5000
    records = [json.loads(line) for line in (tmp_path / "c.log").read_text().splitlines()]
    numbers = [int(r["log"].removeprefix("record-").rstrip("\n")) for r in records]
    assert numbers[0] == 0 and numbers == sorted(numbers)
    assert all(r["log"].endswith("\n") and r["stream"] == "stdout" for r in records)
    assert len(records) + log.ring.dropped == 5000


def test_blocking_mode_has_no_buffer(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    assert log.ring is None
    log.write(STDOUT, b"now\n")
    assert json.loads((tmp_path / "c.log").read_text())["log"] == "now\n"  # written at once
    log.close()
