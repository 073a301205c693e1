"""Container routes of the Engine API: create, list, inspect, start, stop, kill, wait,
logs, attach, resize, delete."""

from __future__ import annotations

import asyncio
import contextlib
import json
import struct
from typing import Any

from aiohttp import web

from hafen.api import summaries
from hafen.api.app import (
    Routes,
    daemon_of,
    json_body,
    query_bool,
    query_int,
)
from hafen.api.convert import (
    container_config_from_api,
    container_inspect,
    container_summary,
    endpoints_config_from_api,
)
from hafen.api.hijack import HijackedStream, hijack
from hafen.containers.logs import (
    LogQuery,
    LogRecord,
    parse_rfc3339,
    read_log_batches,
    read_logs,
)
from hafen.containers.model import Container
from hafen.containers.service import AttachRequest
from hafen.errors import HafenError, InvalidArgument, NotImplementedHere

MULTIPLEXED = "application/vnd.docker.multiplexed-stream"
RAW = "application/vnd.docker.raw-stream"
_STREAM_IDS = {"stdin": 0, "stdout": 1, "stderr": 2}
DEFAULT_DETACH_KEYS = b"\x10\x11"  # ctrl-p ctrl-q


def frame(stream: int, data: bytes) -> bytes:
    return struct.pack(">BxxxL", stream, len(data)) + data


def parse_filters(request: web.Request) -> dict[str, list[str]]:
    raw = request.query.get("filters")
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"invalid filters: {e}")
    if not isinstance(value, dict):
        raise InvalidArgument("invalid filters: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, items in value.items():
        # both {"k": ["v"]} and the legacy {"k": {"v": true}} shapes
        out[key] = list(items) if isinstance(items, list) else [k for k, v in items.items() if v]
    return out


_PS_FILTERS = {
    "id", "name", "status", "exited", "label", "health", "before", "since", "volume",
    "network", "is-task", "ancestor",
}  # fmt: skip


def _matches(
    c: Container, filters: dict[str, list[str]], bounds: dict[str, Container] | None = None
) -> bool:
    bounds = bounds or {}
    for key, values in filters.items():
        if key == "id":
            if not any(c.id.startswith(v) for v in values):
                return False
        elif key == "name":
            if not any(v.lstrip("/") in c.name for v in values):
                return False
        elif key == "status":
            if c.state.status.value not in values:
                return False
        elif key == "exited":
            if c.state.status.value != "exited" or str(c.state.exit_code) not in values:
                return False
        elif key == "label":
            for v in values:
                k, sep, want = v.partition("=")
                if k not in c.config.labels or (sep and c.config.labels[k] != want):
                    return False
        elif key == "health":
            status = (c.state.health or {}).get("Status") or "none"
            if status not in values:
                return False
        elif key in ("before", "since"):
            other = bounds[key]
            if key == "before" and not c.created < other.created:
                return False
            if key == "since" and not c.created > other.created:
                return False
        elif key == "volume":
            if not any(
                v in (m.name, m.source, m.destination) for m in c.mount_points for v in values
            ):
                return False
        elif key == "network":
            names = {c.host_config.network_mode}
            for net_id, req in c.networks.items():
                names |= {net_id, net_id[:12], req.network_name}
            if not any(v in names for v in values):
                return False
        elif key == "is-task":
            if any(v.lower() == "true" for v in values):
                return False  # no swarm tasks here
        elif key == "ancestor":
            if not any(
                v in (c.image_ref, c.image_id) or c.image_id.startswith("sha256:" + v)
                for v in values
            ):
                return False
        else:
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


async def list_containers(request: web.Request) -> web.Response:
    d = daemon_of(request)
    show_all = query_bool(request, "all")
    limit = query_int(request, "limit", -1) or -1
    filters = parse_filters(request)
    for key in filters:  # refused even when nothing would be matched against it
        if key not in _PS_FILTERS:
            raise InvalidArgument(f"invalid filter '{key}'")
    items = d.containers.list(
        all=show_all or limit > 0 or "status" in filters or "exited" in filters
    )
    bounds = {
        key: d.containers.get(filters[key][-1]) for key in ("before", "since") if filters.get(key)
    }
    items = [c for c in items if _matches(c, filters, bounds)]
    if limit > 0:
        items = items[:limit]
    if not query_bool(request, "size"):
        # rows come encoded from a per-container cache: only changed ones are re-encoded
        body = summaries.rows_json(items, d.containers.ids())
        return web.Response(body=body, content_type="application/json")
    out = [container_summary(c) for c in items]

    def sizes() -> list[tuple[int, int]]:
        result = []
        for c in items:
            rw = d.containers.size_rw(c)
            image_size = 0
            with contextlib.suppress(HafenError):
                image_size = d.images.resolve(c.image_id).size
            result.append((rw, rw + image_size))
        return result

    for item, (rw, root) in zip(out, await asyncio.to_thread(sizes), strict=True):
        item["SizeRw"], item["SizeRootFs"] = rw, root
    return web.Response(body=summaries.encode(out), content_type="application/json")


async def create(request: web.Request) -> web.Response:
    d = daemon_of(request)
    body = await json_body(request)
    config, host_config = container_config_from_api(body)
    endpoints = endpoints_config_from_api(body)
    warnings: list[str] = []
    c = await d.containers.create(
        request.query.get("name") or None, config, host_config, endpoints, warnings
    )
    return web.json_response({"Id": c.id, "Warnings": warnings}, status=201)


async def inspect(request: web.Request) -> web.Response:
    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    body = container_inspect(c, d.storage_driver)
    running = [r.id for r in d.containers.execs.of_container(c.id) if r.running]
    body["ExecIDs"] = running or None
    return web.json_response(body)


async def start(request: web.Request) -> web.Response:
    await daemon_of(request).containers.start(request.match_info["id"])
    return web.Response(status=204)


async def stop(request: web.Request) -> web.Response:
    d = daemon_of(request)
    await d.containers.stop(
        request.match_info["id"], query_int(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def restart(request: web.Request) -> web.Response:
    d = daemon_of(request)
    await d.containers.restart(
        request.match_info["id"], query_int(request, "t"), request.query.get("signal") or None
    )
    return web.Response(status=204)


async def rename(request: web.Request) -> web.Response:
    name = request.query.get("name", "")
    await daemon_of(request).containers.rename(request.match_info["id"], name)
    return web.Response(status=204)


async def kill(request: web.Request) -> web.Response:
    await daemon_of(request).containers.kill(request.match_info["id"], request.query.get("signal"))
    return web.Response(status=204)


async def remove(request: web.Request) -> web.Response:
    d = daemon_of(request)
    await d.containers.remove(
        request.match_info["id"],
        force=query_bool(request, "force"),
        volumes=query_bool(request, "v"),
    )
    return web.Response(status=204)


async def wait(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    ref = request.match_info["id"]
    condition = request.query.get("condition", "not-running")
    d.containers.get(ref)  # 404 before any header goes out
    waiter = d.containers.wait_registration(ref, condition)
    await asyncio.sleep(0)  # let the waiter register before the client hears back
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)  # headers now: the client may start the container
    try:
        state = await waiter
    except asyncio.CancelledError:
        waiter.cancel()
        raise
    error = {"Message": state.error} if state.error else None
    try:
        await response.write(
            json.dumps({"StatusCode": state.exit_code, "Error": error}).encode() + b"\n"
        )
        await response.write_eof()
    except ConnectionResetError:
        pass  # the client stopped waiting (an interrupted CLI): nobody to tell
    return response


async def resize(request: web.Request) -> web.Response:
    h = query_int(request, "h", 0) or 0
    w = query_int(request, "w", 0) or 0
    await daemon_of(request).containers.resize(request.match_info["id"], h, w)
    return web.Response(status=200)


def _timestamp_prefix(rec: LogRecord) -> bytes:
    return rec.time.encode() + b" "


async def logs(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    query = LogQuery(
        stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"),
        follow=query_bool(request, "follow"),
        since=_time_param(request, "since"),
        until=_time_param(request, "until"),
    )
    if not (query.stdout or query.stderr):
        raise InvalidArgument("Bad parameters: you must choose at least one stream")
    if c.host_config.log_type == "none":
        raise NotImplementedHere("configured logging driver does not support reading")
    tail = request.query.get("tail", "all")
    if tail not in ("all", ""):
        try:
            query.tail = max(int(tail), 0)
        except ValueError:
            raise InvalidArgument(f"invalid value for tail: {tail!r}")
    timestamps = query_bool(request, "timestamps")
    details = query_bool(request, "details")
    tty = c.config.tty
    response = web.StreamResponse(status=200, headers={"Content-Type": RAW if tty else MULTIPLEXED})
    await response.prepare(request)
    local = c.host_config.log_type == "local"
    async for batch in read_log_batches(c.log_path, query, lambda: c.state.running, local):
        # one write per chunk of the file (a write per line cost more than the reading)
        await response.write(await asyncio.to_thread(_render_logs, batch, tty, timestamps, details))
    await response.write_eof()
    return response


def _render_logs(
    records: list[LogRecord], tty: bool, timestamps: bool, details: bool = False
) -> bytes:
    """Log records as the client reads them: raw for a tty, else stream frames; with
    ``details`` each line starts with its attributes (``k=v,k2=v2 ``; a lone space when
    it has none), with ``timestamps`` with its time before that — dockerd's order."""
    parts = []
    for rec in records:
        data = rec.data
        if details:
            data = _details_prefix(rec.attrs) + data
        if timestamps:
            data = _timestamp_prefix(rec) + data
        parts.append(data if tty else frame(_STREAM_IDS[rec.stream], data))
    return b"".join(parts)


def _details_prefix(attrs: dict[str, str] | None) -> bytes:
    """dockerd's ``attrsByteSlice``: query-escaped ``key=value`` pairs joined by commas
    (sorted by key here: dockerd's order is a Go map's, i.e. random), then a space."""
    if not attrs:
        return b" "
    from urllib.parse import quote_plus

    pairs = (f"{quote_plus(k, safe='')}={quote_plus(v, safe='')}" for k, v in sorted(attrs.items()))
    return (",".join(pairs) + " ").encode()


def _time_param(request: web.Request, name: str) -> float:
    value = request.query.get(name, "")
    if not value or value == "0":
        return 0.0
    try:
        return float(value)
    except ValueError:
        try:
            return parse_rfc3339(value)
        except ValueError:
            raise InvalidArgument(f"invalid value for {name}: {value!r}")


async def attach(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    req = AttachRequest(
        stdin=query_bool(request, "stdin"),
        stdout=query_bool(request, "stdout"),
        stderr=query_bool(request, "stderr"),
    )
    # as dockerd: detach keys only cut a TTY's input; piped stdin passes through untouched
    detach_keys = _parse_detach_keys(request.query.get("detachKeys")) if c.config.tty else b""
    response, client = await hijack(request, RAW if c.config.tty else MULTIPLEXED)
    try:
        if query_bool(request, "logs"):
            query = LogQuery(stdout=req.stdout, stderr=req.stderr)
            local = c.host_config.log_type == "local"
            async for rec in read_logs(c.log_path, query, lambda: False, local):
                await client.write(
                    rec.data if c.config.tty else frame(_STREAM_IDS[rec.stream], rec.data)
                )
        if query_bool(request, "stream"):
            streams = await d.containers.attach(c.id, req)
            if streams is not None:
                await _pump(client, streams[0], streams[1], c.config.tty, req.stdin, detach_keys)
    except (ConnectionResetError, BrokenPipeError):
        pass
    finally:
        client.close()
    return response


def _parse_detach_keys(spec: str | None) -> bytes:
    if spec is None:
        return DEFAULT_DETACH_KEYS
    keys = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if len(part) == 1:
            keys.append(ord(part))
        elif part.startswith("ctrl-") and len(part) == 6:
            ch = part[5]
            code = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}.get(ch)
            keys.append(code if code is not None else (ord(ch.lower()) - ord("a") + 1))
        elif part:
            raise InvalidArgument(f"invalid detach keys: {spec!r}")
    return bytes(keys)


async def _pump(
    client: HijackedStream,
    shim_reader: asyncio.StreamReader,
    shim_writer: asyncio.StreamWriter,
    tty: bool,
    stdin: bool,
    detach_keys: bytes,
) -> None:
    """Copy container output to the client and client input to the container."""

    async def output() -> None:
        while True:
            try:
                header = await shim_reader.readexactly(8)
                _stream, size = struct.unpack(">BxxxL", header)
                payload = await shim_reader.readexactly(size)
            except asyncio.IncompleteReadError:
                return
            await client.write(payload if tty else header + payload)

    async def input_() -> None:
        matched = 0
        while True:
            data = await client.read()
            if not data:
                if stdin:
                    with contextlib.suppress(OSError):
                        shim_writer.write_eof()
                return
            if not stdin:
                continue
            if detach_keys:
                for i, byte in enumerate(data):
                    matched = (
                        matched + 1 if byte == detach_keys[matched] else int(byte == detach_keys[0])
                    )
                    if matched == len(detach_keys):
                        shim_writer.write(data[: max(0, i + 1 - len(detach_keys))])
                        raise _Detached
            shim_writer.write(data)
            await shim_writer.drain()

    out_task = asyncio.ensure_future(output())
    in_task = asyncio.ensure_future(input_())
    closed_task = asyncio.ensure_future(client.closed.wait())
    pending: set[asyncio.Future[Any]] = {out_task, in_task, closed_task}
    try:
        while True:
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            if out_task in done or closed_task in done:
                break  # the container's output ended, or the client left
            if in_task in done and in_task.exception() is not None:
                break  # detached (or the shim refused input)
            # stdin reached EOF: output keeps flowing until the container ends
    finally:
        for task in (out_task, in_task, closed_task):
            task.cancel()
        await asyncio.gather(out_task, in_task, closed_task, return_exceptions=True)
        shim_writer.close()


class _Detached(Exception):
    pass


def register(routes: Routes) -> None:
    routes.add("GET", "/containers/json", list_containers)
    routes.add("POST", "/containers/create", create)
    routes.add("GET", "/containers/{id}/json", inspect)
    routes.add("POST", "/containers/{id}/start", start)
    routes.add("POST", "/containers/{id}/stop", stop)
    routes.add("POST", "/containers/{id}/kill", kill)
    routes.add("POST", "/containers/{id}/restart", restart)
    routes.add("POST", "/containers/{id}/rename", rename)
    routes.add("POST", "/containers/{id}/wait", wait)
    routes.add("POST", "/containers/{id}/resize", resize)
    routes.add("GET", "/containers/{id}/logs", logs)
    routes.add("POST", "/containers/{id}/attach", attach)
    routes.add("DELETE", "/containers/{id}", remove)
