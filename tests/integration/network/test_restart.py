"""Networking survives a daemon restart: live-restored containers keep addresses, names,
published ports; stale nftables state is replaced; IPAM keeps handing out new addresses."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HAFEN
from tests.integration.network.conftest import NetHafend

HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"


def _serving(root: Path) -> Iterator[NetHafend]:
    """A bootstrapped NetHafend on ``root`` (where a test may have put a daemon.json)."""
    daemon = NetHafend(root)
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


@pytest.fixture
def own_net_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    yield from _serving(tmp_path_factory.mktemp("hafend-net-restart"))


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


def _slow_create_runtime(root: Path) -> tuple[Path, Path]:
    """hafen-runtime, but its create first touches a marker and sleeps 3 s: a window in
    which hafend has recorded the start's networking but not yet the start itself."""
    from hafen.runtime import command

    marker = root / "creating"
    script = root / "slow-create-runtime"
    src = Path(__file__).resolve().parents[3] / "src"
    script.write_text(
        "#!/bin/sh\n"
        f'for a in "$@"; do [ "$a" = create ] && touch {marker} && sleep 3; done\n'
        f'PYTHONPATH={src} exec {shlex.join(command(sys.executable))} "$@"\n'
    )
    script.chmod(0o755)
    return script, marker


@pytest.fixture
def slow_create_hafend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    root = tmp_path_factory.mktemp("hafend-net-slow-create")
    script, _ = _slow_create_runtime(root)
    (root / "daemon.json").write_text(json.dumps({"runtimes": {"slow": {"path": str(script)}}}))
    yield from _serving(root)


def _wait_for(check: Callable[[], bool], what: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _httpd_runs(d: NetHafend) -> bool:
    for state in (d.exec_root / "runtime").glob("*/state.json"):
        try:
            pid = json.loads(state.read_text())["pid"]
            if Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"httpd"):
                return True
        except (OSError, ValueError, KeyError):
            continue
    return False


def test_kill_9_during_a_start_then_restart_adopts_it_with_its_networking(
    slow_create_hafend: NetHafend,
) -> None:
    """hafend dies while the shim creates a networked container (the launch starts it;
    the record says "running" only after). The restarted daemon adopts the container
    with the address, port and name its start had: recorded before the launch."""
    d = slow_create_hafend
    marker = d.root / "creating"
    d.cli("network", "create", "--subnet", "10.68.0.0/24", "front")
    run = subprocess.Popen(
        [HAFEN, "-H", d.host, "run", "-d", "--runtime", "slow", "--name", "late",
         "--network", "front", "-p", "8787:80", "busybox", "sh", "-c", HTTPD],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        _wait_for(marker.exists, "the runtime's create")
        d.kill(signal.SIGKILL)
    finally:
        run.wait(timeout=30)  # its daemon is gone: it fails
    _wait_for(lambda: _httpd_runs(d), "the shim to start the container without its daemon")
    d.start()

    state = json.loads(d.cli("inspect", "late").stdout)[0]
    assert state["State"]["Running"] is True
    ip = state["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert ip.startswith("10.68.0.")
    assert _get(d, 8787) == "hello\n"  # its port is published again
    other = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                  "nslookup late; ip -o -4 addr show eth0")  # fmt: skip
    assert f"Address: {ip}" in other.stdout and f"inet {ip}/" not in other.stdout
    d.cli("rm", "-f", "late")
    assert not list((d.exec_root / "netns").glob("*"))


def test_restart_releases_the_networking_of_a_start_that_never_ran(
    own_net_hafend: NetHafend,
) -> None:
    """A record left at "created" with the networking its start had attached, and no
    container (hafend died before the launch ran it): the restarted daemon releases the
    namespace, veth and address, the record forgets them (inspect, network rm), and the
    container starts again with its fixed address."""
    d = own_net_hafend
    d.cli("network", "create", "--subnet", "10.69.0.0/24", "front")
    links = d.in_netns("ip", "-o", "link").stdout.count("\n")
    cid = d.cli("run", "-d", "--name", "cut", "--network", "front", "--ip", "10.69.0.50",
                "-p", "8888:80", "busybox", "sh", "-c", HTTPD).stdout.strip()  # fmt: skip
    state = json.loads(d.cli("inspect", cid).stdout)[0]["State"]
    d.kill(signal.SIGKILL)
    os.kill(state["Pid"], signal.SIGKILL)
    _wait_for(lambda: not Path(f"/proc/{state['Pid']}").exists(), "the container to end")
    _wait_for(lambda: not d.shim_pids(), "its shim to end")

    def cut_short(record: dict[str, Any]) -> None:
        assert record["endpoints"] and record["netns_path"] and record["ports"]
        record["state"].update(status="created", pid=0, shim_pid=0)

    d.edit_record(cid, cut_short)
    d.start()

    assert not list((d.exec_root / "netns").glob("*"))
    assert d.in_netns("ip", "-o", "link").stdout.count("\n") == links
    with sqlite3.connect(d.data_root / "metadata.db") as db:
        rows = db.execute("SELECT address FROM ip_allocations WHERE container_id = ?", (cid,))
        assert rows.fetchall() == []
    settings = json.loads(d.cli("inspect", "cut").stdout)[0]["NetworkSettings"]
    assert settings["Networks"]["front"]["IPAddress"] == "" and not settings["Ports"]
    assert json.loads(d.cli("network", "inspect", "front").stdout)[0]["Containers"] == {}
    d.cli("start", "cut")  # its fixed address is free again
    assert _get(d, 8888) == "hello\n"
    d.cli("rm", "-f", "cut")
