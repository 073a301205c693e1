"""Volume routes of the Engine API: list, create, inspect, remove, prune (Docker's JSON)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body, query_bool
from hafen.api.containers import parse_filters
from hafen.errors import InvalidArgument
from hafen.volumes.model import Volume
from hafen.volumes.service import label_filter_matches


def volume_to_api(v: Volume, users: int | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "CreatedAt": v.created_at,
        "Driver": v.driver,
        "Labels": v.labels or None,
        "Mountpoint": v.mountpoint,
        "Name": v.name,
        "Options": v.options or None,
        "Scope": "local",
    }
    if users is not None:
        out["UsageData"] = {"RefCount": users, "Size": -1}
    return out


def _string_map(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid value for {key}: expected an object of strings")
    return {str(k): v for k, v in value.items()}


async def list_volumes(request: web.Request) -> web.Response:
    d = daemon_of(request)
    filters = parse_filters(request)
    for key in filters:
        if key not in ("dangling", "driver", "label", "name"):
            raise InvalidArgument(f"invalid filter '{key}'")
    volumes = await asyncio.to_thread(d.volumes.list)
    out = []
    for v in volumes:
        if "name" in filters and not any(n in v.name for n in filters["name"]):
            continue
        if "driver" in filters and v.driver not in filters["driver"]:
            continue
        if "label" in filters and not label_filter_matches(v.labels, filters["label"]):
            continue
        if "dangling" in filters:
            want = filters["dangling"][0].lower() in ("1", "true")
            if bool(d.volumes.users(v.name)) == want:
                continue
        out.append(volume_to_api(v))
    return web.json_response({"Volumes": out, "Warnings": None})


async def create(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    name = body.get("Name") or None
    driver = body.get("Driver") or "local"
    if name is not None and not isinstance(name, str):
        raise InvalidArgument("invalid value for Name: expected a string")
    if not isinstance(driver, str):
        raise InvalidArgument("invalid value for Driver: expected a string")
    volume = await asyncio.to_thread(
        daemon_of(request).volumes.create,
        name,
        driver,
        _string_map(body, "DriverOpts"),
        _string_map(body, "Labels"),
    )
    daemon_of(request).events.publish("volume", "create", volume.name, {"driver": volume.driver})
    return web.json_response(volume_to_api(volume), status=201)


async def inspect(request: web.Request) -> web.Response:
    volume = await asyncio.to_thread(daemon_of(request).volumes.get, request.match_info["name"])
    return web.json_response(volume_to_api(volume))


async def remove(request: web.Request) -> web.Response:
    await asyncio.to_thread(
        daemon_of(request).volumes.remove,
        request.match_info["name"],
        query_bool(request, "force"),
    )
    daemon_of(request).events.publish("volume", "destroy", request.match_info["name"], {})
    return web.Response(status=204)


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request)
    for key in filters:
        if key not in ("label", "all"):
            raise InvalidArgument(f"invalid filter '{key}'")
    include_named = any(v.lower() in ("1", "true") for v in filters.get("all", []))
    deleted, reclaimed = await asyncio.to_thread(
        daemon_of(request).volumes.prune, include_named, filters.get("label", [])
    )
    for name in deleted:
        daemon_of(request).events.publish("volume", "destroy", name, {})
    return web.json_response({"VolumesDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def register(routes: Routes) -> None:
    routes.add("GET", "/volumes", list_volumes)
    routes.add("POST", "/volumes/create", create)
    routes.add("POST", "/volumes/prune", prune)
    routes.add("GET", "/volumes/{name}", inspect)
    routes.add("DELETE", "/volumes/{name}", remove)
