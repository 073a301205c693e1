"""Container → image routes: ``POST /commit``, ``GET /containers/{id}/changes`` (diff).

The container's snapshot is read through ``store.changes`` (overlay upper dir or vfs
comparison); the mount points the runtime creates for /etc/hosts, /etc/hostname and
/etc/resolv.conf are left out, as dockerd leaves them out.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body, query_bool
from hafen.containers.model import Container, ContainerStatus
from hafen.errors import HafenError, InvalidArgument
from hafen.images.commit import CommitOptions, commit_layer, write_layer
from hafen.images.reference import Reference, parse_reference

log = logging.getLogger("hafen.api")
_KINDS = {"C": 0, "A": 1, "D": 2}
_RUNTIME_FILES = frozenset({"etc/hosts", "etc/hostname", "etc/resolv.conf", ".dockerenv"})


def _exclude(rel: str) -> bool:
    return rel.strip("/") in _RUNTIME_FILES


def container_config(c: Container) -> dict[str, Any]:
    """The container's Config in Docker's shape (what commit bakes into the image)."""
    cfg = c.config
    return {
        "Cmd": cfg.cmd,
        "Entrypoint": cfg.entrypoint,
        "Env": list(cfg.env),
        "WorkingDir": cfg.working_dir,
        "User": cfg.user,
        "Labels": dict(cfg.labels),
        "StopSignal": cfg.stop_signal,
        "ExposedPorts": dict(cfg.exposed_ports),
        "Volumes": dict(cfg.volumes),
    }


async def changes(request: web.Request) -> web.Response:
    from hafen.store.changes import changes as snapshot_changes

    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    found = await asyncio.to_thread(
        snapshot_changes,
        d.snapshotter,
        c.snapshot_key,
        _exclude,
    )
    # /etc is copied up only to hold the runtime's mount points: not a change of its own
    # unless something else under it changed.
    found = [
        ch for ch in found
        if not (ch.kind == "C" and ch.path == "/etc"
                and not any(o.path.startswith("/etc/") for o in found))
    ]  # fmt: skip
    if not found:
        return web.json_response(None)
    return web.json_response([{"Path": ch.path, "Kind": _KINDS[ch.kind]} for ch in found])


def _target(repo: str, tag: str) -> list[str]:
    if not repo:
        return []
    base = parse_reference(repo, default_tag=False)
    if base.digest:
        raise InvalidArgument("refusing to create a tag with a digest reference")
    return [str(Reference(base.domain, base.path, tag or base.tag or "latest"))]


async def commit(request: web.Request) -> web.Response:
    """``POST /commit?container=&repo=&tag=&comment=&author=&pause=&changes=``."""
    from hafen.store.changes import export_changes

    d = daemon_of(request)
    ref = request.query.get("container", "")
    if not ref:
        raise InvalidArgument("container is required: the container to commit")
    c = d.containers.get(ref)
    body = await json_body(request)
    overrides = body if isinstance(body, dict) else {}
    config = container_config(c)
    config.update({k: v for k, v in overrides.items() if v not in (None, "", [], {})})
    options = CommitOptions(
        tags=_target(request.query.get("repo", ""), request.query.get("tag", "")),
        comment=request.query.get("comment", ""),
        author=request.query.get("author", ""),
        changes=tuple(request.query.getall("changes", [])),
        config=config,
        created_by=" ".join([*(c.config.entrypoint or []), *(c.config.cmd or [])]),
    )
    parent = await asyncio.to_thread(d.images.resolve, c.image_id)

    def make() -> str:
        with write_layer(
            d.images,
            lambda out: export_changes(d.snapshotter, c.snapshot_key, out, _exclude),
        ) as layer:
            return commit_layer(d.images, parent, layer, options).id

    # Docker's default: freeze a running container so its files hold still while read.
    paused = False
    if query_bool(request, "pause", True) and c.state.status == ContainerStatus.RUNNING:
        await d.containers.control.pause(c.id)
        paused = True
    try:
        image_id = await asyncio.to_thread(make)
    finally:
        if paused:
            await d.containers.control.unpause(c.id)
    return web.json_response({"Id": image_id}, status=201)


async def export(request: web.Request) -> web.StreamResponse:
    """``GET /containers/{id}/export``: the container's filesystem as a tar stream."""
    import os

    from hafen.images.export import export_snapshot

    d = daemon_of(request)
    c = d.containers.get(request.match_info["id"])
    read_fd, write_fd = os.pipe()
    reader = os.fdopen(read_fd, "rb")
    writer = os.fdopen(write_fd, "wb")

    def produce() -> None:
        try:
            export_snapshot(d.snapshotter, c.snapshot_key, writer, d.config.data_root / "tmp")
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
        reader.close()
        try:
            await task
        except (BrokenPipeError, HafenError, OSError) as e:
            log.warning("export of %s stopped: %s", c.short_id, e)
    await response.write_eof()
    return response


def register(routes: Routes) -> None:
    routes.add("GET", "/containers/{id}/export", export)
    routes.add("POST", "/commit", commit)
    routes.add("GET", "/containers/{id}/changes", changes)
