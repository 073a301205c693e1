"""Frames, timestamps and long socket paths shared by the shim and its client."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from hafen.shim.proto import MAX_SOCKET_PATH, frame, parse_header, reachable_path, rfc3339_nano


def test_frame_header_is_docker_multiplexing() -> None:
    data = frame(2, b"hello")
    assert data == b"\x02\x00\x00\x00\x00\x00\x00\x05hello"
    assert parse_header(data[:8]) == (2, 5)


def test_rfc3339_nano_keeps_nine_digits_and_z() -> None:
    assert rfc3339_nano(1_700_000_000_000_000_123) == "2023-11-14T22:13:20.000000123Z"
    assert rfc3339_nano(0) == "1970-01-01T00:00:00.000000000Z"


def test_short_paths_are_used_as_they_are() -> None:
    assert reachable_path("/run/hafen/x/shim.sock") == ("/run/hafen/x/shim.sock", None)


def test_long_paths_are_reached_through_proc_fd(tmp_path: Path) -> None:
    deep = tmp_path / ("a" * 80) / ("b" * 80)
    deep.mkdir(parents=True)
    path = str(deep / "s.sock")
    assert len(path) > MAX_SOCKET_PATH
    target, fd = reachable_path(path)
    assert fd is not None and target.startswith("/proc/self/fd/")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        server.bind(target)
        server.listen(1)
        os.close(fd)
        assert os.path.exists(path)
        target2, fd2 = reachable_path(path)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as c:
            c.connect(target2)
        assert fd2 is not None
        os.close(fd2)
    finally:
        server.close()
