"""Published ports: ``-p``/``-P`` bindings, a userland proxy in the daemon, nftables DNAT.

``PortPublisher.publish`` binds every host port a container asked for *first* (so a
taken port fails before anything else is made), serves each with an asyncio proxy to
the container's address (TCP streams; UDP datagrams with a per-client upstream socket),
and, where nftables is present, adds a DNAT map element so traffic from other hosts
goes straight to the container. Loopback traffic is served by the proxy (the kernel
does not DNAT 127.0.0.0/8 to another interface). ``unpublish`` closes and removes
everything a container had; a failure half-way undoes what was done.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import itertools
import logging
import random
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, cast

from hafen.errors import Conflict, InvalidArgument
from hafen.network import nft

log = logging.getLogger("hafen.ports")

UDP_IDLE_SECONDS = 60.0


@dataclass
class PortBinding:
    """One published port of a running container."""

    proto: str
    container_port: int
    host_ip: str
    host_port: int


@dataclass
class PortRequest:
    proto: str
    container_port: int
    host_ip: str
    lo: int  # host port range asked for; 0, 0 = any free port
    hi: int


def _port(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise InvalidArgument(f"invalid {what}: {text!r}")
    if not 0 < value < 65536:
        raise InvalidArgument(f"invalid {what}: {text!r}")
    return value


def parse_port_key(key: str) -> tuple[int, str]:
    """``"80/tcp"`` → (80, "tcp")."""
    port, _, proto = key.partition("/")
    proto = (proto or "tcp").lower()
    if proto not in ("tcp", "udp"):
        raise InvalidArgument(f"invalid protocol {proto!r} in port {key!r} (tcp or udp)")
    return _port(port, "port"), proto


def port_requests(
    exposed: dict[str, Any], bindings: dict[str, list[dict[str, str]]], publish_all: bool
) -> list[PortRequest]:
    """The host ports to open for a container (validates every binding)."""
    out: list[PortRequest] = []
    for key, entries in bindings.items():
        cport, proto = parse_port_key(key)
        for entry in entries or [{}]:
            host_ip = (entry.get("HostIp") or "").strip("[]")
            if host_ip:
                try:
                    addr = ipaddress.ip_address(host_ip)
                except ValueError:
                    raise InvalidArgument(f"invalid host IP {host_ip!r} for port {key}")
                if addr.version == 6:
                    continue  # IPv6 publishing is not supported; Docker skips it without IPv6
            text = entry.get("HostPort") or ""
            lo = hi = 0
            if text:
                first, _, last = text.partition("-")
                lo, hi = _port(first, "host port"), _port(last or first, "host port")
                if hi < lo:
                    raise InvalidArgument(f"invalid host port range {text!r}")
            out.append(PortRequest(proto, cport, host_ip or "0.0.0.0", lo, hi))
    if publish_all:
        for key in exposed:
            cport, proto = parse_port_key(key)
            if not any(r.container_port == cport and r.proto == proto for r in out):
                out.append(PortRequest(proto, cport, "0.0.0.0", 0, 0))
    return out


class _UdpRelay(asyncio.DatagramProtocol):
    """Host side of a UDP port: one upstream socket per client, closed when idle."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.transport: asyncio.DatagramTransport | None = None
        self.clients: dict[tuple[str, int], asyncio.DatagramTransport] = {}
        self.idle: dict[tuple[str, int], asyncio.TimerHandle] = {}
        self.pending: dict[tuple[str, int], list[bytes]] = {}  # clients being connected
        self.tasks: set[asyncio.Task[None]] = set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        loop = asyncio.get_running_loop()
        upstream = self.clients.get(addr)
        if addr in self.pending:
            self.pending[addr].append(data)
        elif upstream is None:
            self.pending[addr] = [data]
            task = loop.create_task(self._open(addr))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        else:
            upstream.sendto(data)
            self._touch(addr)

    async def _open(self, addr: tuple[str, int]) -> None:
        relay = self

        class Back(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, _src: tuple[str, int]) -> None:
                if relay.transport is not None and not relay.transport.is_closing():
                    relay.transport.sendto(data, addr)

        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_datagram_endpoint(Back, remote_addr=self.target)
        except OSError as e:
            log.debug("udp relay to %s: %s", self.target, e)
            self.pending.pop(addr, None)
            return
        self.clients[addr] = upstream
        for data in self.pending.pop(addr, []):
            upstream.sendto(data)
        self._touch(addr)

    def _touch(self, addr: tuple[str, int]) -> None:
        old = self.idle.pop(addr, None)
        if old is not None:
            old.cancel()
        self.idle[addr] = asyncio.get_running_loop().call_later(UDP_IDLE_SECONDS, self._drop, addr)

    def _drop(self, addr: tuple[str, int]) -> None:
        self.idle.pop(addr, None)
        upstream = self.clients.pop(addr, None)
        if upstream is not None:
            upstream.close()

    def close(self) -> None:
        for timer in self.idle.values():
            timer.cancel()
        for upstream in self.clients.values():
            upstream.close()
        self.clients.clear()
        if self.transport is not None:
            self.transport.close()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
        if writer.can_write_eof():
            writer.write_eof()
    except (OSError, asyncio.IncompleteReadError):
        pass


class PortPublisher:
    def __init__(self, port_range: tuple[int, int], use_nft: bool) -> None:
        self.port_range = port_range
        self.use_nft = use_nft
        self._open: dict[str, list[tuple[PortBinding, Any]]] = {}

    async def start(self) -> None:
        """Fresh nftables state (stale rules of an earlier daemon go)."""
        if self.use_nft:
            await asyncio.to_thread(nft.reset)

    def bindings(self, container_id: str) -> list[PortBinding]:
        return [b for b, _ in self._open.get(container_id, [])]

    async def publish(
        self,
        container_id: str,
        target_ip: str,
        requests: list[PortRequest],
        fixed: list[PortBinding] | None = None,
    ) -> list[PortBinding]:
        """Open every requested port (``fixed``: exactly these, for a re-adopted container)."""
        opened: list[tuple[PortBinding, Any]] = []
        self._open[container_id] = opened
        try:
            plan: list[tuple[PortRequest, int | None]] = [(r, None) for r in requests]
            if fixed is not None:
                plan = [
                    (
                        PortRequest(b.proto, b.container_port, b.host_ip, b.host_port, b.host_port),
                        None,
                    )
                    for b in fixed
                ]
            for req, _ in plan:
                sock, port = self._bind(req)
                binding = PortBinding(req.proto, req.container_port, req.host_ip, port)
                handle = await self._serve(sock, req.proto, (target_ip, req.container_port))
                opened.append((binding, handle))
                if self.use_nft:
                    await asyncio.to_thread(
                        nft.add_port, req.proto, req.host_ip, port, target_ip, req.container_port
                    )
        except BaseException:
            await self.unpublish(container_id)
            raise
        return [b for b, _ in opened]

    def _bind(self, req: PortRequest) -> tuple[socket.socket, int]:
        kind = socket.SOCK_STREAM if req.proto == "tcp" else socket.SOCK_DGRAM
        candidates: Iterable[int]
        if req.lo:
            candidates = range(req.lo, req.hi + 1)
        else:  # from a random port on, wrapping around (not listed: ~0.3 ms for the range)
            lo, hi = self.port_range
            start = random.randint(lo, hi)
            candidates = itertools.chain(range(start, hi + 1), range(lo, start))
        last_error: OSError | None = None
        for port in candidates:
            sock = socket.socket(socket.AF_INET, kind)
            try:
                if kind == socket.SOCK_STREAM:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                sock.bind((req.host_ip, port))
                if kind == socket.SOCK_STREAM:
                    sock.listen(128)
                sock.setblocking(False)
                return sock, port
            except OSError as e:
                sock.close()
                last_error = e
        wanted = f"{req.lo}" if req.lo == req.hi else f"{req.lo}-{req.hi}"
        if not req.lo:
            wanted = f"any port in {self.port_range[0]}-{self.port_range[1]}"
        raise Conflict(
            f"driver failed programming external connectivity: Bind for {req.host_ip}:{wanted} "
            f"failed: port is already allocated ({last_error.strerror if last_error else 'busy'})"
        )

    async def _serve(self, sock: socket.socket, proto: str, target: tuple[str, int]) -> Any:
        if proto == "udp":
            loop = asyncio.get_running_loop()
            _, relay = await loop.create_datagram_endpoint(lambda: _UdpRelay(target), sock=sock)
            return relay

        async def on_client(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            try:
                up_reader, up_writer = await asyncio.wait_for(asyncio.open_connection(*target), 5)
            except (OSError, TimeoutError):
                writer.close()
                return
            await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))
            for w in (writer, up_writer):
                with contextlib.suppress(OSError):
                    w.close()

        return await asyncio.start_server(on_client, sock=sock)

    async def unpublish(self, container_id: str) -> None:
        for binding, handle in self._open.pop(container_id, []):
            handle.close()
            if self.use_nft:
                await asyncio.to_thread(
                    nft.delete_port, binding.proto, binding.host_ip, binding.host_port
                )

    async def close(self) -> None:
        """Daemon shutdown: stop proxying (rules stay for the re-adopting daemon to reset)."""
        for entries in self._open.values():
            for _, handle in entries:
                handle.close()
        self._open.clear()


def default_port_range() -> tuple[int, int]:
    """The kernel's ephemeral range, as Docker uses for -P."""
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return lo, hi
    except (OSError, ValueError):
        return 49153, 65535
