"""Docker's json-file records: line splitting, 16 KiB partials, stream names, timestamps."""

from __future__ import annotations

import json
import re
from pathlib import Path

from hafen.shim.logfile import MAX_PARTIAL, JsonLogWriter, encode_record
from hafen.shim.proto import STDERR, STDOUT


def records(path: Path) -> list[dict[str, str]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_each_line_is_one_record_with_its_newline(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"one\ntwo\nthr")
    log.write(STDOUT, b"ee\n")
    log.close()
    assert [r["log"] for r in records(tmp_path / "c.log")] == ["one\n", "two\n", "three\n"]


def test_streams_keep_separate_partial_lines(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"out-")
    log.write(STDERR, b"err\n")
    log.write(STDOUT, b"line\n")
    log.close()
    assert [(r["stream"], r["log"]) for r in records(tmp_path / "c.log")] == [
        ("stderr", "err\n"),
        ("stdout", "out-line\n"),
    ]


def test_partial_line_is_flushed_at_end_of_stream(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"no newline")
    assert (tmp_path / "c.log").read_text() == ""  # held until it ends or grows
    log.end(STDOUT)
    assert [r["log"] for r in records(tmp_path / "c.log")] == ["no newline"]
    log.close()


def test_partial_line_is_flushed_at_16_kib(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"x" * (MAX_PARTIAL + 10))
    got = records(tmp_path / "c.log")
    assert [len(r["log"]) for r in got] == [MAX_PARTIAL]
    log.write(STDOUT, b"\n")
    log.close()
    assert [r["log"] for r in records(tmp_path / "c.log")][1:] == ["x" * 10 + "\n"]


def test_a_long_line_arriving_whole_is_cut_at_16_kib(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"y" * (2 * MAX_PARTIAL + 5) + b"\nz\n")
    log.close()
    lens = [len(r["log"]) for r in records(tmp_path / "c.log")]
    assert lens == [MAX_PARTIAL, MAX_PARTIAL, 6, 2]


def test_invalid_utf8_becomes_replacement_characters(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDOUT, b"caf\xc3\xa9 \xff\n")
    log.close()
    assert records(tmp_path / "c.log")[0]["log"] == "caf\u00e9 \ufffd\n"


def test_records_append_to_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "c.log"
    for word in (b"first\n", b"second\n"):
        log = JsonLogWriter(str(path))
        log.write(STDOUT, word)
        log.close()
    assert [r["log"] for r in records(path)] == ["first\n", "second\n"]


def test_record_shape_matches_docker() -> None:
    line = encode_record(b'say "hi"\n', "stdout", "2026-11-22T23:03:00.123456789Z")
    assert line == (
        b'{"log":"say \\"hi\\"\\n","stream":"stdout","time":"2026-11-22T23:03:00.123456789Z"}\n'
    )


def test_time_is_rfc3339_nano_utc(tmp_path: Path) -> None:
    log = JsonLogWriter(str(tmp_path / "c.log"))
    log.write(STDERR, b"x\n")
    log.close()
    ts = records(tmp_path / "c.log")[0]["time"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z", ts)
