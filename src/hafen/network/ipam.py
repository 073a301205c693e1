"""IP address management: subnets for new networks and addresses for endpoints.

Allocations live in the ``ip_allocations`` table (network, address → container), written
in the same transaction that checks them, so an address is never handed out twice, even
across daemon restarts or concurrent starts. A released address is free again.
"""

from __future__ import annotations

import ipaddress
import sqlite3
from collections.abc import Iterable

from hafen.errors import Conflict, InvalidArgument
from hafen.network.model import Network

DEFAULT_BRIDGE_SUBNET = "172.17.0.0/16"
# Docker's default address pools for user networks, in order
_POOLS = [f"172.{n}.0.0/16" for n in range(18, 32)] + [
    f"192.168.{n}.0/20" for n in range(0, 256, 16)
]


def choose_subnet(taken: Iterable[str]) -> str:
    """The first default pool that overlaps none of ``taken``."""
    used = [ipaddress.ip_network(t) for t in taken if t]
    for pool in _POOLS:
        net = ipaddress.ip_network(pool)
        if not any(net.overlaps(u) for u in used):
            return pool
    raise Conflict("could not find an available, non-overlapping IPv4 address pool")


def validate_subnet(
    subnet: str, gateway: str, ip_range: str, taken: Iterable[str]
) -> tuple[str, str, str]:
    """Check a user's --subnet/--gateway/--ip-range; returns them normalised."""
    try:
        net = ipaddress.IPv4Network(subnet, strict=False)
    except ValueError as e:
        raise InvalidArgument(f"invalid subnet {subnet!r}: {e}")
    if net.prefixlen > 30:
        raise InvalidArgument(
            f"invalid subnet {subnet}: a /{net.prefixlen} has no room for containers"
        )
    for other in taken:
        if other and net.overlaps(ipaddress.ip_network(other)):
            raise Conflict(
                f"Pool overlaps with other one on this address space: {net} overlaps {other}"
            )
    if gateway:
        try:
            gw = ipaddress.IPv4Address(gateway)
        except ValueError:
            raise InvalidArgument(f"invalid gateway address {gateway!r}")
        if gw not in net or gw in (net.network_address, net.broadcast_address):
            raise InvalidArgument(f"the gateway {gateway} is not a usable address of subnet {net}")
    else:
        gw = net.network_address + 1
    rng = ""
    if ip_range:
        try:
            r = ipaddress.IPv4Network(ip_range, strict=False)
        except ValueError as e:
            raise InvalidArgument(f"invalid ip-range {ip_range!r}: {e}")
        if not r.subnet_of(net):
            raise InvalidArgument(f"the ip-range {r} is not inside subnet {net}")
        rng = str(r)
    return str(net), str(gw), rng


def allocate(
    db: sqlite3.Connection, network: Network, container_id: str, requested: str = ""
) -> str:
    """An address of ``network`` for ``container_id`` (inside the caller's transaction)."""
    net = ipaddress.IPv4Network(network.subnet)
    used = {
        r[0]
        for r in db.execute(
            "SELECT address FROM ip_allocations WHERE network_id = ?", (network.id,)
        )
    }
    reserved = {str(net.network_address), str(net.broadcast_address), network.gateway}
    if requested:
        try:
            addr = ipaddress.IPv4Address(requested)
        except ValueError:
            raise InvalidArgument(f"invalid IPv4 address {requested!r}")
        if addr not in net:
            raise InvalidArgument(
                f"no configured subnet contains IP address {requested} on network {network.name}"
            )
        if str(addr) in used or str(addr) in reserved:
            raise Conflict(f"Address already in use: {requested} on network {network.name}")
        chosen = str(addr)
    else:
        pool = ipaddress.IPv4Network(network.ip_range) if network.ip_range else net
        chosen = ""
        for host in pool.hosts():
            text = str(host)
            if text not in used and text not in reserved:
                chosen = text
                break
        if not chosen:
            raise Conflict(f"no available IPv4 addresses on network {network.name}")
    db.execute(
        "INSERT INTO ip_allocations(network_id, address, container_id) VALUES(?,?,?)",
        (network.id, chosen, container_id),
    )
    return chosen


def release(db: sqlite3.Connection, network_id: str, container_id: str) -> None:
    db.execute(
        "DELETE FROM ip_allocations WHERE network_id = ? AND container_id = ?",
        (network_id, container_id),
    )
