"""Network routes of the Engine API: list, inspect, create, remove, connect, disconnect,
prune (Docker's JSON)."""

from __future__ import annotations

import asyncio
from typing import Any

from aiohttp import web

from hafen.api.app import Routes, daemon_of, json_body
from hafen.api.containers import parse_filters
from hafen.api.convert import endpoint_request_from_api
from hafen.daemon.daemon import Daemon
from hafen.errors import HafenError, InvalidArgument
from hafen.network.model import Network
from hafen.volumes.service import label_filter_matches


def network_to_api(d: Daemon, n: Network) -> dict[str, Any]:
    containers: dict[str, Any] = {}
    for c in d.containers.list():
        for e in c.endpoints:
            if e.network_id == n.id:
                containers[c.id] = {
                    "Name": c.name,
                    "EndpointID": e.endpoint_id,
                    "MacAddress": e.mac,
                    "IPv4Address": f"{e.ip}/{e.prefixlen}",
                    "IPv6Address": "",
                }
    config: list[dict[str, str]] = []
    if n.subnet:
        entry = {"Subnet": n.subnet, "Gateway": n.gateway}
        if n.ip_range:
            entry["IPRange"] = n.ip_range
        config.append(entry)
    return {
        "Name": n.name,
        "Id": n.id,
        "Created": n.created,
        "Scope": "local",
        "Driver": n.driver,
        "EnableIPv6": False,
        "IPAM": {"Driver": "default", "Options": None, "Config": config},
        "Internal": n.internal,
        "Attachable": False,
        "Ingress": False,
        "ConfigFrom": {"Network": ""},
        "ConfigOnly": False,
        "Containers": containers,
        "Options": n.options,
        "Labels": n.labels,
    }


def _matches(d: Daemon, n: Network, filters: dict[str, list[str]]) -> bool:
    for key, values in filters.items():
        if key == "name" and not any(v in n.name for v in values):
            return False
        if key == "id" and not any(n.id.startswith(v) for v in values):
            return False
        if key == "driver" and n.driver not in values:
            return False
        if key == "label" and not label_filter_matches(n.labels, values):
            return False
        if key == "type":
            kind = "custom" if n.user_defined else "builtin"
            if kind not in values:
                return False
        if key == "dangling":
            dangling = n.user_defined and not d.networks.users(n.id)
            if dangling != (values[0].lower() in ("1", "true")):
                return False
        if key not in ("name", "id", "driver", "label", "type", "dangling", "scope"):
            raise InvalidArgument(f"invalid filter '{key}'")
    return True


async def list_networks(request: web.Request) -> web.Response:
    d = daemon_of(request)
    filters = parse_filters(request)
    networks = await asyncio.to_thread(d.networks.list)
    return web.json_response([network_to_api(d, n) for n in networks if _matches(d, n, filters)])


async def inspect(request: web.Request) -> web.Response:
    d = daemon_of(request)
    network = await asyncio.to_thread(d.networks.get, request.match_info["id"])
    return web.json_response(network_to_api(d, network))


def _strings(body: dict[str, Any], key: str) -> dict[str, str]:
    value = body.get(key) or {}
    if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
        raise InvalidArgument(f"invalid value for {key}: expected an object of strings")
    return {str(k): v for k, v in value.items()}


async def create(request: web.Request) -> web.Response:
    d = daemon_of(request)
    body = await json_body(request)
    if not isinstance(body, dict):
        raise InvalidArgument("the request body must be a JSON object")
    name = body.get("Name")
    if not isinstance(name, str) or not name:
        raise InvalidArgument("invalid value for Name: a network name is required")
    ipam = body.get("IPAM") or {}
    if not isinstance(ipam, dict):
        raise InvalidArgument("invalid value for IPAM: expected an object")
    configs = ipam.get("Config") or []
    if not isinstance(configs, list) or not all(isinstance(c, dict) for c in configs):
        raise InvalidArgument("invalid value for IPAM.Config: expected a list of objects")
    v4 = [c for c in configs if ":" not in str(c.get("Subnet", ""))]
    if len(v4) > 1:
        raise InvalidArgument("only one IPv4 subnet per network is supported")
    if len(v4) < len(configs):
        raise InvalidArgument("IPv6 subnets are not supported")
    first: dict[str, Any] = v4[0] if v4 else {}
    network = await asyncio.to_thread(
        d.networks.create,
        name,
        str(body.get("Driver") or "bridge"),
        str(first.get("Subnet") or ""),
        str(first.get("Gateway") or ""),
        str(first.get("IPRange") or ""),
        bool(body.get("Internal")),
        _strings(body, "Labels"),
        _strings(body, "Options"),
    )
    d.events.publish(
        "network", "create", network.id, {"name": network.name, "type": network.driver}
    )
    return web.json_response({"Id": network.id, "Warning": ""}, status=201)


async def remove(request: web.Request) -> web.Response:
    d = daemon_of(request)
    network = await asyncio.to_thread(d.networks.get, request.match_info["id"])
    await asyncio.to_thread(d.networks.remove, request.match_info["id"])
    d.events.publish(
        "network", "destroy", network.id, {"name": network.name, "type": network.driver}
    )
    return web.Response(status=204)


async def connect(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise InvalidArgument("invalid value for Container: a container is required")
    req = endpoint_request_from_api(body.get("EndpointConfig") or {}, "EndpointConfig.")
    d = daemon_of(request)
    await d.containers.connect(body["Container"], request.match_info["id"], req)
    _endpoint_event(d, "connect", request.match_info["id"], body["Container"])
    return web.Response(status=200)


def _endpoint_event(d: Any, action: str, network_ref: str, container_ref: str) -> None:
    """dockerd's network connect/disconnect event: the network is the actor."""
    try:
        network = d.networks.get(network_ref)
        container = d.containers.get(container_ref)
    except HafenError:
        return
    d.events.publish(
        "network", action, network.id,
        {"container": container.id, "name": network.name, "type": network.driver},
    )  # fmt: skip


async def disconnect(request: web.Request) -> web.Response:
    body = await json_body(request)
    if not isinstance(body, dict) or not isinstance(body.get("Container"), str):
        raise InvalidArgument("invalid value for Container: a container is required")
    d = daemon_of(request)
    await d.containers.disconnect(
        body["Container"], request.match_info["id"], bool(body.get("Force"))
    )
    _endpoint_event(d, "disconnect", request.match_info["id"], body["Container"])
    return web.Response(status=200)


async def prune(request: web.Request) -> web.Response:
    filters = parse_filters(request)
    removed = await asyncio.to_thread(daemon_of(request).networks.prune, filters.get("label", []))
    for name in removed:
        daemon_of(request).events.publish("network", "destroy", name, {"name": name})
    return web.json_response({"NetworksDeleted": removed or None})


def register(routes: Routes) -> None:
    routes.add("GET", "/networks", list_networks)
    routes.add("POST", "/networks/create", create)
    routes.add("POST", "/networks/prune", prune)
    routes.add("GET", "/networks/{id}", inspect)
    routes.add("DELETE", "/networks/{id}", remove)
    routes.add("POST", "/networks/{id}/connect", connect)
    routes.add("POST", "/networks/{id}/disconnect", disconnect)
