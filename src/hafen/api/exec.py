"""Exec routes of the Engine API: create, start (hijacked), resize, inspect.

``POST /exec/{id}/start`` hijacks the connection like attach: 8-byte stream headers
without a TTY, raw bytes with one. A detached start answers 200 at once; the exit code
is recorded either way and ``GET /exec/{id}/json`` reports it.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body, query_int
from hafen.api.hijack import HijackedStream, hijack
from hafen.containers.execs import ExecConfig, ExecRecord, ExecSession
from hafen.errors import Conflict, HafenError, InvalidArgument

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"


def _str_list(body: dict[str, Any], key: str) -> list[str]:
    value = body.get(key)
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise InvalidArgument(f"{key} must be a list of strings")
    return list(value)


def exec_config_from_api(body: Any) -> ExecConfig:
    if not isinstance(body, dict):
        raise InvalidArgument("exec config must be a JSON object")
    return ExecConfig(
        cmd=_str_list(body, "Cmd"),
        env=_str_list(body, "Env"),
        user=str(body.get("User") or ""),
        working_dir=str(body.get("WorkingDir") or ""),
        tty=bool(body.get("Tty")),
        attach_stdin=bool(body.get("AttachStdin")),
        attach_stdout=bool(body.get("AttachStdout")),
        attach_stderr=bool(body.get("AttachStderr")),
        privileged=bool(body.get("Privileged")),
        detach_keys=str(body.get("DetachKeys") or ""),
    )


def exec_inspect(record: ExecRecord) -> dict[str, Any]:
    cfg = record.config
    return {
        "ID": record.id,
        "Running": record.running,
        "ExitCode": record.exit_code,
        "ProcessConfig": {
            "tty": cfg.tty,
            "entrypoint": cfg.cmd[0] if cfg.cmd else "",
            "arguments": cfg.cmd[1:],
            "privileged": cfg.privileged,
            "user": cfg.user,
        },
        "OpenStdin": cfg.attach_stdin,
        "OpenStderr": cfg.attach_stderr,
        "OpenStdout": cfg.attach_stdout,
        "CanRemove": False,
        "ContainerID": record.container_id,
        "DetachKeys": cfg.detach_keys,
        "Pid": record.pid,
    }


async def create(request: web.Request) -> web.Response:
    d = daemon_of(request)
    config = exec_config_from_api(await json_body(request))
    record = d.containers.execs.create(request.match_info["id"], config)
    return web.json_response({"Id": record.id}, status=201)


async def inspect(request: web.Request) -> web.Response:
    record = daemon_of(request).containers.execs.get(request.match_info["id"])
    return web.json_response(exec_inspect(record))


async def resize(request: web.Request) -> web.Response:
    h = query_int(request, "h", 0) or 0
    w = query_int(request, "w", 0) or 0
    await daemon_of(request).containers.execs.resize(request.match_info["id"], h, w)
    return web.Response(status=200)


async def start(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("exec start config must be a JSON object")
    execs = d.containers.execs
    record = execs.get(request.match_info["id"])
    tty = bool(body.get("Tty", record.config.tty))
    console_size = _console_size(body.get("ConsoleSize"))
    if body.get("Detach"):
        session = await execs.start(record.id, console_size)
        session.close_stdin()
        task = asyncio.get_running_loop().create_task(session.pump(None))
        _background.add(task)
        task.add_done_callback(_background.discard)
        return web.Response(status=200)
    if record.started:  # refused before the connection is taken over
        raise Conflict(f"Error: Exec command {record.id} has already run")
    response, client = await hijack(request, RAW if tty else MULTIPLEXED)
    try:
        try:
            session = await execs.start(record.id, console_size)
        except HafenError as e:
            # the head is sent: the error goes into the stream, as dockerd does
            text = (e.message + "\r\n").encode()
            await client.write(text if tty else _frame(1, text))
            return response
        await _pump(client, session, tty, record.config)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        client.close()
    return response


def _console_size(value: Any) -> tuple[int, int] | None:
    if value is None:
        return None
    if (
        not isinstance(value, list)
        or len(value) != 2
        or not all(isinstance(v, int) and 0 <= v <= 0xFFFF for v in value)
    ):
        raise InvalidArgument("ConsoleSize must be [height, width]")
    return (value[0], value[1]) if value[0] and value[1] else None


_background: set[asyncio.Task[Any]] = set()


def _frame(stream: int, data: bytes) -> bytes:
    return bytes([stream, 0, 0, 0]) + len(data).to_bytes(4, "big") + data


async def _pump(client: HijackedStream, session: ExecSession, tty: bool, cfg: ExecConfig) -> None:
    async def sink(stream: int, payload: bytes) -> None:
        if (stream == 1 and not cfg.attach_stdout) or (stream == 2 and not cfg.attach_stderr):
            return
        await client.write(payload if tty else _frame(stream, payload))

    async def input_() -> None:
        while True:
            data = await client.read()
            if not data:
                session.close_stdin()
                return
            if cfg.attach_stdin:
                await session.write(data)

    if not cfg.attach_stdin:
        session.close_stdin()
    in_task = asyncio.ensure_future(input_())
    try:
        await session.pump(sink)
    finally:
        in_task.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError, OSError):
            await in_task


def register(routes: Routes) -> None:
    routes.add("POST", "/containers/{id}/exec", create)
    routes.add("POST", "/exec/{id}/start", start)
    routes.add("POST", "/exec/{id}/resize", resize)
    routes.add("GET", "/exec/{id}/json", inspect)
