"""``POST /build`` (Docker's classic builder API) and ``POST /build/prune``.

The request body is the context tar; the query carries Docker's parameters (``t`` may
repeat; ``buildargs``, ``labels`` and ``cachefrom`` are JSON). The answer is Docker's
JSON message stream: ``{"stream": "Step 1/3 : FROM busybox\\n"}`` lines as the build
goes, ``{"aux": {"ID": "sha256:…"}}`` for the result, or ``{"error": …,
"errorDetail": {"code": …, "message": …}}`` when a step fails (after the response has
started, the status stays 200, as Docker's does).

Every parameter of Docker's API is either honoured or refused with a message, never
ignored: ``rm``/``forcerm`` decide which RUN containers are removed; ``memory``,
``memswap``, ``cpushares``, ``cpusetcpus``, ``cpuperiod``, ``cpuquota``, ``shmsize`` and
``extrahosts`` apply to every RUN container; ``platform`` must be this host's (RUN steps
run natively) and is checked against each base image; ``X-Registry-Config`` supplies
credentials for FROM images that must be pulled. ``remote``, ``squash``, ``outputs`` and
``version=2`` (BuildKit) are refused. ``X-Hafen-Build-Secrets`` (hafen's own header)
carries ``RUN --mount=type=secret`` secrets.

``POST /hafen/build/context`` (hafen's own) starts an incremental context transfer: the
body is the client's manifest, the answer a session and the members to send; the
``/build`` that names the session (``X-Hafen-Context-Session``) then carries only those
(``hafen.build.contextsync``).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, query_bool, query_int
from hafen.build.context import ContextReceiver
from hafen.build.contextsync import SyncPlan, parse_manifest
from hafen.build.executor import BuildFailed
from hafen.build.plan import BuildOptions
from hafen.build.runstep import RunResources
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


# Docker's /build parameters for BuildKit or experimental daemons: refused when set
_REFUSED = {
    "squash": "squashing build layers (squash) is an experimental Docker feature hafen does "
    "not have: flatten the image with export/import instead",
    "outputs": "build outputs (outputs) are a BuildKit feature: hafen builds into its image store",
}


def _platform(request: web.Request) -> str:
    """``platform``: hafen runs RUN steps natively, so only this host's platform is built."""
    from hafen.distribution.manifests import host_platform, parse_platform

    text = request.query.get("platform", "")
    if not text:
        return ""
    wanted, host = parse_platform(text), host_platform()
    if wanted.os != host.os or wanted.architecture != host.architecture:
        raise InvalidArgument(
            f"platform {text} cannot be built here: hafen runs RUN steps natively on this "
            f"{host.os}/{host.architecture} host (no emulation)"
        )
    return f"{wanted.os}/{wanted.architecture}"


def _resources(request: web.Request) -> RunResources:
    """memory, memswap, cpu*, shmsize, extrahosts: set on every RUN container."""

    def number(name: str) -> int:
        value = query_int(request, name, 0) or 0
        if value < 0 and name != "memswap":
            raise InvalidArgument(f"invalid value for query parameter {name}: must not be negative")
        return value

    shm = number("shmsize")  # 0 is "not set" (the 20.10 docker CLI always sends shmsize=0)
    hosts_raw = request.query.get("extrahosts", "")
    hosts = [h for h in hosts_raw.replace(",", " ").split() if h]
    for host in hosts:
        name, sep, address = host.partition(":")
        if not sep or not name or not address:
            raise InvalidArgument(f"invalid extra host {host!r}: expected host:ip")
    return RunResources(
        memory=number("memory"),
        memory_swap=number("memswap"),
        cpu_shares=number("cpushares"),
        cpuset_cpus=request.query.get("cpusetcpus", ""),
        cpu_period=number("cpuperiod"),
        cpu_quota=number("cpuquota"),
        shm_size=shm,
        extra_hosts=hosts,
    )


def _registry_config(request: web.Request) -> dict[str, Any]:
    """``X-Registry-Config``: credentials by registry, for FROM images that must be pulled."""
    from hafen.distribution.credentials import decode_registry_config

    return decode_registry_config(request.headers.get("X-Registry-Config", ""))


def _secrets(request: web.Request) -> dict[str, bytes]:
    """hafen's own ``X-Hafen-Build-Secrets`` header (base64 JSON ``{id: base64}``), which
    ``hafen build --secret`` sends: the classic API has no other way to carry them."""
    raw = request.headers.get("X-Hafen-Build-Secrets", "")
    if not raw:
        return {}
    try:
        data = json.loads(base64.b64decode(raw, validate=True))
        if not isinstance(data, dict):
            raise ValueError("not an object")
        return {str(k): base64.b64decode(str(v), validate=True) for k, v in data.items()}
    except (ValueError, binascii.Error):
        raise InvalidArgument(
            "invalid X-Hafen-Build-Secrets header: expected base64 JSON {id: base64 content}"
        ) from None


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
    if request.query.get("version", "1") not in ("", "1"):
        raise InvalidArgument(f"unknown builder version {request.query['version']!r} (1)")
    if request.query.get("remote"):
        raise InvalidArgument("remote build contexts are not supported: send the context as a tar")
    for name, why in _REFUSED.items():
        value = request.query.get(name, "")
        if value and (name == "outputs" or query_bool(request, name)):
            raise InvalidArgument(why)
    # what older docker CLIs send beyond the documented list: accepted when empty
    for name in ("cgroupparent", "cpusetmems", "ulimits", "isolation"):
        value = request.query.get(name, "")
        if value not in ("", "null", "[]", "default"):
            raise InvalidArgument(f"the build parameter {name} is not supported by hafend")
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
        platform=_platform(request),
        secrets=_secrets(request),
        rm=query_bool(request, "rm", True),
        force_rm=query_bool(request, "forcerm"),
        resources=_resources(request),
        registry_auth=_registry_config(request),
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


async def context_session(request: web.Request) -> web.Response:
    """Compare the client's manifest with its cached context: what must be sent."""
    d = daemon_of(request)
    raw = await request.read()

    def work() -> SyncPlan:  # a manifest of a big context takes a while to parse
        try:
            body = json.loads(raw)
        except ValueError as e:
            raise InvalidArgument(f"invalid JSON in the context manifest: {e}") from None
        key, manifest = parse_manifest(body)
        return d.builder.contexts.plan(key, manifest)

    plan = await asyncio.to_thread(work)
    return web.json_response({"Session": plan.token, "Need": plan.need})


async def build(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    opts = build_options(request)
    quiet = query_bool(request, "q")
    dockerfile_name = request.query.get("dockerfile") or "Dockerfile"
    work = d.config.data_root / "build"
    token = request.headers.get("X-Hafen-Context-Session")
    contexts = d.builder.contexts
    plan = contexts.take(token) if token else None
    if plan is not None:
        receiver = await asyncio.to_thread(contexts.receiver, plan, work)
    else:
        receiver = await asyncio.to_thread(ContextReceiver, work)
    try:
        await _receive_context(request, receiver)
    except BaseException:
        await asyncio.to_thread(receiver.abort)
        raise
    expected = plan.needed_paths() if plan is not None else []
    ctx = await asyncio.to_thread(receiver.finish, dockerfile_name, None, expected)
    if plan is not None:
        contexts.keep(plan, receiver, ctx)

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
    routes.add("POST", "/hafen/build/context", context_session)
    routes.add("POST", "/build", build)
    routes.add("POST", "/build/prune", prune)
