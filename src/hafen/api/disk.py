"""Disk usage and clean-up: ``GET /system/df`` and ``POST /containers/prune``.

Prune filters are Docker's: ``until`` (a unix time, RFC 3339 time or a Go duration
before now) and ``label`` / ``label!`` (``key`` or ``key=value``). Sizes are measured in
worker threads (they walk directories).
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of
from hafen.api.containers import parse_filters
from hafen.api.convert import container_summary
from hafen.api.images import image_summary
from hafen.containers.logs import parse_rfc3339
from hafen.containers.model import Container
from hafen.errors import InvalidArgument

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ns|us|µs|ms|s|m|h)")
_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_until(value: str, now: float | None = None) -> float:
    """A prune ``until`` as unix seconds."""
    now = time.time() if now is None else now
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return float(text)
    if text and _DURATION.sub("", text) == "":
        return now - sum(float(n) * _UNITS[u] for n, u in _DURATION.findall(text))
    try:
        return parse_rfc3339(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise InvalidArgument(f"invalid filter 'until={value}'") from None


def label_matcher(filters: dict[str, list[str]]) -> Callable[[dict[str, str]], bool]:
    wanted = filters.get("label", [])
    unwanted = filters.get("label!", [])

    def has(labels: dict[str, str], spec: str) -> bool:
        key, sep, value = spec.partition("=")
        return key in labels and (not sep or labels[key] == value)

    def accept(labels: dict[str, str]) -> bool:
        return all(has(labels, s) for s in wanted) and not any(has(labels, s) for s in unwanted)

    return accept


async def prune_containers(request: web.Request) -> web.Response:
    d = daemon_of(request)
    filters = parse_filters(request)
    for key in filters:
        if key not in ("until", "label", "label!"):
            raise InvalidArgument(f"invalid filter '{key}'")
    until = [parse_until(v) for v in filters.get("until", [])]
    labels_ok = label_matcher(filters)

    def accept(c: Container) -> bool:
        created = parse_rfc3339(c.created)
        return all(created < u for u in until) and labels_ok(c.config.labels)

    deleted, reclaimed = await d.containers.prune(accept)
    return web.json_response({"ContainersDeleted": deleted or None, "SpaceReclaimed": reclaimed})


def _dir_size(path: Path) -> int:
    total = 0
    for dirpath, _dirs, files in os.walk(path):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_size
            except OSError:
                pass
    return total


async def system_df(request: web.Request) -> web.Response:
    d = daemon_of(request)
    containers = d.containers.list(all=True)
    images = await asyncio.to_thread(d.images.list, False)

    def measure() -> tuple[dict[str, int], list[dict[str, Any]]]:
        sizes = {c.id: d.containers.size_rw(c) for c in containers}
        volumes: list[dict[str, Any]] = []
        service = getattr(d, "volumes", None)
        if service is not None:
            from hafen.api.volumes import volume_to_api

            for v in service.list():
                users = len(d.containers.volume_users(v.name))
                item = volume_to_api(v, users)
                item["UsageData"]["Size"] = _dir_size(Path(v.mountpoint))
                volumes.append(item)
        return sizes, volumes

    sizes, volumes = await asyncio.to_thread(measure)
    image_items = []
    layers_size = 0
    for image in images:
        item = image_summary(image)
        item["Containers"] = sum(1 for c in containers if c.image_id == image.id)
        item["SharedSize"] = 0  # layers are counted once, in LayersSize
        image_items.append(item)
        layers_size += image.size
    container_items = []
    for c in containers:
        item = container_summary(c)
        item["SizeRw"] = sizes.get(c.id, 0)
        item["SizeRootFs"] = sizes.get(c.id, 0) + next(
            (i.size for i in images if i.id == c.image_id), 0
        )
        container_items.append(item)
    return web.json_response(
        {
            "LayersSize": layers_size,
            "Images": image_items,
            "Containers": container_items,
            "Volumes": volumes,
            "BuildCache": [],
        }
    )


def register(routes: Routes) -> None:
    routes.add("POST", "/containers/prune", prune_containers)
    routes.add("GET", "/system/df", system_df)
