"""The daemon-side client against fake launchers and a fake shim socket."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hafen.errors import RuntimeFailure
from hafen.shim.client import (
    ExitStatus,
    ShimClient,
    ShimInfo,
    launch_shim,
    read_exit_status,
    shim_socket_reachable,
)

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def fake_launcher(tmp_path: Path, body: str) -> list[str]:
    script = tmp_path / "launcher.py"
    script.write_text("import sys\n" + body)
    return [sys.executable, "-S", str(script)]


async def launch(prefix: list[str]) -> ShimInfo:
    return await launch_shim(
        prefix,
        container_id="c1",
        bundle="/b",
        state_dir="/s",
        log_path="/s/c.log",
        runtime=["/usr/sbin/runc", "--debug"],
        runtime_root="/r",
        tty=True,
        stdin=True,
        stdin_once=False,
    )


def test_launch_passes_the_command_line_and_returns_the_pids(tmp_path: Path) -> None:
    prefix = fake_launcher(
        tmp_path,
        "open(sys.argv[0] + '.args', 'w').write('\\n'.join(sys.argv[1:]))\n"
        'print(\'{"pid": 42, "shim_pid": 41}\')\n',
    )
    assert asyncio.run(launch(prefix)) == ShimInfo(pid=42, shim_pid=41)
    args = (tmp_path / "launcher.py.args").read_text().split("\n")
    assert args == [
        "--id", "c1", "--bundle", "/b", "--state-dir", "/s", "--log-path", "/s/c.log",
        "--runtime", "/usr/sbin/runc --debug", "--runtime-root", "/r", "--tty", "--stdin",
    ]  # fmt: skip


def test_launch_error_line_becomes_runtime_failure(tmp_path: Path) -> None:
    prefix = fake_launcher(tmp_path, 'print(\'{"error": "exec: no such file"}\'); sys.exit(1)\n')
    with pytest.raises(RuntimeFailure, match="exec: no such file"):
        asyncio.run(launch(prefix))


def test_launch_without_a_report_names_the_status_and_stderr(tmp_path: Path) -> None:
    prefix = fake_launcher(tmp_path, "print('Traceback: boom', file=sys.stderr); sys.exit(3)\n")
    with pytest.raises(RuntimeFailure, match="status 3: Traceback: boom"):
        asyncio.run(launch(prefix))


def test_a_zygote_shim_that_dies_unreported_is_explained_by_its_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hafen.shim import client

    class SilentZygote:
        async def launch(
            self, _args: list[str], _keep_open: bool, _go: object
        ) -> tuple[bytes, None]:
            (tmp_path / "shim.log").write_text("Traceback ...\nOSError: no more pids\n")
            return b"", None  # the forked shim's socket closed without a line

    async def zygote_for(*_args: object) -> SilentZygote:
        return SilentZygote()

    monkeypatch.setattr(client, "_zygote_for", zygote_for)
    with pytest.raises(
        RuntimeFailure, match=r"(?s)ended without a report: Traceback.*no more pids"
    ):
        asyncio.run(
            launch_shim(
                [sys.executable, "-S", "-m", "hafen.shim"], container_id="c1", bundle="/b",
                state_dir=str(tmp_path), log_path="/s/c.log", runtime=["runc"],
                runtime_root=None, tty=False, stdin=False, stdin_once=False,
            )
        )  # fmt: skip


def test_launch_of_a_missing_program_fails_cleanly() -> None:
    with pytest.raises(RuntimeFailure, match="cannot run the shim"):
        asyncio.run(launch(["/no/such/python"]))


def test_read_exit_status(tmp_path: Path) -> None:
    assert read_exit_status(str(tmp_path)) is None
    (tmp_path / "exit.json").write_text("{torn")
    assert read_exit_status(str(tmp_path)) is None
    (tmp_path / "exit.json").write_text(
        json.dumps({"exit_code": 3, "exited_at": "2026-01-01T00:00:00.000000000Z"})
    )
    assert read_exit_status(str(tmp_path)) == ExitStatus(3, "2026-01-01T00:00:00.000000000Z")


async def with_server(state_dir: Path, handler: Handler, body: Callable[[], Awaitable[Any]]) -> Any:
    server = await asyncio.start_unix_server(handler, str(state_dir / "shim.sock"))
    async with server:
        return await body()


def replying(reply: dict[str, Any], seen: list[dict[str, Any]]) -> Handler:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        seen.append(json.loads(await reader.readline()))
        writer.write(json.dumps(reply).encode() + b"\n")
        await writer.drain()
        writer.close()

    return handler


def test_requests_are_one_json_line_each(tmp_path: Path) -> None:
    seen: list[dict[str, Any]] = []
    client = ShimClient(str(tmp_path))

    async def body() -> None:
        await client.start()
        await client.kill(15, all=True)
        await client.resize(24, 80)

    asyncio.run(with_server(tmp_path, replying({"ok": True}, seen), body))
    assert seen == [
        {"op": "start"},
        {"op": "kill", "signal": 15, "all": True},
        {"op": "resize", "height": 24, "width": 80},
    ]


def test_error_replies_raise_runtime_failure(tmp_path: Path) -> None:
    client = ShimClient(str(tmp_path))
    with pytest.raises(RuntimeFailure, match="container not running"):
        asyncio.run(
            with_server(tmp_path, replying({"error": "container not running"}, []), client.start)
        )


def test_state_and_alive(tmp_path: Path) -> None:
    client = ShimClient(str(tmp_path))
    handler = replying({"pid": 7, "status": "running"}, [])
    assert asyncio.run(with_server(tmp_path, handler, client.state)) == {
        "pid": 7,
        "status": "running",
    }
    assert asyncio.run(with_server(tmp_path, handler, client.alive)) is True
    assert asyncio.run(client.alive()) is False
    assert not shim_socket_reachable(str(tmp_path))


def test_unreachable_shim_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="not reachable"):
        asyncio.run(ShimClient(str(tmp_path)).kill(9))


def test_wait_replies_with_the_exit(tmp_path: Path) -> None:
    client = ShimClient(str(tmp_path))
    reply = {"exit_code": 137, "exited_at": "t", "oom_killed": False}
    status = asyncio.run(with_server(tmp_path, replying(reply, []), client.wait))
    assert status == ExitStatus(137, "t", False)


def test_wait_reads_exit_json_when_the_shim_is_gone(tmp_path: Path) -> None:
    (tmp_path / "exit.json").write_text(json.dumps({"exit_code": 2, "exited_at": "t"}))
    assert asyncio.run(ShimClient(str(tmp_path)).wait()) == ExitStatus(2, "t", False)


def test_wait_reads_exit_json_when_the_shim_hangs_up(tmp_path: Path) -> None:
    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        (tmp_path / "exit.json").write_text(json.dumps({"exit_code": 1, "exited_at": "t"}))
        writer.close()

    client = ShimClient(str(tmp_path))
    assert asyncio.run(with_server(tmp_path, hang_up, client.wait)).exit_code == 1


def test_wait_without_shim_or_record_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeFailure, match="no exit recorded"):
        asyncio.run(ShimClient(str(tmp_path)).wait())


def test_attach_returns_the_stream_after_the_ok_line(tmp_path: Path) -> None:
    async def attach(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        assert json.loads(await reader.readline())["op"] == "attach"
        writer.write(b'{"ok": true}\n\x01\x00\x00\x00\x00\x00\x00\x02hi')
        echo = await reader.read()
        writer.write(echo)
        await writer.drain()
        writer.close()

    async def body() -> bytes:
        r, w = await ShimClient(str(tmp_path)).attach(True, True, True)
        w.write(b"in")
        w.write_eof()
        data = await r.read()
        w.close()
        return data

    assert asyncio.run(with_server(tmp_path, attach, body)) == b"\x01\0\0\0\0\0\0\x02hiin"
