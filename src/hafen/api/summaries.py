"""``GET /containers/json`` rows as encoded JSON, kept per container while what the row
shows is unchanged, so ``ps -a`` over a thousand containers re-encodes only those that
changed.

A row's key is everything in it that can change after create: the name, the state, the
``Status`` text (computed each time: "Up 3 minutes" moves with the clock), the published
ports and the networks with their endpoints (by value). The rest (id, image, command,
labels, mounts, network mode) is fixed when the container is made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Collection, Hashable

from hafen.api.convert import container_summary, status_text
from hafen.containers.model import Container

_COMPACT_JSON = json.JSONEncoder(check_circular=False, separators=(",", ":"))
_rows: dict[str, tuple[Hashable, bytes]] = {}


def encode(value: object) -> bytes:
    """Compact JSON without the circular-reference check (our values are trees)."""
    return _COMPACT_JSON.encode(value).encode()


def _key(c: Container, status: str) -> Hashable:
    ports = tuple((p.host_ip, p.container_port, p.host_port, p.proto) for p in c.ports)
    networks = tuple(
        (k, r.network_name, r.ipv4_address, tuple(r.aliases)) for k, r in c.networks.items()
    )
    endpoints = tuple(
        (e.network_id, e.endpoint_id, e.ip, e.prefixlen, e.gateway, e.mac) for e in c.endpoints
    )
    return (c.name, c.state.status, status, ports, networks, endpoints)


def rows_json(containers: list[Container], existing: Collection[str]) -> bytes:
    """The JSON array of ``containers``' ps rows; ``existing``: the ids of every
    container there is (rows of the others are dropped)."""
    now = time.time()
    parts = []
    for c in containers:
        status = status_text(c, now)
        key = _key(c, status)
        hit = _rows.get(c.id)
        if hit is None or hit[0] != key:
            hit = (key, encode(container_summary(c, now)))
            _rows[c.id] = hit
        parts.append(hit[1])
    if len(_rows) > len(existing) + 256:
        for cid in [cid for cid in _rows if cid not in existing]:
            del _rows[cid]
    return b"[" + b",".join(parts) + b"]"
