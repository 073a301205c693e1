"""runtime/_files: whole-file reads and single-call writes on raw fds."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from hafen.runtime import _files


def test_read_bytes_reads_small_and_large_files_whole(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.write_bytes(b"0-3\n")
    assert _files.read_bytes(str(small)) == b"0-3\n"
    big = tmp_path / "big"
    data = os.urandom(200_000)  # more than one read's worth
    big.write_bytes(data)
    assert _files.read_bytes(str(big)) == data
    assert _files.read_text(str(small)) == "0-3\n"


def test_read_of_a_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        _files.read_bytes(str(tmp_path / "missing"))


def test_read_of_a_proc_file_returns_its_content() -> None:
    # procfs reports size 0: the read must not trust st_size
    assert _files.read_bytes("/proc/self/stat").startswith(str(os.getpid()).encode() + b" (")


def test_write_text_creates_or_truncates_as_open_w(tmp_path: Path) -> None:
    knob = tmp_path / "cpu.shares"
    _files.write_text(str(knob), "1024")
    assert knob.read_text() == "1024"
    _files.write_text(str(knob), "2")
    assert knob.read_text() == "2"


def test_write_text_names_the_file_when_the_kernel_refuses(tmp_path: Path) -> None:
    with pytest.raises(OSError) as e:
        _files.write_text(str(tmp_path / "no-dir" / "knob"), "1")
    assert e.value.filename == str(tmp_path / "no-dir" / "knob")


def test_write_new_writes_everything_with_the_mode(tmp_path: Path) -> None:
    target = tmp_path / "state.json"
    data = b"x" * 300_000
    old = os.umask(0)
    try:
        _files.write_new(str(target), data, 0o600)
    finally:
        os.umask(old)
    assert target.read_bytes() == data
    assert target.stat().st_mode & 0o777 == 0o600
    _files.write_new(str(target), b"short")
    assert target.read_bytes() == b"short"  # truncated
