"""Engine API routes on a live container's resources: pause, unpause, update, top, stats.

Owns Docker's JSON for ``/containers/{id}/top`` ({"Titles", "Processes"}) and
``/containers/{id}/stats`` (cpu_stats/precpu_stats, memory_stats, pids_stats,
blkio_stats; streamed once a second, or one object for ``stream=false``, which like
dockerd waits for a second sample so that the CPU percentage can be computed, unless
``one-shot=true``).
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body, query_bool
from hafen.containers.control import StatsSample
from hafen.containers.model import Container
from hafen.errors import HafenError, InvalidArgument

_ZERO_TIME = "0001-01-01T00:00:00Z"


async def pause(request: web.Request) -> web.Response:
    await daemon_of(request).containers.control.pause(request.match_info["id"])
    return web.Response(status=204)


async def unpause(request: web.Request) -> web.Response:
    await daemon_of(request).containers.control.unpause(request.match_info["id"])
    return web.Response(status=204)


async def update(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("update: the body must be a JSON object")
    warnings = await daemon_of(request).containers.control.update(request.match_info["id"], body)
    return web.json_response({"Warnings": warnings})


async def top(request: web.Request) -> web.Response:
    control = daemon_of(request).containers.control
    titles, rows = await control.top(request.match_info["id"], request.query.get("ps_args", ""))
    return web.json_response({"Titles": titles, "Processes": rows})


def _rfc3339(t: float) -> str:
    frac = f"{t % 1:.9f}"[2:]
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{frac}Z"


def _cpu(s: StatsSample | None) -> dict[str, Any]:
    if s is None:
        return {
            "cpu_usage": {"total_usage": 0, "usage_in_kernelmode": 0, "usage_in_usermode": 0},
            "throttling_data": {"periods": 0, "throttled_periods": 0, "throttled_time": 0},
        }
    return {
        "cpu_usage": {
            "total_usage": s.cpu_total,
            "percpu_usage": s.percpu or None,
            "usage_in_kernelmode": s.cpu_kernel,
            "usage_in_usermode": s.cpu_user,
        },
        "system_cpu_usage": s.system_cpu,
        "online_cpus": s.online_cpus,
        "throttling_data": {
            "periods": s.throttling.get("periods", 0),
            "throttled_periods": s.throttling.get("throttledPeriods", 0),
            "throttled_time": s.throttling.get("throttledTime", 0),
        },
    }


def _memory(s: StatsSample | None) -> dict[str, Any]:
    if s is None:
        return {}
    return {
        "usage": s.mem_usage,
        "max_usage": s.mem_max,
        "stats": s.mem_stats,
        "limit": s.mem_limit,
    }


def stats_json(c: Container, s: StatsSample | None, pre: StatsSample | None) -> dict[str, Any]:
    """Docker's stats object for sample ``s`` (None: a stopped container, all zeros)."""
    blkio = [
        {"major": b["major"], "minor": b["minor"], "op": b["op"], "value": b["value"]}
        for b in (s.blkio if s else [])
    ]
    return {
        "read": _rfc3339(s.read) if s else _ZERO_TIME,
        "preread": _rfc3339(pre.read) if pre else _ZERO_TIME,
        "pids_stats": {"current": s.pids_current, "limit": s.pids_limit} if s else {},
        "blkio_stats": {
            "io_service_bytes_recursive": blkio or None,
            "io_serviced_recursive": None,
            "io_queue_recursive": None,
            "io_service_time_recursive": None,
            "io_wait_time_recursive": None,
            "io_merged_recursive": None,
            "io_time_recursive": None,
            "sectors_recursive": None,
        },
        "num_procs": 0,
        "storage_stats": {},
        "cpu_stats": _cpu(s),
        "precpu_stats": _cpu(pre),
        "memory_stats": _memory(s),
        "name": "/" + c.name,
        "id": c.id,
    }


async def stats(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    control = d.containers.control
    stream = query_bool(request, "stream", True)
    one_shot = query_bool(request, "one-shot", False)
    if not c.state.running:
        if stream:
            raise InvalidArgument("cannot stream stats of a container that is not running")
        return web.json_response(stats_json(c, None, None))
    if not stream:
        first = await control.stats(c.id)
        if one_shot:
            return web.json_response(stats_json(c, first, None))
        await asyncio.sleep(1)
        second = await control.stats(c.id)
        return web.json_response(stats_json(c, second, first))
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    pre: StatsSample | None = None
    try:
        while c.state.running:
            sample = await control.stats(c.id)
            await resp.write(json.dumps(stats_json(c, sample, pre)).encode() + b"\n")
            pre = sample
            await asyncio.sleep(1)
    except ConnectionResetError:
        pass  # the client went away
    except (HafenError, OSError):
        pass  # the container stopped between two samples: the stream ends
    return resp


def register(routes: Routes) -> None:
    routes.add("POST", "/containers/{id}/pause", pause)
    routes.add("POST", "/containers/{id}/unpause", unpause)
    routes.add("POST", "/containers/{id}/update", update)
    routes.add("GET", "/containers/{id}/top", top)
    routes.add("GET", "/containers/{id}/stats", stats)
