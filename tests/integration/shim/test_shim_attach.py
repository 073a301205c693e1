"""Attach, stdin, tty and resize against real containers; misbehaving clients."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time

import pytest

from hafen.errors import RuntimeFailure
from hafen.shim.proto import HEADER_SIZE, parse_header

from .conftest import Shims, pid_alive, run


async def read_frames(reader: asyncio.StreamReader) -> list[tuple[int, bytes]]:
    """Every frame until the shim ends the stream."""
    frames: list[tuple[int, bytes]] = []
    while True:
        try:
            header = await reader.readexactly(HEADER_SIZE)
        except asyncio.IncompleteReadError as e:
            assert e.partial == b"", "stream ended inside a frame header"
            return frames
        stream, size = parse_header(header)
        frames.append((stream, await reader.readexactly(size)))


def joined(frames: list[tuple[int, bytes]], stream: int) -> bytes:
    return b"".join(data for s, data in frames if s == stream)


def test_attach_receives_output_and_sends_stdin(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "read x; echo got $x; echo oops >&2"], stdin=True)

    async def scenario() -> list[tuple[int, bytes]]:
        reader, writer = await c.client.attach(stdin=True, stdout=True, stderr=True)
        await c.client.start()
        writer.write(b"hello\n")
        await writer.drain()
        frames = await read_frames(reader)
        writer.close()
        return frames

    frames = run(scenario())
    assert joined(frames, 1) == b"got hello\n"
    assert joined(frames, 2) == b"oops\n"
    assert run(c.client.wait()).exit_code == 0


def test_attach_only_stdout_gets_no_stderr(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "echo a; echo b >&2"])

    async def scenario() -> list[tuple[int, bytes]]:
        reader, writer = await c.client.attach(stdin=False, stdout=True, stderr=False)
        await c.client.start()
        frames = await read_frames(reader)
        writer.close()
        return frames

    assert run(scenario()) == [(1, b"a\n")]


def test_stdin_once_closes_the_container_stdin_on_client_eof(shims: Shims) -> None:
    c = shims.launch(["cat"], stdin=True, stdin_once=True)

    async def scenario() -> bytes:
        reader, writer = await c.client.attach(stdin=True, stdout=True, stderr=True)
        await c.client.start()
        writer.write(b"abc\ndef")
        await writer.drain()
        writer.write_eof()
        frames = await read_frames(reader)
        writer.close()
        return joined(frames, 1)

    assert run(scenario()) == b"abc\ndef"
    assert run(c.client.wait()).exit_code == 0
    assert [r["log"] for r in c.log_records()] == ["abc\n", "def"]


def test_without_stdin_once_stdin_stays_open_for_the_next_attach(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "read a; read b; echo $a$b"], stdin=True)

    async def send(data: bytes) -> None:
        _reader, writer = await c.client.attach(stdin=True, stdout=False, stderr=False)
        writer.write(data)
        await writer.drain()
        writer.write_eof()
        await asyncio.sleep(0.1)
        writer.close()

    run(c.client.start())
    run(send(b"one\n"))
    assert run(c.client.state())["status"] == "running"
    run(send(b"two\n"))
    assert run(c.client.wait()).exit_code == 0
    assert [r["log"] for r in c.log_records()] == ["onetwo\n"]


def test_tty_attach_echoes_and_runs_commands(shims: Shims) -> None:
    c = shims.launch(["sh"], tty=True, stdin=True)

    async def scenario() -> list[tuple[int, bytes]]:
        reader, writer = await c.client.attach(stdin=True, stdout=True, stderr=True)
        await c.client.start()
        await c.client.resize(40, 100)
        writer.write(b"echo hi\n")
        writer.write(b"stty size\n")
        writer.write(b"exit\n")
        await writer.drain()
        frames = await read_frames(reader)
        writer.close()
        return frames

    frames = run(scenario())
    assert {s for s, _ in frames} == {1}  # a tty has one stream
    out = joined(frames, 1)
    assert b"echo hi" in out  # the terminal echoed the input
    assert b"\r\nhi\r\n" in out
    assert b"40 100" in out  # the resize reached the pty
    assert run(c.client.wait()).exit_code == 0
    records = c.log_records()
    assert {r["stream"] for r in records} == {"stdout"}
    assert "40 100\r\n" in [r["log"] for r in records]


def test_resize_without_a_tty_is_refused(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    with pytest.raises(RuntimeFailure, match="no terminal"):
        run(c.client.resize(24, 80))


def test_output_before_attach_is_not_replayed(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "echo early; read x; echo late"], stdin=True)
    run(c.client.start())
    deadline = time.monotonic() + 5
    while not c.log_records() and time.monotonic() < deadline:
        time.sleep(0.01)

    async def scenario() -> list[tuple[int, bytes]]:
        reader, writer = await c.client.attach(stdin=True, stdout=True, stderr=True)
        writer.write(b"x\n")
        await writer.drain()
        frames = await read_frames(reader)
        writer.close()
        return frames

    assert run(scenario()) == [(1, b"late\n")]


def _raw_attach(path: str, stdout: bool = True) -> socket.socket:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.connect(path)
    req = {"op": "attach", "stdin": False, "stdout": stdout, "stderr": stdout}
    s.sendall(json.dumps(req).encode() + b"\n")
    line = b""
    while not line.endswith(b"\n"):
        line += s.recv(1)
    assert json.loads(line) == {"ok": True}
    return s


def test_a_client_dying_mid_stream_does_not_hurt_the_shim(shims: Shims) -> None:
    c = shims.launch(["sh", "-c", "seq 1 20000; read x; echo done $x"], stdin=True)
    sock = _raw_attach(str(c.state_dir / "shim.sock"))
    run(c.client.start())
    assert sock.recv(100)
    # vanish with unread data queued: the shim sees a reset on its next send
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()
    time.sleep(0.2)
    assert pid_alive(c.info.shim_pid)
    assert run(c.client.state())["status"] == "running"

    async def scenario() -> list[tuple[int, bytes]]:
        reader, writer = await c.client.attach(stdin=True, stdout=True, stderr=True)
        writer.write(b"ok\n")
        await writer.drain()
        frames = await read_frames(reader)
        writer.close()
        return frames

    assert joined(run(scenario()), 1) == b"done ok\n"
    assert run(c.client.wait()).exit_code == 0
    lines = [r["log"] for r in c.log_records()]
    assert lines[0] == "1\n" and lines[19999] == "20000\n" and lines[-1] == "done ok\n"


def test_a_client_that_never_reads_is_dropped_not_waited_for(shims: Shims) -> None:
    # ~6 MiB of output: more than the per-client bound
    script = "x=$(printf %01023d 0); i=0; while [ $i -lt 6144 ]; do echo $x; i=$((i+1)); done"
    c = shims.launch(["sh", "-c", script])
    slow = _raw_attach(str(c.state_dir / "shim.sock"))
    slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    t0 = time.monotonic()
    run(c.client.start())
    assert run(c.client.wait(), timeout=60).exit_code == 0
    assert time.monotonic() - t0 < 30
    records = c.log_records()
    assert len(records) == 6144 and all(len(r["log"]) == 1024 for r in records)
    # the slow client got a prefix of the stream, then the shim let it go
    slow.settimeout(10)
    received = 0
    try:
        while chunk := slow.recv(1 << 20):
            received += len(chunk)
    except OSError:
        pass
    slow.close()
    assert received < 6144 * 1024


def test_unknown_op_and_bad_json_get_errors(shims: Shims) -> None:
    c = shims.launch(["sleep", "100"])
    for payload, expected in ((b'{"op":"dance"}\n', "unknown op"), (b"not json\n", "bad request")):
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.connect(str(c.state_dir / "shim.sock"))
        s.sendall(payload)
        reply = json.loads(s.makefile("rb").readline())
        s.close()
        assert expected in reply["error"]
    assert run(c.client.state())["status"] == "created"


def test_attach_ends_with_the_output_not_after_the_runtimes_delete(shims: Shims) -> None:
    """A `docker run` waits for its attach and its wait: the stream must not also wait for
    the runtime to release the container (here a runtime whose delete takes a second)."""
    from hafen.runtime import command as hafen_runtime_command

    slow_delete = [
        "sh", "-c", 'case " $* " in *" delete "*) sleep 1;; esac; exec "$0" "$@"',
        *hafen_runtime_command(sys.executable),
    ]  # fmt: skip
    c = shims.launch(["echo", "bye"], runtime=slow_delete)

    async def scenario() -> tuple[bytes, float, float]:
        reader, writer = await c.client.attach(stdin=False, stdout=True, stderr=True)
        waiting = asyncio.ensure_future(c.client.wait())
        await c.client.start()
        frames = await read_frames(reader)
        ended = time.monotonic()
        writer.close()
        await waiting
        return joined(frames, 1), ended, time.monotonic()

    out, ended, answered = run(scenario())
    assert out == b"bye\n"
    assert answered - ended > 0.5
