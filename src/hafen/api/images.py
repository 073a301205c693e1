"""Image routes of the Engine API (list, inspect, tag, delete) and hafen's bootstrap extension."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, query_bool
from hafen.containers.logs import parse_rfc3339
from hafen.errors import HafenError, InvalidArgument
from hafen.images.model import Image


def _image_config(image: Image) -> dict[str, Any]:
    return image.config.raw


def image_summary(image: Image) -> dict[str, Any]:
    raw = _image_config(image)
    return {
        "Id": image.id,
        "ParentId": "",
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Created": int(parse_rfc3339(image.created)) if image.created else 0,
        "Size": image.size,
        "SharedSize": -1,
        "VirtualSize": image.size,
        "Labels": (raw.get("config") or {}).get("Labels") or {},
        "Containers": -1,
    }


def image_inspect(image: Image, driver: str) -> dict[str, Any]:
    raw = _image_config(image)
    return {
        "Id": image.id,
        "RepoTags": list(image.repo_tags),
        "RepoDigests": list(image.repo_digests),
        "Parent": "",
        "Comment": raw.get("comment", ""),
        "Created": image.created,
        "DockerVersion": raw.get("docker_version", ""),
        "Author": raw.get("author", ""),
        "Config": raw.get("config") or {},
        "Architecture": raw.get("architecture", "amd64"),
        "Variant": raw.get("variant"),
        "Os": raw.get("os", "linux"),
        "Size": image.size,
        "VirtualSize": image.size,
        "GraphDriver": {"Name": driver, "Data": None},
        "RootFS": {"Type": "layers", "Layers": list(image.diff_ids)},
        "Metadata": {"LastTagTime": "0001-01-01T00:00:00Z"},
    }


async def list_images(request: web.Request) -> web.Response:
    d = daemon_of(request)
    images = await asyncio.to_thread(d.images.list, query_bool(request, "all"))
    return web.json_response([image_summary(i) for i in images])


async def inspect(request: web.Request) -> web.Response:
    d = daemon_of(request)
    image = await asyncio.to_thread(d.images.resolve, request.match_info["name"])
    return web.json_response(image_inspect(image, d.storage_driver))


async def tag(request: web.Request) -> web.Response:
    d = daemon_of(request)
    repo = request.query.get("repo", "")
    if not repo:
        raise InvalidArgument("repository name must have at least one component")
    new_ref = f"{repo}:{request.query.get('tag') or 'latest'}"
    await asyncio.to_thread(d.images.tag, request.match_info["name"], new_ref)
    image = await asyncio.to_thread(d.images.resolve, new_ref)
    d.events.publish("image", "tag", image.id, {"name": new_ref})
    return web.Response(status=201)


async def remove(request: web.Request) -> web.Response:
    d = daemon_of(request)
    force = query_bool(request, "force")
    name = request.match_info["name"]
    image = await asyncio.to_thread(d.images.resolve, name)
    items = await asyncio.to_thread(
        d.images.remove, name, force=force, in_use=d.containers.image_users
    )
    for item in items:
        if "Untagged" in item:
            d.events.publish("image", "untag", image.id, {"name": image.id})
        elif "Deleted" in item and item["Deleted"] == image.id:
            d.events.publish("image", "delete", image.id, {"name": image.id})
    return web.json_response(items)


async def bootstrap(request: web.Request) -> web.StreamResponse:
    """``POST /images/bootstrap?image=busybox&tag=busybox:latest`` (hafen extension)."""
    from hafen.images.bootstrap import bootstrap_busybox

    d = daemon_of(request)
    kind = request.query.get("image", "busybox")
    if kind != "busybox":
        raise InvalidArgument(f"cannot bootstrap {kind!r}: the supported base image is busybox")
    tag_ref = request.query.get("tag") or "busybox:latest"
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)

    async def send(message: dict[str, Any]) -> None:
        await response.write(json.dumps(message).encode() + b"\r\n")

    await send({"status": f"Bootstrapping {tag_ref} from Debian's busybox-static package"})
    try:
        result = await asyncio.to_thread(bootstrap_busybox, d.images, tag_ref)
    except HafenError as e:
        await send({"errorDetail": {"message": e.message}, "error": e.message})
    else:
        verb = "Built" if result.created else "Already present:"
        d.events.publish("image", "import", result.image_id, {"name": tag_ref})
        await send({"status": f"{verb} {result.image_id} as {tag_ref}"})
        await send({"aux": {"ID": result.image_id}})
    await response.write_eof()
    return response


def register(routes: Routes) -> None:
    routes.add("GET", "/images/json", list_images)
    routes.add("POST", "/images/bootstrap", bootstrap)
    routes.add("GET", "/images/{name:.+}/json", inspect)
    routes.add("POST", "/images/{name:.+}/tag", tag)
    routes.add("DELETE", "/images/{name:.+}", remove)
