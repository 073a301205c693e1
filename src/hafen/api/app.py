"""The aiohttp application: routing with and without the ``/v1.NN`` prefix, errors, headers.

Every ``HafenError`` becomes its HTTP status with Docker's ``{"message": "..."}`` body,
here and nowhere else.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web

from hafen import API_VERSION, MIN_API_VERSION, __version__
from hafen.daemon.daemon import Daemon
from hafen.errors import HafenError, InvalidArgument, NotModified

log = logging.getLogger("hafen.api")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
DAEMON_KEY = web.AppKey("daemon", Daemon)
_VERSION_PREFIX = re.compile(r"^/v(\d+\.\d+)(/.*)$")

SERVER_HEADERS = {
    "Api-Version": API_VERSION,
    "Docker-Experimental": "false",
    "Ostype": "linux",
    "Server": f"hafen/{__version__} (linux)",
}


def daemon_of(request: web.Request) -> Daemon:
    return request.app[DAEMON_KEY]


def error_response(status: int, message: str) -> web.Response:
    # exactly "application/json": the docker CLI decodes an error body only then, and
    # would otherwise print the raw JSON
    body = json.dumps({"message": message}).encode() + b"\n"
    headers = {**SERVER_HEADERS, "Content-Type": "application/json"}
    return web.Response(body=body, status=status, headers=headers)


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except NotModified:
        return web.Response(status=304, headers=SERVER_HEADERS)
    except HafenError as e:
        if e.status >= 500:
            log.error("%s %s: %s", request.method, request.path, e.message)
        return error_response(e.status, e.message)
    except web.HTTPException as e:
        if e.status == 404:
            return error_response(404, f"page not found: {request.path}")
        if e.status == 405:
            return error_response(405, f"method {request.method} not allowed on {request.path}")
        raise
    except ConnectionResetError:
        raise
    except Exception as e:
        log.exception("%s %s failed", request.method, request.path)
        return error_response(500, f"internal error: {e}")


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if not response.prepared:
        for key, value in SERVER_HEADERS.items():
            response.headers.setdefault(key, value)
    return response


@web.middleware
async def trace_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Log each request's time in the daemon (``HAFEN_TRACE_REQUESTS=1``: for profiling).

    Measured from routing to the handler's return: for a hijacked or streamed response
    that is the whole stream."""
    start = time.perf_counter()
    try:
        return await handler(request)
    finally:
        log.info(
            "trace %s %s %.1f ms",
            request.method,
            request.path,
            (time.perf_counter() - start) * 1000,
        )


def _strip_version(request: web.Request) -> str | None:
    match = _VERSION_PREFIX.match(request.path)
    return match.group(1) if match else None


@web.middleware
async def version_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    version = request.match_info.get("api_version")
    if version:
        if _vtuple(version) > _vtuple(API_VERSION):
            return error_response(
                400,
                f"client version {version} is too new. Maximum supported API version is {API_VERSION}",
            )
        if _vtuple(version) < _vtuple(MIN_API_VERSION):
            return error_response(
                400,
                f"client version {version} is too old. Minimum supported API version is "
                f"{MIN_API_VERSION}, please upgrade your client to a newer version",
            )
    return await handler(request)


def _vtuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in v.split("."))


class Routes:
    """Registers each route twice: bare and under ``/v{version}``."""

    def __init__(self, app: web.Application) -> None:
        self.app = app

    def add(self, method: str, path: str, handler: Handler) -> None:
        self.app.router.add_route(method, path, handler)
        self.app.router.add_route(method, r"/v{api_version:\d+\.\d+}" + path, handler)


async def json_body(request: web.Request) -> Any:
    if not request.can_read_body:
        return {}
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        return json.loads(raw)
    except json.JSONDecodeError as e:
        raise InvalidArgument(f"invalid JSON in request body: {e}")


def query_bool(request: web.Request, name: str, default: bool = False) -> bool:
    value = request.query.get(name)
    if value is None:
        return default
    return value.lower() not in ("", "0", "false", "no")


def query_int(request: web.Request, name: str, default: int | None = None) -> int | None:
    value = request.query.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidArgument(
            f"invalid value for query parameter {name}: {value!r} is not an integer"
        )


def build_app(daemon: Daemon) -> web.Application:
    from hafen.api import (
        archive,
        build,
        commit,
        containers,
        disk,
        distribution,
        events,
        exec,
        images,
        networks,
        resources,
        system,
        volumes,
    )

    middlewares: list[Any] = [headers_middleware, errors_middleware, version_middleware]
    if os.environ.get("HAFEN_TRACE_REQUESTS"):
        middlewares.insert(0, trace_middleware)
    app = web.Application(
        middlewares=middlewares,
        client_max_size=1024**4,
    )
    app[DAEMON_KEY] = daemon
    routes = Routes(app)
    system.register(routes)
    disk.register(routes)
    containers.register(routes)
    resources.register(routes)
    exec.register(routes)
    archive.register(routes)
    distribution.register(routes)
    commit.register(routes)
    events.register(routes)
    images.register(routes)
    volumes.register(routes)
    build.register(routes)
    networks.register(routes)
    return app
