"""Port requests and the userland proxy (on loopback, without nftables)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from hafen.errors import Conflict, InvalidArgument
from hafen.network.ports import PortPublisher, PortRequest, port_requests


def test_port_requests_from_bindings_and_publish_all() -> None:
    reqs = port_requests(
        {"80/tcp": {}, "53/udp": {}, "8080/tcp": {}},
        {"80/tcp": [{"HostIp": "127.0.0.1", "HostPort": "8000-8005"}], "9/udp": [{}]},
        publish_all=True,
    )
    assert PortRequest("tcp", 80, "127.0.0.1", 8000, 8005) in reqs
    assert PortRequest("udp", 9, "0.0.0.0", 0, 0) in reqs
    assert PortRequest("udp", 53, "0.0.0.0", 0, 0) in reqs
    assert PortRequest("tcp", 8080, "0.0.0.0", 0, 0) in reqs
    assert len(reqs) == 4
    with pytest.raises(InvalidArgument):
        port_requests({}, {"80/sctpx": [{}]}, False)
    with pytest.raises(InvalidArgument):
        port_requests({}, {"80/tcp": [{"HostPort": "70000"}]}, False)


def _free_port(kind: int) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def _roundtrip() -> None:
    loop = asyncio.get_running_loop()

    class Echo(asyncio.DatagramProtocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            self.t = transport

        def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
            self.t.sendto(b"echo:" + data, addr)  # type: ignore[attr-defined]

    async def tcp_echo(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        w.write(b"echo:" + await r.readline())
        await w.drain()
        w.close()

    udp_echo, _ = await loop.create_datagram_endpoint(Echo, local_addr=("127.0.0.1", 0))
    tcp_server = await asyncio.start_server(tcp_echo, "127.0.0.1", 0)
    udp_port = udp_echo.get_extra_info("sockname")[1]
    tcp_port = tcp_server.sockets[0].getsockname()[1]
    pub = PortPublisher((40000, 40100), use_nft=False)
    host_tcp, host_udp = _free_port(socket.SOCK_STREAM), _free_port(socket.SOCK_DGRAM)
    try:
        bindings = await pub.publish(
            "c1",
            "127.0.0.1",
            [
                PortRequest("tcp", tcp_port, "127.0.0.1", host_tcp, host_tcp),
                PortRequest("udp", udp_port, "127.0.0.1", host_udp, host_udp),
            ],
        )
        assert [b.host_port for b in bindings] == [host_tcp, host_udp]
        reader, writer = await asyncio.open_connection("127.0.0.1", host_tcp)
        writer.write(b"hi\n")
        assert await asyncio.wait_for(reader.read(), 5) == b"echo:hi\n"
        writer.close()
        got: asyncio.Future[bytes] = loop.create_future()

        class Client(asyncio.DatagramProtocol):
            def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
                if not got.done():
                    got.set_result(data)

        client, _ = await loop.create_datagram_endpoint(Client, remote_addr=("127.0.0.1", host_udp))
        client.sendto(b"dgram")
        assert await asyncio.wait_for(got, 5) == b"echo:dgram"
        client.close()
        # the same host port again: refused before anything is made
        with pytest.raises(Conflict, match="port is already allocated"):
            await pub.publish(
                "c2", "127.0.0.1", [PortRequest("tcp", 1, "127.0.0.1", host_tcp, host_tcp)]
            )
        assert pub.bindings("c2") == []
    finally:
        await pub.unpublish("c1")
        udp_echo.close()
        tcp_server.close()
    with socket.socket() as s:  # the listener is gone
        assert s.connect_ex(("127.0.0.1", host_tcp)) != 0


def test_proxy_relays_tcp_and_udp_and_refuses_a_taken_port() -> None:
    asyncio.run(_roundtrip())
