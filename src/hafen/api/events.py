"""``GET /events``: the event stream in Docker's JSON shape, with since/until and filters.

Each event is one JSON object followed by a newline, as dockerd streams them. Without
``until`` the stream stays open until the client leaves (checked every few seconds,
since an idle stream has nothing to write that would fail).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of
from hafen.containers.logs import parse_rfc3339
from hafen.daemon.events import EVENT_TYPES, Event, EventFilter
from hafen.errors import InvalidArgument

IDLE_CHECK = 2.0
_FILTER_KEYS = {
    "config", "container", "daemon", "event", "image", "label", "network", "node",
    "plugin", "scope", "secret", "service", "type", "volume",
}  # fmt: skip


def event_to_api(e: Event) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if e.type in ("container", "image"):
        out["status"] = e.action
        out["id"] = e.actor_id
        if e.type == "container" and "image" in e.attributes:
            out["from"] = e.attributes["image"]
    out.update(
        {
            "Type": e.type,
            "Action": e.action,
            "Actor": {"ID": e.actor_id, "Attributes": e.attributes},
            "scope": e.scope,
            "time": e.time,
            "timeNano": e.time_nano,
        }
    )
    return out


def parse_time_nano(value: str, name: str) -> int:
    """Docker's event times: ``seconds[.nanoseconds]`` (what the CLI sends) or RFC 3339."""
    value = value.strip()
    secs, dot, frac = value.partition(".")
    if secs.lstrip("-").isdigit() and (not dot or frac.isdigit()):
        return int(secs) * 1_000_000_000 + (int(frac[:9].ljust(9, "0")) if frac else 0)
    try:
        return int(parse_rfc3339(value) * 1_000_000_000)
    except ValueError:
        raise InvalidArgument(f"invalid value for {name}: {value!r}") from None


def parse_event_filters(raw: str | None) -> dict[str, list[str]]:
    if not raw:
        return {}
    try:
        value = json.loads(raw)
    except ValueError as e:
        raise InvalidArgument(f"invalid filter: {e}") from None
    if not isinstance(value, dict):
        raise InvalidArgument("invalid filter: expected a JSON object")
    out: dict[str, list[str]] = {}
    for key, items in value.items():
        if key not in _FILTER_KEYS:
            raise InvalidArgument(f"invalid filter '{key}'")
        if isinstance(items, dict):
            out[key] = [k for k, v in items.items() if v]
        elif isinstance(items, list):
            out[key] = [str(v) for v in items]
        else:
            raise InvalidArgument(f"invalid filter '{key}': expected a list of values")
    for t in out.get("type", []):
        if t not in EVENT_TYPES:
            raise InvalidArgument(f"invalid filter 'type={t}'")
    return out


def _matches_actor(e: Event, kind: str, values: list[str]) -> bool:
    if e.type != kind:
        return False
    name = e.attributes.get("name", "")
    return any(e.actor_id.startswith(v) or v == name for v in values)


def make_filter(filters: dict[str, list[str]]) -> EventFilter:
    def accept(e: Event) -> bool:
        for key, values in filters.items():
            if not values:
                continue
            if key == "type":
                if e.type not in values:
                    return False
            elif key == "event":
                if e.action not in values and e.action.partition(":")[0] not in values:
                    return False
            elif key in ("container", "network", "volume", "plugin", "daemon"):
                if not _matches_actor(e, key, values):
                    return False
            elif key == "image":
                image = e.attributes.get("image", "")
                refs = {image, e.actor_id, e.attributes.get("name", "")}
                if e.type not in ("container", "image") or not any(
                    v in refs or (image and image.partition(":")[0] == v) for v in values
                ):
                    return False
            elif key == "label":
                for v in values:
                    k, sep, want = v.partition("=")
                    if k not in e.attributes or (sep and e.attributes[k] != want):
                        return False
            elif key == "scope":
                if e.scope not in values:
                    return False
            else:  # swarm-only kinds: nothing here is one of those
                return False
        return True

    return accept


async def events(request: web.Request) -> web.StreamResponse:
    d = daemon_of(request)
    since_raw = request.query.get("since", "")
    until_raw = request.query.get("until", "")
    since = parse_time_nano(since_raw, "since") if since_raw else None
    until = parse_time_nano(until_raw, "until") if until_raw else None
    if since is not None and until is not None and since > until:
        raise InvalidArgument("since must be before until")
    accept = make_filter(parse_event_filters(request.query.get("filters")))
    response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
    await response.prepare(request)
    stream = d.events.subscribe_batches(since, until, accept)
    try:
        while True:
            nxt = asyncio.ensure_future(anext(stream))
            while True:
                done, _ = await asyncio.wait({nxt}, timeout=IDLE_CHECK)
                if done:
                    break
                transport = request.transport
                if transport is None or transport.is_closing():
                    nxt.cancel()
                    with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                        await nxt
                    return response
            try:
                batch = nxt.result()
            except StopAsyncIteration:
                break
            await response.write(
                b"".join(json.dumps(event_to_api(e)).encode() + b"\n" for e in batch)
            )
    except (ConnectionResetError, BrokenPipeError):
        return response
    finally:
        await stream.aclose()
    await response.write_eof()
    return response


def register(routes: Routes) -> None:
    routes.add("GET", "/events", events)
