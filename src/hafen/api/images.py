"""Image routes of the Engine API (list, inspect, tag, delete) and hafen's bootstrap extension."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, query_bool
from hafen.containers.logs import parse_rfc3339
from hafen.errors import HafenError, InvalidArgument
from hafen.images.model import Image

log = logging.getLogger("hafen.api")


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
    from hafen.api.containers import parse_filters
    from hafen.images.filters import filter_images

    filters = parse_filters(request)
    images = await asyncio.to_thread(d.images.list, query_bool(request, "all"))
    if filters:
        images = await asyncio.to_thread(filter_images, images, filters, d.images.resolve)
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


# ---------------------------------------------------------------------- save / load


async def _save(request: web.Request, names: list[str]) -> web.StreamResponse:
    import os

    from hafen.images.save import save_images

    d = daemon_of(request)
    if not names:
        raise InvalidArgument("no images to save: name at least one")
    for name in names:  # a missing image is a 404, before the stream starts
        await asyncio.to_thread(d.images.resolve, name)
    spool = d.config.data_root / "tmp"
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb")

    def produce() -> None:
        try:
            save_images(d.images, names, writer, spool)
        finally:
            try:
                writer.close()
            except BrokenPipeError:
                pass

    task = asyncio.create_task(asyncio.to_thread(produce))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/x-tar"})
    try:
        await response.prepare(request)
        while chunk := await asyncio.to_thread(reader.read, 1024 * 1024):
            await response.write(chunk)
    finally:
        reader.close()  # a client gone makes the producer stop on a broken pipe
        try:
            await task
        except (BrokenPipeError, HafenError) as e:
            log.warning("save of %s stopped: %s", names, e)
    await response.write_eof()
    return response


async def save_one(request: web.Request) -> web.StreamResponse:
    """``GET /images/{name}/get``."""
    return await _save(request, [request.match_info["name"]])


async def save_many(request: web.Request) -> web.StreamResponse:
    """``GET /images/get?names=a&names=b``."""
    return await _save(request, request.query.getall("names", []))


async def load(request: web.Request) -> web.StreamResponse:
    """``POST /images/load``: a docker-archive or OCI layout tar in the body."""
    import tempfile
    from pathlib import Path

    from hafen.images.load import load_archive

    d = daemon_of(request)
    spool = d.config.data_root / "tmp"
    spool.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=spool, prefix="load-")
    path = Path(name)
    try:
        with open(fd, "wb") as f:
            async for chunk in request.content.iter_chunked(1024 * 1024):
                await asyncio.to_thread(f.write, chunk)
        loaded = await asyncio.to_thread(load_archive, d.images, path)
    finally:
        path.unlink(missing_ok=True)
        path.with_suffix(".plain").unlink(missing_ok=True)
    lines: list[str] = []
    for item in loaded:
        if item.tags:
            lines.extend(f"Loaded image: {t}\n" for t in item.tags)
        else:
            lines.append(f"Loaded image ID: {item.image_id}\n")
    body = b"".join(json.dumps({"stream": line}).encode() + b"\r\n" for line in lines)
    return web.Response(body=body, content_type="application/json")


async def history(request: web.Request) -> web.Response:
    """``GET /images/{name}/history``."""
    from hafen.images.history import image_history

    d = daemon_of(request)
    image = await asyncio.to_thread(d.images.resolve, request.match_info["name"])
    entries = await asyncio.to_thread(image_history, d.images, image)
    return web.json_response([
        {
            "Id": e.id,
            "Created": int(parse_rfc3339(e.created)) if e.created else 0,
            "CreatedBy": e.created_by,
            "Tags": e.tags or None,
            "Size": e.size,
            "Comment": e.comment,
        }
        for e in entries
    ])  # fmt: skip


async def prune(request: web.Request) -> web.Response:
    """``POST /images/prune?filters=``: dangling images, or all unused with dangling=false."""
    from hafen.api.containers import parse_filters
    from hafen.images.prune import prune_images

    d = daemon_of(request)
    filters = parse_filters(request)
    report = await asyncio.to_thread(
        prune_images, d.images, all_images=False, filters=filters,
        in_use=d.containers.image_users,
    )  # fmt: skip
    return web.json_response(
        {"ImagesDeleted": report.deleted or None, "SpaceReclaimed": report.reclaimed}
    )


def register(routes: Routes) -> None:
    routes.add("GET", "/images/json", list_images)
    routes.add("GET", "/images/get", save_many)
    routes.add("POST", "/images/load", load)
    routes.add("POST", "/images/prune", prune)
    routes.add("GET", "/images/{name:.+}/get", save_one)
    routes.add("GET", "/images/{name:.+}/history", history)
    routes.add("POST", "/images/bootstrap", bootstrap)
    routes.add("GET", "/images/{name:.+}/json", inspect)
    routes.add("POST", "/images/{name:.+}/tag", tag)
    routes.add("DELETE", "/images/{name:.+}", remove)
