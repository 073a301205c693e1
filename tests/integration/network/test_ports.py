"""Published ports end to end: from the namespace's loopback (the userland proxy) and
from another host (a second network namespace joined by a veth pair, which reaches the
daemon's namespace at 192.0.2.1: nftables DNAT), TCP and UDP, ranges, addresses, ``-P``
within daemon.json's ``port-range``, and nothing left behind when a container stops.

The daemon and the "other host" are private network namespaces made by the test.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.network.conftest import NetHafend, other_host

HERE = Path(__file__).resolve().parent
HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"
RANGE = (42100, 42104)  # daemon.json port-range: small, so exhausting it is cheap
NFT = shutil.which("nft") is not None


class Ports:
    def __init__(self, d: NetHafend, outside: subprocess.Popen[bytes]) -> None:
        self.d = d
        self.outside = outside

    def inspect(self, ref: str) -> dict[str, Any]:
        return dict(json.loads(self.d.cli("inspect", ref).stdout)[0])

    def ask(self, where: str, proto: str, host: str, port: int, payload: str = "hi") -> str:
        """Send ``payload`` from the daemon's namespace ("here") or the other host;
        the answer, or "" when none came (retried briefly: servers need a moment)."""
        pid = self.d.daemon_pid if where == "here" else self.outside.pid
        for _ in range(30):
            out = subprocess.run(
                ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
                 str(HERE / "peer_client.py"), proto, host, str(port), payload],
                capture_output=True, text=True, timeout=30,
            )  # fmt: skip
            if out.returncode == 0:
                return out.stdout
            time.sleep(0.1)
        return ""

    def refused(self, where: str, host: str, port: int) -> bool:
        pid = self.d.daemon_pid if where == "here" else self.outside.pid
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
             str(HERE / "peer_client.py"), "tcp", host, str(port), "x"],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        return out.returncode != 0

    def serve(self, ref: str, proto: str, port: int) -> subprocess.Popen[str]:
        """A peer-echo server inside the container's network namespace."""
        pid = self.inspect(ref)["State"]["Pid"]
        server = subprocess.Popen(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
             str(HERE / "peer_echo.py"), proto, str(port), "60"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        return server

    def nft(self) -> str:
        return self.d.in_netns("nft", "list", "table", "ip", "hafen").stdout if NFT else ""

    def links(self) -> int:
        return self.d.in_netns("ip", "-o", "link").stdout.count("\n")


@pytest.fixture(scope="module")
def ports(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ports]:
    root = tmp_path_factory.mktemp("hafend-ports")
    (root / "daemon.json").write_text(json.dumps({"port-range": f"{RANGE[0]}-{RANGE[1]}"}))
    d = NetHafend(root)
    outside: subprocess.Popen[bytes] | None = None
    try:
        d.start()
        d.bootstrap()
        outside = other_host(d)
        yield Ports(d, outside)
    finally:
        d.cleanup()
        if outside is not None:
            outside.kill()
            outside.wait(timeout=10)


def test_a_port_on_all_addresses_serves_loopback_and_another_host(ports: Ports) -> None:
    d = ports.d
    cid = d.cli("run", "-d", "-p", "42150:80", "-p", "42151:81", "busybox", "sh", "-c",
                HTTPD).stdout.strip()  # fmt: skip
    try:
        assert d.cli("port", cid, "80").stdout == "0.0.0.0:42150\n"
        request = "GET / HTTP/1.0\r\n\r\n"
        assert ports.ask("here", "tcp", "127.0.0.1", 42150, request).endswith("hello\n")
        assert ports.ask("here", "tcp", "192.0.2.1", 42150, request).endswith("hello\n")
        assert ports.ask("outside", "tcp", "192.0.2.1", 42150, request).endswith("hello\n")
        server = ports.serve(cid, "tcp", 81)
        try:
            reply = ports.ask("outside", "tcp", "192.0.2.1", 42151, "ping")
            if NFT:  # DNAT: the container sees the other host's own address
                assert reply == "192.0.2.2 ping"
            else:  # the proxy: the container sees its gateway
                assert reply.endswith(" ping")
        finally:
            server.kill()
            server.wait(timeout=10)
    finally:
        d.cli("rm", "-f", cid)
    assert ports.refused("here", "127.0.0.1", 42150)
    assert ports.refused("outside", "192.0.2.1", 42150)


def test_a_port_bound_to_one_address_is_served_there_only(ports: Ports) -> None:
    d = ports.d
    cid = d.cli("run", "-d", "-p", "192.0.2.1:42152:80", "-p", "127.0.0.1:42153:80",
                "busybox", "sh", "-c", HTTPD).stdout.strip()  # fmt: skip
    try:
        out = d.cli("port", cid).stdout.splitlines()
        assert sorted(out) == ["80/tcp -> 127.0.0.1:42153", "80/tcp -> 192.0.2.1:42152"]
        request = "GET / HTTP/1.0\r\n\r\n"
        assert ports.ask("outside", "tcp", "192.0.2.1", 42152, request).endswith("hello\n")
        assert ports.ask("here", "tcp", "127.0.0.1", 42153, request).endswith("hello\n")
        assert ports.refused("here", "127.0.0.1", 42152)
        assert ports.refused("outside", "192.0.2.1", 42153)
    finally:
        d.cli("rm", "-f", cid)


def test_udp_ports_from_loopback_and_from_another_host(ports: Ports) -> None:
    d = ports.d
    cid = d.cli("run", "-d", "-p", "42154:5000/udp", "busybox", "sleep", "120").stdout.strip()
    try:
        assert d.cli("port", cid, "5000/udp").stdout == "0.0.0.0:42154\n"
        if NFT:
            assert "udp . 42154 : " in ports.nft()
        server = ports.serve(cid, "udp", 5000)
        try:
            assert ports.ask("here", "udp", "127.0.0.1", 42154, "dgram").endswith(" dgram")
            reply = ports.ask("outside", "udp", "192.0.2.1", 42154, "dgram")
            assert reply == ("192.0.2.2 dgram" if NFT else reply) and reply.endswith(" dgram")
        finally:
            server.kill()
            server.wait(timeout=10)
    finally:
        d.cli("rm", "-f", cid)
    assert "42154" not in ports.nft()


def test_port_ranges(ports: Ports) -> None:
    d = ports.d
    serve3 = (
        "mkdir -p /www && echo hello > /www/index.html && "
        "for p in 8000 8001 8002; do httpd -p $p -h /www; done; exec sleep 120"
    )
    cid = d.cli("run", "-d", "-p", "42160-42162:8000-8002", "busybox", "sh", "-c",
                serve3).stdout.strip()  # fmt: skip
    try:
        assert sorted(d.cli("port", cid).stdout.splitlines()) == [
            f"{8000 + i}/tcp -> 0.0.0.0:{42160 + i}" for i in range(3)
        ]
        for i in range(3):
            got = ports.ask("here", "tcp", "127.0.0.1", 42160 + i, "GET / HTTP/1.0\r\n\r\n")
            assert got.endswith("hello\n"), 42160 + i
        # one container port, a range of host ports: the first free one is taken
        other = d.cli("run", "-d", "-p", "42161-42165:80", "busybox", "sleep", "60")
        try:
            assert d.cli("port", other.stdout.strip(), "80").stdout == "0.0.0.0:42163\n"
        finally:
            d.cli("rm", "-f", other.stdout.strip())
        # a container port alone: a free host port from the configured range
        alone = d.cli("run", "-d", "-p", "80", "busybox", "sleep", "60").stdout.strip()
        try:
            port = int(d.cli("port", alone, "80").stdout.strip().rpartition(":")[2])
            assert RANGE[0] <= port <= RANGE[1]
        finally:
            d.cli("rm", "-f", alone)
        bad = d.cli("create", "-p", "42170-42171:80-82", "busybox", "true", check=False)
        assert bad.returncode == 125 and "invalid ranges" in bad.stderr
    finally:
        d.cli("rm", "-f", cid)


def test_publish_all_takes_exposed_ports_from_the_configured_range(
    ports: Ports, tmp_path: Path
) -> None:
    d = ports.d
    (tmp_path / "Dockerfile").write_text("FROM busybox\nEXPOSE 80 7000/udp\n")
    d.cli("build", "-q", "-t", "exposer", str(tmp_path))
    cid = d.cli("run", "-d", "-P", "--expose", "9000", "exposer", "sh", "-c", HTTPD)
    cid_text = cid.stdout.strip()
    try:
        mapped = ports.inspect(cid_text)["NetworkSettings"]["Ports"]
        assert sorted(mapped) == ["7000/udp", "80/tcp", "9000/tcp"]
        host_ports = {k: int(v[0]["HostPort"]) for k, v in mapped.items()}
        assert all(RANGE[0] <= p <= RANGE[1] for p in host_ports.values()), host_ports
        assert host_ports["80/tcp"] != host_ports["9000/tcp"]
        got = ports.ask("here", "tcp", "127.0.0.1", host_ports["80/tcp"], "GET / HTTP/1.0\r\n\r\n")
        assert got.endswith("hello\n")
        # three of the range's five TCP ports are left: asking for four fails cleanly
        links = ports.links()
        out = d.cli("run", "-d", "--name", "greedy", "-P", "--expose", "1-4", "busybox",
                    "sleep", "60", check=False)  # fmt: skip
        assert out.returncode == 125
        assert f"any port in {RANGE[0]}-{RANGE[1]} failed: port is already allocated" in out.stderr
        assert ports.inspect("greedy")["State"]["Running"] is False
        assert ports.links() == links  # no veth left
        table = ports.nft()
        assert sum(f"tcp . {p} :" in table for p in range(RANGE[0], RANGE[1] + 1)) == 2
    finally:
        d.cli("rm", "-f", cid_text, "greedy", check=False)
        d.cli("rmi", "exposer", check=False)


def test_stop_removes_everything_and_start_brings_it_back(ports: Ports) -> None:
    d = ports.d
    d.cli("network", "create", "--subnet", "10.81.0.0/24", "stopnet")
    try:
        links = ports.links()
        d.cli("run", "-d", "--name", "stopper", "--network", "stopnet", "--ip", "10.81.0.9",
              "-p", "42156:80", "-p", "42157:53/udp", "busybox", "sh", "-c", HTTPD)  # fmt: skip
        sandbox = ports.inspect("stopper")["NetworkSettings"]["SandboxKey"]
        assert ports.links() == links + 1 and Path(sandbox).exists()
        if NFT:
            assert "tcp . 42156 : 10.81.0.9 . 80" in ports.nft()
        request = "GET / HTTP/1.0\r\n\r\n"
        assert ports.ask("here", "tcp", "127.0.0.1", 42156, request).endswith("hello\n")

        d.cli("stop", "-t", "1", "stopper")  # returns when all is released, as Docker's
        assert ports.links() == links  # the veth
        assert not Path(sandbox).exists()  # the namespace
        assert ports.refused("here", "127.0.0.1", 42156)  # the proxy
        table = ports.nft()
        assert "42156" not in table and "42157" not in table  # the DNAT rules
        assert ports.inspect("stopper")["NetworkSettings"]["Ports"] == {}
        # the address is free: another container may take it while this one is stopped
        out = d.cli("run", "--rm", "--network", "stopnet", "--ip", "10.81.0.9", "busybox",
                    "ip", "-o", "-4", "addr", "show", "eth0").stdout  # fmt: skip
        assert "inet 10.81.0.9/24" in out

        d.cli("start", "stopper")
        assert ports.ask("here", "tcp", "127.0.0.1", 42156, request).endswith("hello\n")
        if NFT:
            assert "tcp . 42156 : 10.81.0.9 . 80" in ports.nft()
    finally:
        d.cli("rm", "-f", "stopper", check=False)
        d.cli("network", "rm", "stopnet", check=False)


def test_a_container_reaches_a_published_port_through_the_hosts_address(ports: Ports) -> None:
    """Hairpin: a container on the same bridge, or the container itself, asks the host's
    address (the gateway, as host-gateway gives it) for a published port."""
    d = ports.d
    cid = d.cli("run", "-d", "-p", "42158:80", "-p", "42159:81", "busybox", "sh", "-c",
                HTTPD).stdout.strip()  # fmt: skip
    try:
        assert ports.ask("here", "tcp", "127.0.0.1", 42158, "GET / HTTP/1.0\r\n\r\n")
        for target in ("172.17.0.1", "192.0.2.1", "host.docker.internal"):
            get = f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 {target} 42158 | tail -1"
            out = d.cli("run", "--rm", "--add-host", "host.docker.internal:host-gateway",
                        "busybox", "sh", "-c", get, check=False)  # fmt: skip
            assert out.stdout == "hello\n", (target, out.stderr)
        own = d.cli("exec", cid, "sh", "-c",
                    "printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 3 172.17.0.1 42158 | tail -1")  # fmt: skip
        assert own.stdout == "hello\n", own  # the container reaches its own published port
        # served by the proxy (never DNAT from a bridge): the peer sees the gateway, and
        # answers it, not the client directly from its own address
        server = ports.serve(cid, "tcp", 81)
        try:
            out = d.cli("run", "--rm", "busybox", "sh", "-c",
                        "echo hi | nc -w 3 172.17.0.1 42159")  # fmt: skip
            assert out.stdout == "172.17.0.1 hi\n"
        finally:
            server.kill()
            server.wait(timeout=10)
    finally:
        d.cli("rm", "-f", cid)


def test_a_port_another_container_holds_is_refused_cleanly(ports: Ports) -> None:
    d = ports.d
    first = d.cli("run", "-d", "-p", "42180:80", "-p", "42180:80/udp", "busybox", "sh", "-c",
                  HTTPD).stdout.strip()  # fmt: skip
    try:
        links, table = ports.links(), ports.nft()
        for spec in ("42180:80", "42180:80/udp"):
            out = d.cli("run", "-d", "--name", "second", "-p", "42181:81", "-p", spec,
                        "busybox", "sleep", "60", check=False)  # fmt: skip
            assert out.returncode == 125 and "port is already allocated" in out.stderr, spec
            state = ports.inspect("second")
            assert state["State"]["Running"] is False
            assert state["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
            assert ports.links() == links and ports.nft() == table  # 42181 was undone too
            assert ports.refused("here", "127.0.0.1", 42181)
            d.cli("rm", "second")
        got = ports.ask("here", "tcp", "127.0.0.1", 42180, "GET / HTTP/1.0\r\n\r\n")
        assert got.endswith("hello\n")  # the holder is untouched
    finally:
        d.cli("rm", "-f", first)
