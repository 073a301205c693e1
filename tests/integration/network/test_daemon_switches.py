"""dockerd's networking switches, as hafend flags (daemon.json ``iptables``, ``ip-masq``):
without nftables published ports are served by the userland proxy alone; without
masquerade other hosts see containers' own addresses. Each daemon runs in a private
network namespace, with a second one as "another host" (``other_host``)."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator

import pytest

from tests.integration.network.conftest import NetHafend, other_host
from tests.integration.network.test_ports import Ports


@pytest.fixture
def switched(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Ports]:
    d = NetHafend(tmp_path_factory.mktemp("hafend-switch"), list(request.param))
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


@pytest.mark.parametrize("switched", [["--iptables=false"]], indirect=True)
def test_without_iptables_the_proxy_alone_serves_published_ports(switched: Ports) -> None:
    d = switched.d
    assert d.in_netns("nft", "list", "table", "ip", "hafen", check=False).returncode != 0
    cid = d.cli("run", "-d", "-p", "42190:81", "busybox", "sleep", "60").stdout.strip()
    try:
        server = switched.serve(cid, "tcp", 81)
        try:
            assert switched.ask("here", "tcp", "127.0.0.1", 42190, "ping").endswith(" ping")
            # from another host too, but the container sees the proxy (the bridge's
            # gateway), not the client: NAT is what keeps the client's address
            reply = switched.ask("outside", "tcp", "192.0.2.1", 42190, "ping")
            assert reply == "172.17.0.1 ping"
        finally:
            server.kill()
            server.wait(timeout=10)
    finally:
        d.cli("rm", "-f", cid)
    assert switched.refused("here", "127.0.0.1", 42190)


@pytest.mark.parametrize("switched", [["--ip-masq=false"]], indirect=True)
def test_without_ip_masq_other_hosts_see_the_containers_address(switched: Ports) -> None:
    d = switched.d
    assert "elements" not in d.in_netns("nft", "list", "set", "ip", "hafen", "masq").stdout
    enter = ["nsenter", f"--net=/proc/{switched.outside.pid}/ns/net", "--"]
    subprocess.run([*enter, "ip", "route", "add", "172.17.0.0/16", "via", "192.0.2.1"], check=True)
    server = subprocess.Popen(
        [*enter, sys.executable, "-c",
         "import socket;s=socket.socket();s.bind(('192.0.2.2',8000));s.listen();"
         "s.settimeout(20);print('ready',flush=True);c,a=s.accept();"
         "c.sendall(a[0].encode()+b'\\n');c.close()"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        out = d.cli("run", "--rm", "busybox", "sh", "-c",
                    "ip -o -4 addr show eth0; nc -w 3 192.0.2.2 8000 </dev/null").stdout  # fmt: skip
        own_ip = out.split("inet ")[1].split("/")[0]
        assert out.endswith(f"{own_ip}\n") and own_ip.startswith("172.17.")
    finally:
        server.kill()
        server.wait(timeout=10)
    doc = json.loads(d.cli("network", "inspect", "bridge").stdout)[0]
    assert doc["IPAM"]["Config"][0]["Subnet"] == "172.17.0.0/16"
