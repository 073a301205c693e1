"""``POST /build`` (Docker's classic builder API) and ``POST /build/prune``.

The request body is the context tar; the query carries Docker's parameters (``t`` may
repeat; ``buildargs``, ``labels`` and ``cachefrom`` are JSON). The answer is Docker's
JSON message stream: ``{"stream": "Step 1/3 : FROM busybox\\n"}`` lines as the build
goes, ``{"aux": {"ID": "sha256:…"}}`` for the result, or ``{"error": …,
"errorDetail": {"code": …, "message": …}}`` when a step fails (after the response has
started, the status stays 200, as Docker's does).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, query_bool
from hafen.build.context import ContextReceiver
from hafen.build.executor import BuildFailed
from hafen.build.plan import BuildOptions
from hafen.errors import HafenError, InvalidArgument

_CHUNK = 1024 * 1024


def _json_query(request: web.Request, name: str, default: Any) -> Any:
    raw = request.query.get(name)
    if not raw:
        return default
    try:
        return json.loads(raw)
    except ValueError:
        raise InvalidArgument(f"invalid JSON in query parameter {name}: {raw!r}")


def build_options(request: web.Request) -> BuildOptions:
    build_args = _json_query(request, "buildargs", {})
    labels = _json_query(request, "labels", {})
    cache_from = _json_query(request, "cachefrom", [])
    if not isinstance(build_args, dict):
        raise InvalidArgument("buildargs must be a JSON object")
    if not isinstance(labels, dict):
        raise InvalidArgument("labels must be a JSON object")
    if not isinstance(cache_from, list):
        raise InvalidArgument("cachefrom must be a JSON list")
    if request.query.get("version") == "2":
        raise InvalidArgument(
            "BuildKit builds (version=2) are not supported by hafend: build with the classic "
            "builder (DOCKER_BUILDKIT=0) or hafen build"
        )
    if request.query.get("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as a tar")
    network = request.query.get("networkmode", "") or "default"
    if network not in ("default", "none", "bridge"):
        raise InvalidArgument(f"network mode {network!r} is not supported for builds")
    return BuildOptions(
        tags=[t for t in request.query.getall("t", []) if t],
        build_args={str(k): (None if v is None else str(v)) for k, v in build_args.items()},
        target=request.query.get("target", ""),
        no_cache=query_bool(request, "nocache"),
        pull=query_bool(request, "pull"),
        labels={str(k): str(v) for k, v in labels.items()},
        cache_from=[str(c) for c in cache_from],
        network_mode=network,
        platform=request.query.get("platform", ""),
    )


async def _receive_context(request: web.Request, receiver: ContextReceiver) -> None:
    """Feed the request body to the receiver as it arrives, in ~1 MiB batches handled by
    a worker thread while the next batch is read (write, parse and hash overlap the
    socket reads; nothing is held whole in memory)."""
    feeding: asyncio.Future[None] | None = None
    batch: list[bytes] = []
    size = 0
    try:
        async for data in request.content.iter_any():
            batch.append(data)
            size += len(data)
            if size >= _CHUNK:
                if feeding is not None:
                    await feeding
                feeding = asyncio.ensure_future(asyncio.to_thread(receiver.feed, b"".join(batch)))
                batch, size = [], 0
        if feeding is not None:
            await feeding
            feeding = None
        if batch:
            await asyncio.to_thread(receiver.feed, b"".join(batch))
    except BaseException:
        if feeding is not None:
            with contextlib.suppress(BaseException):
                await feeding
        raise


async def build(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    opts = build_options(request)
    quiet = query_bool(request, "q")
    dockerfile_name = request.query.get("dockerfile") or "Dockerfile"
    work = d.config.data_root / "build"
    receiver = await asyncio.to_thread(ContextReceiver, work)
    try:
        await _receive_context(request, receiver)
    except BaseException:
        await asyncio.to_thread(receiver.abort)
        raise
    ctx = await asyncio.to_thread(receiver.finish, dockerfile_name)

    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def emit(text: str) -> None:
        if not quiet and text:
            queue.put_nowait({"stream": text})

    async def writer() -> None:
        while (message := await queue.get()) is not None:
            with contextlib.suppress(ConnectionResetError):
                await response.write(json.dumps(message).encode() + b"\r\n")

    writing = asyncio.create_task(writer())
    try:
        image_id = await d.builder.build(ctx, opts, emit)
    except BuildFailed as e:
        queue.put_nowait(
            {"errorDetail": {"code": e.code, "message": e.message}, "error": e.message}
        )
    except HafenError as e:
        queue.put_nowait({"errorDetail": {"message": e.message}, "error": e.message})
    else:
        queue.put_nowait({"aux": {"ID": image_id}})
        if quiet:
            queue.put_nowait({"stream": image_id + "\n"})
    finally:
        queue.put_nowait(None)
        await writing
        await asyncio.to_thread(ctx.close)
    with contextlib.suppress(ConnectionResetError):
        await response.write_eof()
    return response


async def prune(request: web.Request) -> web.Response:
    d = daemon_of(request)
    result = await d.builder.prune(in_use=d.containers.image_users)
    return web.json_response(
        {"CachesDeleted": result.image_ids, "SpaceReclaimed": result.space_reclaimed}
    )


def register(routes: Routes) -> None:
    routes.add("POST", "/build", build)
    routes.add("POST", "/build/prune", prune)
