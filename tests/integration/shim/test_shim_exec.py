"""Extra processes through the shim (``op: exec``): output, stdin, exit codes, tty, errors."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from hafen.errors import RuntimeFailure
from hafen.shim.execs import EXIT_STREAM
from hafen.shim.proto import HEADER_SIZE, parse_header

from .conftest import Launched, Shims, run


def process(c: Launched, args: list[str], tty: bool = False) -> dict[str, Any]:
    spec = json.loads((c.bundle / "config.json").read_text())
    proc: dict[str, Any] = spec["process"]
    proc["args"] = args
    proc["terminal"] = tty
    return proc


async def read_exec(reader: asyncio.StreamReader) -> tuple[dict[int, bytes], int | None]:
    """Output per stream and the exit code from the closing frame."""
    out: dict[int, bytes] = {1: b"", 2: b""}
    while True:
        try:
            stream, size = parse_header(await reader.readexactly(HEADER_SIZE))
        except asyncio.IncompleteReadError:
            return out, None
        payload = await reader.readexactly(size)
        if stream == EXIT_STREAM:
            return out, int(json.loads(payload)["exit_code"])
        out[stream] += payload


@pytest.fixture
def sleeper(shims: Shims) -> Launched:
    c = shims.launch(["sleep", "60"])
    run(c.client.start())
    return c


def test_exec_streams_both_outputs_and_ends_with_the_exit_code(sleeper: Launched) -> None:
    async def scenario() -> tuple[dict[int, bytes], int | None]:
        args = ["sh", "-c", "echo out; echo err >&2; exit 7"]
        pid, reader, writer = await sleeper.client.exec("e1", process(sleeper, args), False)
        assert pid > 0
        try:
            return await read_exec(reader)
        finally:
            writer.close()

    out, code = run(scenario())
    assert out == {1: b"out\n", 2: b"err\n"} and code == 7
    # the container itself is untouched: still running, nothing in its log
    assert run(sleeper.client.state())["status"] == "running"
    assert sleeper.log_records() == []


def test_exec_stdin_reaches_the_process_and_eof_closes_it(sleeper: Launched) -> None:
    async def scenario() -> tuple[dict[int, bytes], int | None]:
        proc = process(sleeper, ["sh", "-c", "cat; echo end"])
        _pid, reader, writer = await sleeper.client.exec("e2", proc, True)
        writer.write(b"line one\n")
        await writer.drain()
        writer.write_eof()
        try:
            return await read_exec(reader)
        finally:
            writer.close()

    out, code = run(scenario())
    assert out[1] == b"line one\nend\n" and code == 0


def test_exec_with_a_tty_and_resize(sleeper: Launched) -> None:
    async def scenario() -> tuple[dict[int, bytes], int | None]:
        proc = process(sleeper, ["sh", "-c", "sleep 0.3; stty size; exit 2"], tty=True)
        _pid, reader, writer = await sleeper.client.exec("e3", proc, True)
        await sleeper.client.resize_exec("e3", 33, 99)
        try:
            return await read_exec(reader)
        finally:
            writer.close()

    out, code = run(scenario())
    assert b"33 99" in out[1] and out[2] == b"" and code == 2


def test_exec_of_a_missing_program_is_the_runtimes_error(sleeper: Launched) -> None:
    with pytest.raises(RuntimeFailure, match="nosuch"):
        run(sleeper.client.exec("e4", process(sleeper, ["nosuch"]), False))
    assert run(sleeper.client.state())["status"] == "running"


def test_exec_runs_on_when_its_client_leaves(sleeper: Launched) -> None:
    async def scenario() -> None:
        proc = process(sleeper, ["sh", "-c", "sleep 0.2; echo done > /dev/shm/mark"])
        _pid, _reader, writer = await sleeper.client.exec("e5", proc, False)
        writer.close()  # the daemon went away
        await asyncio.sleep(0.6)
        check = process(sleeper, ["cat", "/dev/shm/mark"])
        _pid, reader, writer = await sleeper.client.exec("e6", check, False)
        out, code = await read_exec(reader)
        writer.close()
        assert out[1] == b"done\n" and code == 0

    run(scenario())


def test_exec_in_a_container_that_exits_ends_with_it(shims: Shims) -> None:
    c = shims.launch(["sleep", "1"])
    run(c.client.start())

    async def scenario() -> int | None:
        _pid, reader, writer = await c.client.exec("e7", process(c, ["sleep", "30"]), False)
        try:
            _out, code = await asyncio.wait_for(read_exec(reader), 15)
            return code
        finally:
            writer.close()

    assert run(scenario()) == 137  # killed with the container's pid namespace
    assert run(c.client.wait()).exit_code == 0
