"""Reading json-file logs: tail, streams, time filters, follow, torn lines."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path

import pytest

from hafen.containers.logs import LogQuery, parse_rfc3339, read_log_batches, read_logs


def write_log(path: Path, records: list[tuple[str, str, str]], torn: bool = False) -> None:
    with open(path, "w") as f:
        for log, stream, time in records:
            f.write(json.dumps({"log": log, "stream": stream, "time": time}) + "\n")
        if torn:
            f.write('{"log": "half')


def collect(path: Path, query: LogQuery, running: bool = False) -> list[tuple[str, bytes]]:
    async def run() -> list[tuple[str, bytes]]:
        return [(r.stream, r.data) async for r in read_logs(str(path), query, lambda: running)]

    return asyncio.run(run())


RECORDS = [
    ("a\n", "stdout", "2026-01-01T00:00:01.000000001Z"),
    ("b\n", "stderr", "2026-01-01T00:00:02.5Z"),
    ("c\n", "stdout", "2026-01-01T00:00:03Z"),
]


def test_all_records_in_order(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS)
    assert collect(tmp_path / "l", LogQuery()) == [
        ("stdout", b"a\n"),
        ("stderr", b"b\n"),
        ("stdout", b"c\n"),
    ]


def test_stream_selection_and_tail(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS)
    assert collect(tmp_path / "l", LogQuery(stderr=False)) == [
        ("stdout", b"a\n"),
        ("stdout", b"c\n"),
    ]
    assert collect(tmp_path / "l", LogQuery(tail=2)) == [("stderr", b"b\n"), ("stdout", b"c\n")]
    assert collect(tmp_path / "l", LogQuery(tail=0)) == []
    assert len(collect(tmp_path / "l", LogQuery(tail=10))) == 3


def test_since_and_until(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS)
    base = 1767225600.0  # 2026-01-01T00:00:00Z
    assert [d for _, d in collect(tmp_path / "l", LogQuery(since=base + 2))] == [b"b\n", b"c\n"]
    assert [d for _, d in collect(tmp_path / "l", LogQuery(until=base + 2.6))] == [b"a\n", b"b\n"]


def test_torn_last_line_is_skipped(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS, torn=True)
    assert len(collect(tmp_path / "l", LogQuery())) == 3


def test_follow_ends_when_the_container_has_stopped(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS)
    assert len(collect(tmp_path / "l", LogQuery(follow=True), running=False)) == 3


def test_missing_file_is_empty(tmp_path: Path) -> None:
    assert collect(tmp_path / "none", LogQuery()) == []


def test_rfc3339_times_parse_to_unix_seconds_and_bad_ones_are_refused() -> None:
    assert parse_rfc3339("1970-01-01T00:00:10Z") == 10.0
    assert abs(parse_rfc3339("2026-11-23T06:48:52.123456789Z") - 1795416532.123456789) < 1e-6
    assert parse_rfc3339("0001-01-01T00:00:00Z") == -62135596800.0  # Docker's zero time
    assert parse_rfc3339("1970-01-01T00:00:10Z") == 10.0  # again, from the cache
    for bad in ("2026-11-23 06:48:52Z", "yesterday", "2026-11-23T06:48:52+02:00"):
        with pytest.raises(ValueError):
            parse_rfc3339(bad)


def test_batches_are_never_empty_and_hold_every_record_in_order(tmp_path: Path) -> None:
    many = [(f"{i}\n", "stdout" if i % 3 else "stderr", RECORDS[0][2]) for i in range(20000)]
    write_log(tmp_path / "l", many)  # ~1.4 MB: several 256 KiB chunks

    async def run() -> list[list[bytes]]:
        return [
            [r.data for r in batch]
            async for batch in read_log_batches(str(tmp_path / "l"), LogQuery(), lambda: False)
        ]

    batches = asyncio.run(run())
    assert len(batches) > 1 and all(batches)
    assert [d for batch in batches for d in batch] == [f"{i}\n".encode() for i in range(20000)]


def test_a_corrupt_line_inside_a_chunk_costs_only_that_line(tmp_path: Path) -> None:
    write_log(tmp_path / "l", RECORDS[:2])
    with open(tmp_path / "l", "a") as f:
        f.write('{"log": "broken\n')  # a torn write followed by more records
    with open(tmp_path / "l", "a") as f:
        f.write(json.dumps({"log": "c\n", "stream": "stdout", "time": RECORDS[2][2]}) + "\n")
    assert [d for _, d in collect(tmp_path / "l", LogQuery())] == [b"a\n", b"b\n", b"c\n"]


def _follow_while_writing(
    path: Path,
    total: int,
    ahead: int,
    stall_at: int | None = None,
    compress: bool = False,
    local: bool = False,
) -> list[int]:
    """Follow ``path`` while a real JsonLogWriter (max-size 1k, max-file 5) writes
    ``total`` numbered lines, never more than ``ahead`` lines past what the follower has
    delivered — except, with ``stall_at``, all the rest at once when the follower has
    delivered that many (a follower far behind)."""
    from hafen.shim.logfile import JsonLogWriter, LocalLogWriter

    kind = LocalLogWriter if local else JsonLogWriter
    writer = kind(str(path), max_size=1024, max_files=5, compress=compress)
    received: list[int] = []
    written = 0
    done = False

    async def write() -> None:
        nonlocal written, done
        while written < total:
            limit = len(received) + ahead
            if stall_at is not None and len(received) >= stall_at:
                limit = total
            while written < min(limit, total):
                writer.write(1, f"line-{written:05d}\n".encode())
                written += 1
            await asyncio.sleep(0)
        writer.close()
        done = True

    async def run() -> None:
        task = asyncio.create_task(write())
        query = LogQuery(follow=True)
        async for rec in read_logs(str(path), query, lambda: not done, local=local):
            received.append(int(rec.data.decode().strip().split("-")[1]))
        await task

    asyncio.run(asyncio.wait_for(run(), 60))
    return received


def test_follow_gets_every_record_exactly_once_across_many_rotations(tmp_path: Path) -> None:
    # ~13 records per 1 KiB file: 40 lines ahead is about three rotations between two
    # reads of the follower, and still within what 5 files retain
    received = _follow_while_writing(tmp_path / "l", total=3000, ahead=40)
    assert received == list(range(3000))
    assert len(list(tmp_path.iterdir())) == 5


def test_a_follower_left_behind_loses_only_what_rotation_dropped(tmp_path: Path) -> None:
    received = _follow_while_writing(tmp_path / "l", total=2000, ahead=10, stall_at=100)
    assert received[:100] == list(range(100))  # what it read before falling behind
    assert received == sorted(set(received))  # in order, none twice
    retained = [int(rec[1].decode().split("-")[1]) for rec in collect(tmp_path / "l", LogQuery())]
    assert received[-len(retained) :] == retained  # everything still on disk, to the last
    assert retained[-1] == 1999


@pytest.mark.parametrize("local", [False, True], ids=["json-file", "local"])
def test_follow_through_compressed_rotations_exactly_once(tmp_path: Path, local: bool) -> None:
    received = _follow_while_writing(
        tmp_path / "l", total=1500, ahead=40, compress=True, local=local
    )
    assert received == list(range(1500))
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["l", "l.1.gz", "l.2.gz", "l.3.gz", "l.4.gz"]


@pytest.mark.parametrize("local", [False, True], ids=["json-file", "local"])
def test_compressed_and_local_files_read_back_with_tail_and_times(
    tmp_path: Path, local: bool
) -> None:
    from hafen.shim.logfile import JsonLogWriter, LocalLogWriter
    from hafen.shim.proto import STDERR, STDOUT

    kind = LocalLogWriter if local else JsonLogWriter
    writer = kind(str(tmp_path / "l"), max_size=512, max_files=4, compress=True)
    for i in range(120):
        writer.write(STDERR if i % 10 == 0 else STDOUT, f"r{i}\n".encode())
    writer.write(STDOUT, b"partial")
    writer.close()

    def read(query: LogQuery) -> list[tuple[str, bytes]]:
        async def run() -> list[tuple[str, bytes]]:
            return [
                (r.stream, r.data)
                async for r in read_logs(str(tmp_path / "l"), query, lambda: False, local=local)
            ]

        return asyncio.run(run())

    everything = read(LogQuery())
    assert everything[-1] == ("stdout", b"partial")  # a partial record keeps no newline
    numbers = [int(d[1:-1]) for _s, d in everything[:-1]]
    assert numbers == list(range(numbers[0], 120)) and numbers[0] > 0  # the oldest dropped
    assert read(LogQuery(tail=3)) == [("stdout", b"r118\n"), ("stdout", b"r119\n"),
                                      ("stdout", b"partial")]  # fmt: skip
    tail_far = read(LogQuery(tail=len(everything) - 1))  # starts inside the oldest .gz
    assert tail_far == everything[1:]
    assert [d for _s, d in read(LogQuery(stdout=False))] == [
        f"r{i}\n".encode() for i in range(numbers[0], 120) if i % 10 == 0
    ]
    assert any(p.name.endswith(".gz") for p in tmp_path.iterdir())


def test_snapshot_across_a_first_rotation_finds_the_renamed_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the race: the directory was listed before the writer renamed "l" to "l.1", the open
    # of "l" came after the rename and before the new "l" was made — that is not "no log"
    import threading

    import hafen.containers.logfiles as logfiles

    path = tmp_path / "l"
    (tmp_path / "l.1").write_text('{"log":"first\\n","stream":"stdout","time":"x"}\n')
    real = logfiles._log_files
    calls = []

    def stale_first_listing(p: str) -> list[str]:
        calls.append(p)
        return [p] if len(calls) == 1 else real(p)

    monkeypatch.setattr(logfiles, "_log_files", stale_first_listing)
    maker = threading.Timer(0.05, path.write_text, ("",))
    maker.start()
    try:
        files = logfiles.snapshot(str(path))
    finally:
        maker.join()
    try:
        assert [os.readlink(f"/proc/self/fd/{f.fd}") for f in files] == [
            str(tmp_path / "l.1"),
            str(path),
        ]
    finally:
        logfiles.close_all(files)
