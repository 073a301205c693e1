"""Networking survives a daemon restart: live-restored containers keep addresses, names,
published ports; stale nftables state is replaced; IPAM keeps handing out new addresses."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from collections.abc import Iterator
from pathlib import Path

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


def test_kill_9_with_published_ports_then_restart(own_net_hafend: NetHafend) -> None:
    """hafend dies by SIGKILL holding published ports; one container exits while it is
    down. The restarted daemon re-adopts the live one (rule, proxy, address kept), drops
    everything of the dead one (rule, veth, address), and IPAM hands out no address twice."""
    d = own_net_hafend
    d.cli("network", "create", "--subnet", "10.67.0.0/24", "front")
    links = d.in_netns("ip", "-o", "link").stdout.count("\n")
    d.cli("run", "-d", "--name", "keep", "--network", "front", "-p", "8585:80",
          "busybox", "sh", "-c", HTTPD)  # fmt: skip
    d.cli("run", "-d", "--name", "doomed", "--network", "front", "-p", "8586:80",
          "busybox", "sh", "-c", HTTPD)  # fmt: skip
    keep, doomed = (json.loads(d.cli("inspect", n).stdout)[0] for n in ("keep", "doomed"))
    keep_ip = keep["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    doomed_ip = doomed["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert _get(d, 8585) == "hello\n" and _get(d, 8586) == "hello\n"

    d.kill(signal.SIGKILL)
    os.kill(doomed["State"]["Pid"], signal.SIGKILL)  # exits while no daemon watches
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and Path(f"/proc/{doomed['State']['Pid']}").exists():
        time.sleep(0.05)
    d.start()

    assert json.loads(d.cli("inspect", "doomed").stdout)[0]["State"]["Running"] is False
    assert _get(d, 8585) == "hello\n"
    assert not _port_open(d, 8586)
    assert d.in_netns("ip", "-o", "link").stdout.count("\n") == links + 1  # keep's veth only
    if shutil.which("nft"):
        table = d.in_netns("nft", "list", "table", "ip", "hafen").stdout
        assert f"tcp . 8585 : {keep_ip} . 80" in table
        assert "8586" not in table and doomed_ip not in table
    # new containers: distinct addresses, never keep's; doomed's is free again
    ids = [
        d.cli("run", "-d", "--network", "front", "busybox", "sleep", "60").stdout.strip()
        for _ in range(3)
    ]
    ips = [
        json.loads(d.cli("inspect", i).stdout)[0]["NetworkSettings"]["Networks"]["front"][
            "IPAddress"
        ]
        for i in ids
    ]
    assert len(set(ips)) == 3 and keep_ip not in ips and doomed_ip in ips
    taken = d.cli("run", "--rm", "--network", "front", "--ip", keep_ip, "busybox", "true",
                  check=False)  # fmt: skip
    assert taken.returncode == 125 and "Address already in use" in taken.stderr
    d.cli("rm", "-f", *ids)
