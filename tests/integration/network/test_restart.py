"""Networking survives a daemon restart: live-restored containers keep addresses, names,
published ports; stale nftables state is replaced; IPAM keeps handing out new addresses."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
from collections.abc import Iterator

import pytest

from tests.integration.network.conftest import NetHafend

HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"


@pytest.fixture
def own_net_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-net-restart"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def _get(d: NetHafend, port: int) -> str:
    code = (
        "import sys,time,urllib.request\n"
        "for _ in range(50):\n"
        "    try:\n"
        "        sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())\n"
        "        break\n"
        "    except OSError:\n"
        "        time.sleep(0.1)\n"
    )
    return d.in_netns(sys.executable, "-c", code, f"http://127.0.0.1:{port}/").stdout


def test_live_restore_keeps_networking(own_net_hafend: NetHafend) -> None:
    d = own_net_hafend
    d.cli("network", "create", "--subnet", "10.66.0.0/24", "front")
    d.cli("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
          "-p", "127.0.0.1:8383:80", "busybox", "sh", "-c", HTTPD)  # fmt: skip
    assert _get(d, 8383) == "hello\n"
    web_ip = json.loads(d.cli("inspect", "web").stdout)[0]["NetworkSettings"]["Networks"]["front"][
        "IPAddress"
    ]
    if shutil.which("nft"):  # a rule no daemon owns: the restart must drop it
        d.in_netns(
            "nft", "add", "element", "ip", "hafen", "ports", "{ tcp . 9999 : 10.66.0.99 . 80 }"
        )

    d.kill(signal.SIGTERM)
    d.start()

    state = json.loads(d.cli("inspect", "web").stdout)[0]
    assert state["State"]["Running"] is True
    assert _get(d, 8383) == "hello\n"  # the proxy is back
    if shutil.which("nft"):
        table = d.in_netns("nft", "list", "table", "ip", "hafen").stdout
        assert "9999" not in table and f"127.0.0.1 . tcp . 8383 : {web_ip} . 80" in table
    out = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                "nslookup www; ip -o -4 addr show eth0")  # fmt: skip
    assert f"Address: {web_ip}" in out.stdout
    assert f"inet {web_ip}/" not in out.stdout  # its address was not handed out again
    d.cli("rm", "-f", "web")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and _port_open(d, 8383):
        time.sleep(0.1)
    assert not _port_open(d, 8383)


def _port_open(d: NetHafend, port: int) -> bool:
    code = (
        "import socket,sys\n"
        "s=socket.socket()\n"
        "sys.exit(0 if s.connect_ex(('127.0.0.1', int(sys.argv[1]))) == 0 else 1)\n"
    )
    return d.in_netns(sys.executable, "-c", code, str(port), check=False).returncode == 0


def test_forced_removal_leaves_no_network_state(own_net_hafend: NetHafend) -> None:
    """No veth, listener or namespace file of a container is left after ``rm -f``."""
    d = own_net_hafend
    links = d.in_netns("ip", "-o", "link").stdout.count("\n")
    cid = d.cli("run", "-d", "-p", "8484:80", "busybox", "sleep", "60").stdout.strip()
    assert d.in_netns("ip", "-o", "link").stdout.count("\n") == links + 1
    d.cli("rm", "-f", cid)
    assert d.in_netns("ip", "-o", "link").stdout.count("\n") == links
    assert not _port_open(d, 8484)
    assert not list((d.exec_root / "netns").glob("*"))
