"""The embedded DNS server of user-defined networks (Docker's 127.0.0.11).

For each running container on a user-defined network the daemon opens a UDP and a TCP
socket on 127.0.0.11:53 *inside the container's network namespace* (a socket keeps
the namespace it was made in; it is made on a throwaway thread that entered it, see
``netns.run_in``) and serves them from the daemon's event loop. Names of containers,
their aliases and short ids answer with their addresses on the networks the asking
container shares with them; every other query is forwarded, from the daemon's own
namespace, to the container's upstream servers (``--dns`` or the host's resolv.conf)
and the answer relayed. A container on another network is never an answer.

A query that came over TCP is forwarded over TCP (a client retries over TCP when a UDP
answer came back truncated, so forwarding it over UDP again would truncate it again);
an answer of our own too large for a UDP datagram (512 bytes) goes back truncated
(the TC bit, no records), and the client asks again over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import socket
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from hafen.network.netns import run_in

log = logging.getLogger("hafen.dns")

DNS_ADDRESS = "127.0.0.11"
_TYPE_A, _TYPE_AAAA, _CLASS_IN = 1, 28, 1
_RCODE_NXDOMAIN, _RCODE_SERVFAIL, _RCODE_FORMERR = 3, 2, 1
UPSTREAM_TIMEOUT = 2.0
TCP_IDLE_SECONDS = 10.0
UDP_LIMIT = 512  # RFC 1035: the largest answer a client without EDNS0 takes over UDP
_FLAG_TC = 0x0200

# (container id, name) → IPv4 addresses, or None when the name is not a container's
Lookup = Callable[[str, str], list[str] | None]


@dataclass
class Question:
    id: int
    flags: int
    name: str
    qtype: int
    qclass: int
    end: int  # offset just past the question section


def parse_question(data: bytes) -> Question | None:
    """The first question of a query, or None when the packet is not one we can read."""
    if len(data) < 12:
        return None
    qid, flags, qdcount = struct.unpack(">HHH", data[:6])
    if qdcount < 1 or flags & 0x8000:
        return None
    labels = []
    pos = 12
    while True:
        if pos >= len(data):
            return None
        length = data[pos]
        pos += 1
        if length == 0:
            break
        if length & 0xC0 or pos + length > len(data):
            return None
        labels.append(data[pos : pos + length].decode("ascii", "replace"))
        pos += length
    if pos + 4 > len(data):
        return None
    qtype, qclass = struct.unpack(">HH", data[pos : pos + 4])
    return Question(qid, flags, ".".join(labels).lower(), qtype, qclass, pos + 4)


def build_answer(query: bytes, q: Question, addresses: list[str], rcode: int = 0) -> bytes:
    """A response echoing the question, with A records for ``addresses`` (TTL 600)."""
    flags = 0x8000 | 0x0400 | (q.flags & 0x0100) | 0x0080 | rcode  # QR, AA, RD, RA
    header = struct.pack(">HHHHHH", q.id, flags, 1, len(addresses), 0, 0)
    body = query[12 : q.end]
    for addr in addresses:
        body += struct.pack(">HHHIH", 0xC00C, _TYPE_A, _CLASS_IN, 600, 4)
        body += ipaddress.IPv4Address(addr).packed
    return header + body


class _Udp(asyncio.DatagramProtocol):
    def __init__(self, server: EmbeddedDNS, container_id: str) -> None:
        self.server = server
        self.container_id = container_id
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        task = asyncio.get_running_loop().create_task(self._answer(data, addr))
        self.server._tasks.add(task)
        task.add_done_callback(self.server._tasks.discard)

    async def _answer(self, data: bytes, addr: tuple[str, int]) -> None:
        reply = await self.server.resolve(self.container_id, data, tcp=False)
        if reply and self.transport is not None and not self.transport.is_closing():
            self.transport.sendto(reply, addr)


class EmbeddedDNS:
    def __init__(self, lookup: Lookup) -> None:
        self.lookup = lookup
        self._servers: dict[str, tuple[asyncio.DatagramTransport, asyncio.Server]] = {}
        self._upstreams: dict[str, list[str]] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def add(self, container_id: str, netns_path: str, upstreams: list[str]) -> None:
        """Serve 127.0.0.11:53 in the container's namespace."""
        if container_id in self._servers:
            return

        def make() -> tuple[socket.socket, socket.socket]:
            udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                udp.bind((DNS_ADDRESS, 53))
                tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                tcp.bind((DNS_ADDRESS, 53))
                tcp.listen(16)
            except BaseException:
                udp.close()
                tcp.close()
                raise
            udp.setblocking(False)
            tcp.setblocking(False)
            return udp, tcp

        udp, tcp = await asyncio.to_thread(run_in, netns_path, make)
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Udp(self, container_id), sock=udp
        )

        async def on_tcp(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, asyncio.IncompleteReadError, asyncio.TimeoutError):
                while True:  # an idle client is dropped (RFC 7766 allows it)
                    head = await asyncio.wait_for(reader.readexactly(2), TCP_IDLE_SECONDS)
                    size = struct.unpack(">H", head)[0]
                    query = await asyncio.wait_for(reader.readexactly(size), 10)
                    reply = await self.resolve(container_id, query, tcp=True)
                    if not reply:
                        break
                    writer.write(struct.pack(">H", len(reply)) + reply)
                    await writer.drain()
            writer.close()

        server = await asyncio.start_server(on_tcp, sock=tcp)
        self._servers[container_id] = (transport, server)
        self._upstreams[container_id] = list(upstreams)

    def serves(self, container_id: str) -> bool:
        return container_id in self._servers

    def remove(self, container_id: str) -> None:
        entry = self._servers.pop(container_id, None)
        self._upstreams.pop(container_id, None)
        if entry is not None:
            transport, server = entry
            transport.close()
            server.close()

    def close(self) -> None:
        for cid in list(self._servers):
            self.remove(cid)

    async def resolve(self, container_id: str, query: bytes, tcp: bool = False) -> bytes | None:
        """The answer to ``query`` (None: not a query; drop it). ``tcp``: it came over
        TCP, so it is forwarded over TCP and never truncated."""
        q = parse_question(query)
        if q is None:
            return None
        name = q.name.rstrip(".")
        if q.qclass == _CLASS_IN and q.qtype in (_TYPE_A, _TYPE_AAAA) and name:
            addresses = self.lookup(container_id, name)
            if addresses is not None:  # ours: never forwarded; AAAA: NOERROR, no records
                reply = build_answer(query, q, addresses if q.qtype == _TYPE_A else [])
                if not tcp and len(reply) > UDP_LIMIT:
                    reply = build_answer(query, q, [])
                    reply = reply[:2] + struct.pack(">H", _flags(reply) | _FLAG_TC) + reply[4:]
                return reply
        return await self._forward(container_id, query, q, tcp)

    async def _forward(self, container_id: str, query: bytes, q: Question, tcp: bool) -> bytes:
        exchange = _tcp_exchange if tcp else _udp_exchange
        for server in self._upstreams.get(container_id, []):
            try:
                return await asyncio.wait_for(exchange(server, query), UPSTREAM_TIMEOUT)
            except (OSError, TimeoutError, asyncio.IncompleteReadError) as e:
                log.debug("upstream %s for %s: %s", server, q.name, e)
        return build_answer(query, q, [], rcode=_RCODE_SERVFAIL)


def _flags(message: bytes) -> int:
    return int(struct.unpack(">H", message[2:4])[0])


async def _tcp_exchange(server: str, query: bytes) -> bytes:
    """One query over TCP (RFC 7766: a two-byte length before each message)."""
    reader, writer = await asyncio.open_connection(server, 53)
    try:
        writer.write(struct.pack(">H", len(query)) + query)
        await writer.drain()
        size = struct.unpack(">H", await reader.readexactly(2))[0]
        return await reader.readexactly(size)
    finally:
        writer.close()


async def _udp_exchange(server: str, query: bytes) -> bytes:
    loop = asyncio.get_running_loop()
    family = socket.AF_INET6 if ":" in server else socket.AF_INET
    done: asyncio.Future[bytes] = loop.create_future()

    class Client(asyncio.DatagramProtocol):
        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            if not done.done() and data[:2] == query[:2]:
                done.set_result(data)

        def error_received(self, exc: Exception) -> None:
            if not done.done():
                done.set_exception(exc)

    transport, _ = await loop.create_datagram_endpoint(
        Client, remote_addr=(server, 53), family=family
    )
    try:
        transport.sendto(query)
        return await done
    finally:
        transport.close()
