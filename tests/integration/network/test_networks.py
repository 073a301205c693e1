"""Bridge networks end to end, with the daemon inside a private network namespace."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.integration.network.conftest import NetHafend

DOCKER = "/usr/local/bin/docker"
ROOT = Path(__file__).resolve().parents[3]
HTTPD = "mkdir -p /www && echo hello > /www/index.html && exec httpd -f -p 80 -h /www"


def _nc_get(host: str) -> str:
    return f"printf 'GET / HTTP/1.0\\r\\n\\r\\n' | nc -w 2 {host} 80 | tail -1"


def _inspect(d: NetHafend, ref: str) -> dict:
    return json.loads(d.cli("inspect", ref).stdout)[0]


@pytest.fixture(scope="module")
def two_networks(net_hafend: NetHafend):
    d = net_hafend
    d.cli("network", "create", "--subnet", "10.77.0.0/24", "front")
    d.cli("network", "create", "--subnet", "10.78.0.0/24", "back")
    d.cli("run", "-d", "--name", "web", "--network", "front", "--network-alias", "www",
          "busybox", "sh", "-c", HTTPD)  # fmt: skip
    yield d
    d.cli("rm", "-f", "web")
    d.cli("network", "rm", "front", "back")


def test_containers_on_a_user_network_reach_each_other_by_name_and_alias(
    two_networks: NetHafend,
) -> None:
    d = two_networks
    for host in ("web", "www", _inspect(d, "web")["Id"][:12]):
        out = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c", _nc_get(host))
        assert out.stdout == "hello\n", host


def test_containers_on_other_networks_cannot_reach(two_networks: NetHafend) -> None:
    d = two_networks
    web_ip = _inspect(d, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert web_ip.startswith("10.77.0.")
    out = d.cli("run", "--rm", "--network", "back", "busybox", "sh", "-c",
                f"{_nc_get(web_ip)}; {_nc_get('web')}", check=False)  # fmt: skip
    assert "hello" not in out.stdout
    out = d.cli("run", "--rm", "busybox", "sh", "-c", _nc_get(web_ip), check=False)
    assert "hello" not in out.stdout  # nor from the default bridge


def test_network_none_has_only_loopback(net_hafend: NetHafend) -> None:
    out = net_hafend.cli("run", "--rm", "--network", "none", "busybox", "ls", "/sys/class/net")
    assert out.stdout.split() == ["lo"]


def test_network_host_sees_the_daemons_interfaces(net_hafend: NetHafend) -> None:
    out = net_hafend.cli("run", "--rm", "--network", "host", "busybox", "ls", "/sys/class/net")
    assert "hafen0" in out.stdout.split() and "lo" in out.stdout.split()


def test_container_mode_shares_one_network_stack(two_networks: NetHafend) -> None:
    d = two_networks
    out = d.cli("run", "--rm", "--network", "container:web", "busybox", "sh", "-c",
                _nc_get("127.0.0.1") + "; ls /sys/class/net")  # fmt: skip
    lines = out.stdout.split()
    assert lines[0] == "hello"
    assert sorted(lines[1:]) == ["eth0", "lo"]
    hosts = d.cli("run", "--rm", "--network", "container:web", "busybox", "cat", "/etc/hosts")
    web = _inspect(d, "web")
    web_ip = web["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    assert f"{web_ip}\t{web['Config']['Hostname']}" in hosts.stdout


def test_addresses_are_distinct_and_released_at_stop(two_networks: NetHafend) -> None:
    d = two_networks
    ids = [
        d.cli("run", "-d", "--network", "back", "busybox", "sleep", "60").stdout.strip()
        for _ in range(3)
    ]
    try:
        ips = [_inspect(d, i)["NetworkSettings"]["Networks"]["back"]["IPAddress"] for i in ids]
        assert len(set(ips)) == 3 and all(ip.startswith("10.78.0.") for ip in ips)
        links_running = d.in_netns("ip", "-o", "link").stdout.splitlines()
        sandbox = _inspect(d, ids[0])["NetworkSettings"]["SandboxKey"]
        assert sandbox.endswith(ids[0])
        d.cli("rm", "-f", *ids)
        links_after = d.in_netns("ip", "-o", "link").stdout.splitlines()
        assert len(links_running) - len(links_after) == 3  # each veth went with its container
        assert subprocess.run(["test", "-e", sandbox]).returncode != 0
        # the released addresses are handed out again
        again = d.cli("run", "--rm", "--network", "back", "--ip", ips[0], "busybox",
                      "ip", "-o", "-4", "addr", "show", "eth0").stdout  # fmt: skip
        assert f"inet {ips[0]}/24" in again
    finally:
        d.cli("rm", "-f", *ids, check=False)


def test_fixed_ip_and_its_collision(two_networks: NetHafend) -> None:
    d = two_networks
    cid = d.cli("run", "-d", "--network", "back", "--ip", "10.78.0.50", "busybox", "sleep", "60")
    try:
        out = d.cli("run", "--rm", "--network", "back", "--ip", "10.78.0.50", "busybox", "true",
                    check=False)  # fmt: skip
        assert out.returncode != 0 and "Address already in use" in out.stderr
        out = d.cli("run", "--rm", "--network", "back", "--ip", "10.99.0.5", "busybox", "true",
                    check=False)  # fmt: skip
        assert out.returncode == 125 and "no configured subnet contains IP address" in out.stderr
        out = d.cli("run", "--rm", "--ip", "172.17.0.77", "busybox", "true", check=False)
        assert out.returncode == 125 and "user-defined network" in out.stderr
        d.cli("network", "create", "auto-subnet")
        try:
            out = d.cli("create", "--network", "auto-subnet", "--ip", "172.18.0.9", "busybox",
                        "true", check=False)  # fmt: skip
            assert out.returncode == 125 and "user configured subnets" in out.stderr
        finally:
            d.cli("network", "rm", "auto-subnet")
        out = d.cli("create", "--network", "container:web", "-p", "80", "busybox", "true",
                    check=False)  # fmt: skip
        assert out.returncode == 125 and "port publishing and the container type" in out.stderr
    finally:
        d.cli("rm", "-f", cid.stdout.strip())


def test_connect_and_disconnect_a_running_container(two_networks: NetHafend) -> None:
    d = two_networks
    cid = d.cli("run", "-d", "--network", "back", "busybox", "sleep", "60").stdout.strip()
    try:
        d.cli("network", "connect", "--ip", "10.77.0.77", "--alias", "late", "front", cid)
        front = _inspect(d, cid)["NetworkSettings"]["Networks"]["front"]
        assert front["IPAddress"] == "10.77.0.77" and front["Aliases"] == ["late"]
        assert front["IPAMConfig"] == {"IPv4Address": "10.77.0.77"}
        taken = d.cli("run", "--rm", "--network", "front", "--ip", "10.77.0.77", "busybox",
                      "true", check=False)  # fmt: skip
        assert taken.returncode == 125 and "Address already in use" in taken.stderr
        out = d.cli("exec", cid, "sh", "-c", _nc_get("www") + "; ls /sys/class/net", check=False)
        if out.returncode != 0:  # no exec on this daemon: check from outside instead
            out = d.cli("run", "--rm", "--network", f"container:{cid}", "busybox", "sh", "-c",
                        _nc_get("10.77.0.2") + "; ls /sys/class/net")  # fmt: skip
        assert out.stdout.split()[0] == "hello"
        assert sorted(out.stdout.split()[1:]) == ["eth0", "eth1", "lo"]
        peer = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                     "grep late /etc/hosts; nslookup late.")  # fmt: skip
        assert cid[:12] in peer.stdout and "10.77.0.77\t" in peer.stdout
        assert "Address: 10.77.0.77" in peer.stdout  # the embedded DNS knows the alias
        twice = d.cli("network", "connect", "front", cid, check=False)
        assert twice.returncode == 1 and "already exists in network front" in twice.stderr
        d.cli("network", "disconnect", "front", cid)
        nets = _inspect(d, cid)["NetworkSettings"]["Networks"]
        assert sorted(nets) == ["back"]
        gone = d.cli("exec", cid, "ls", "/sys/class/net").stdout.split()
        assert sorted(gone) == ["eth0", "lo"]
        # its address on front is free again
        again = d.cli("run", "--rm", "--network", "front", "--ip", "10.77.0.77", "busybox",
                      "ip", "-o", "-4", "addr", "show", "eth0").stdout  # fmt: skip
        assert "inet 10.77.0.77/24" in again
    finally:
        d.cli("rm", "-f", cid)


def test_network_commands_and_their_errors(net_hafend: NetHafend) -> None:
    d = net_hafend
    d.cli("network", "create", "--subnet", "10.80.0.0/16", "--gateway", "10.80.0.254",
          "--ip-range", "10.80.5.0/24", "--label", "team=kiel", "--internal", "ranged")  # fmt: skip
    try:
        doc = json.loads(d.cli("network", "inspect", "ranged").stdout)[0]
        assert doc["IPAM"]["Config"] == [
            {"Subnet": "10.80.0.0/16", "Gateway": "10.80.0.254", "IPRange": "10.80.5.0/24"}
        ]
        assert doc["Internal"] is True and doc["Labels"] == {"team": "kiel"}
        out = d.cli("run", "--rm", "--network", "ranged", "busybox", "sh", "-c",
                    "ip -o -4 addr show eth0; ip route")  # fmt: skip
        assert "inet 10.80.5." in out.stdout
        assert "default" not in out.stdout  # internal: no way out

        def names() -> list[str]:
            return [
                line.split(":")[1].strip()
                for line in d.in_netns("ip", "-o", "link").stdout.splitlines()
            ]

        links = names()
        overlap = d.cli("network", "create", "--subnet", "10.80.1.0/24", "clash", check=False)
        assert overlap.returncode == 1 and "overlaps" in overlap.stderr
        for args, message in (
            (["--subnet", "banana"], "invalid subnet"),
            (["--subnet", "10.84.0.0/24", "--gateway", "10.85.0.1"], "gateway"),
            (["--subnet", "10.84.0.0/24", "--ip-range", "10.84.1.0/28"], "ip-range"),
            (["--gateway", "10.84.0.1"], "--subnet"),
            (["--driver", "overlayish"], "not found"),
        ):
            bad = d.cli("network", "create", *args, "clash", check=False)
            assert bad.returncode != 0 and message in bad.stderr, (args, bad.stderr)
        assert names() == links  # no bridge was made
        dup = d.cli("network", "create", "ranged", check=False)
        assert dup.returncode == 1 and "already exists" in dup.stderr
        names = d.cli("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert {"bridge", "host", "none", "ranged"} <= set(names)
        assert "clash" not in names
        cid = d.cli("run", "-d", "--network", "ranged", "busybox", "sleep", "60").stdout.strip()
        busy = d.cli("network", "rm", "ranged", check=False)
        assert busy.returncode == 1 and "active endpoints" in busy.stderr
        d.cli("rm", "-f", cid)
        predefined = d.cli("network", "rm", "bridge", check=False)
        assert "pre-defined network and cannot be removed" in predefined.stderr
    finally:
        d.cli("network", "rm", "ranged", check=False)
    assert "ranged" not in d.cli("network", "ls").stdout


def test_generated_hosts_and_resolv_conf(net_hafend: NetHafend) -> None:
    out = net_hafend.cli(
        "run", "--rm", "--hostname", "kiel", "--add-host", "db.local:10.1.2.3",
        "--add-host", "gw.local:host-gateway",
        "--dns", "10.0.0.53", "--dns-search", "example.org", "--dns-option", "ndots:2",
        "busybox", "sh", "-c", "cat /etc/hosts /etc/resolv.conf /etc/hostname; ip -o -4 addr show eth0",
    ).stdout  # fmt: skip
    assert "10.1.2.3\tdb.local" in out
    assert "172.17.0.1\tgw.local" in out  # the default bridge's gateway, as dockerd's
    bad = net_hafend.cli("create", "--add-host", "db:not-an-ip", "busybox", "true", check=False)
    assert bad.returncode == 125 and "invalid IP address in add-host" in bad.stderr
    assert out.count("kiel\n") >= 2  # /etc/hosts and /etc/hostname
    assert out.split("options ndots:2\n")[1].startswith("kiel\n")  # /etc/hostname itself
    assert "nameserver 10.0.0.53\nsearch example.org\noptions ndots:2\n" in out
    ip = out.split("inet ")[1].split("/")[0]
    assert f"{ip}\tkiel" in out and ip.startswith("172.17.")


def test_docker_cli_network_verbs(net_hafend: NetHafend) -> None:
    def docker(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([DOCKER, *args], capture_output=True, text=True,
                              env=net_hafend.env, timeout=60, check=True)  # fmt: skip

    docker("network", "create", "--subnet", "10.90.0.0/24", "dnet")
    assert "dnet" in docker("network", "ls", "--format", "{{.Name}}").stdout.split()
    docker("run", "-d", "--network", "dnet", "--name", "dweb", "busybox", "sh", "-c", HTTPD)
    try:
        out = docker("run", "--rm", "--network", "dnet", "busybox", "sh", "-c", _nc_get("dweb"))
        assert out.stdout == "hello\n"
        doc = json.loads(docker("inspect", "dweb").stdout)[0]
        assert doc["NetworkSettings"]["Networks"]["dnet"]["IPAddress"].startswith("10.90.0.")
    finally:
        docker("rm", "-f", "dweb")
    docker("network", "rm", "dnet")


def test_embedded_dns_answers_names_on_the_network_only(two_networks: NetHafend) -> None:
    d = two_networks
    web_ip = _inspect(d, "web")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
    out = d.cli("run", "--rm", "--network", "front", "busybox", "sh", "-c",
                "cat /etc/resolv.conf; nslookup www; nslookup web.front")  # fmt: skip
    assert "nameserver 127.0.0.11" in out.stdout
    assert out.stdout.count(f"Address: {web_ip}") == 2
    out = d.cli("run", "--rm", "--network", "back", "busybox", "nslookup", "web", check=False)
    assert web_ip not in out.stdout and out.returncode != 0


def test_embedded_dns_forwards_other_names_to_dns_servers_given(
    two_networks: NetHafend, tmp_path: Path
) -> None:
    """``--dns`` replaces the host's resolvers as the embedded server's upstream."""
    d = two_networks
    stub = subprocess.Popen(
        ["nsenter", f"--net=/proc/{d.daemon_pid}/ns/net", "--", sys.executable,
         str(Path(__file__).with_name("dns_stub.py")), "127.0.0.1", "10.20.30.40", "30",
         str(tmp_path / "queries")],
        stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )  # fmt: skip
    try:
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        out = d.cli("run", "--rm", "--network", "front", "--dns", "127.0.0.1", "busybox",
                    "sh", "-c", "cat /etc/resolv.conf; nslookup www.example.test")  # fmt: skip
        assert "nameserver 127.0.0.11\n" in out.stdout and "127.0.0.1\n" not in out.stdout
        assert "Address: 10.20.30.40" in out.stdout
        assert "udp www.example.test 1" in (tmp_path / "queries").read_text().splitlines()
    finally:
        stub.kill()
        stub.wait(timeout=10)


def _http_get(d: NetHafend, url: str) -> str:
    """An HTTP client in the daemon's namespace (its "host" network)."""
    code = (
        "import sys, urllib.request;"
        "sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())"
    )
    return d.in_netns(sys.executable, "-c", code, url).stdout


def _nft_ports(d: NetHafend) -> str:
    return d.in_netns("nft", "list", "table", "ip", "hafen").stdout


def test_published_port_serves_the_namespaces_loopback(net_hafend: NetHafend) -> None:
    d = net_hafend
    cid = d.cli("run", "-d", "-p", "127.0.0.1:8080:80", "busybox", "sh", "-c", HTTPD)
    cid_text = cid.stdout.strip()
    try:
        assert d.cli("port", cid_text).stdout == "80/tcp -> 127.0.0.1:8080\n"
        deadline = 50
        body = ""
        while deadline and body != "hello\n":  # httpd needs a moment to listen
            try:
                body = _http_get(d, "http://127.0.0.1:8080/")
            except subprocess.CalledProcessError:
                deadline -= 1
                time.sleep(0.1)
        assert body == "hello\n"
        ip = _inspect(d, cid_text)["NetworkSettings"]["IPAddress"]
        if shutil.which("nft"):
            assert f"127.0.0.1 . tcp . 8080 : {ip} . 80" in _nft_ports(d)
    finally:
        d.cli("rm", "-f", cid_text)
    if shutil.which("nft"):
        assert "8080" not in _nft_ports(d)  # the rule went with the container
    with pytest.raises(subprocess.CalledProcessError):
        _http_get(d, "http://127.0.0.1:8080/")


def test_publish_all_picks_free_ports_for_exposed_ones(net_hafend: NetHafend) -> None:
    d = net_hafend
    cid = d.cli("run", "-d", "-P", "--expose", "80", "--expose", "5353/udp", "busybox",
                "sh", "-c", HTTPD).stdout.strip()  # fmt: skip
    try:
        ports = _inspect(d, cid)["NetworkSettings"]["Ports"]
        tcp = int(ports["80/tcp"][0]["HostPort"])
        udp = int(ports["5353/udp"][0]["HostPort"])
        lo, hi = (
            int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
        )
        assert lo <= tcp <= hi and lo <= udp <= hi
        assert d.cli("port", cid, "80").stdout == f"0.0.0.0:{tcp}\n"
        for _ in range(50):
            try:
                assert _http_get(d, f"http://127.0.0.1:{tcp}/") == "hello\n"
                break
            except subprocess.CalledProcessError:
                time.sleep(0.1)
        else:
            raise AssertionError("the -P port never answered")
    finally:
        d.cli("rm", "-f", cid)


def test_a_taken_port_fails_cleanly(net_hafend: NetHafend) -> None:
    d = net_hafend
    holder = subprocess.Popen(
        ["nsenter", f"--net=/proc/{d.daemon_pid}/ns/net", "--", sys.executable, "-c",
         "import socket,time;s=socket.socket();s.bind(('127.0.0.1',8181));s.listen();"
         "print('ready',flush=True);time.sleep(30)"],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "ready"
        allocations_before = d.in_netns("ip", "-o", "link").stdout.count("\n")
        out = d.cli("run", "-d", "--name", "taken", "-p", "127.0.0.1:8181:80", "busybox",
                    "sleep", "60", check=False)  # fmt: skip
        assert out.returncode == 125
        assert "127.0.0.1:8181 failed: port is already allocated" in out.stderr
        state = _inspect(d, "taken")["State"]
        assert state["Running"] is False and state["Pid"] == 0
        assert _inspect(d, "taken")["NetworkSettings"]["Networks"]["bridge"]["IPAddress"] == ""
        assert d.in_netns("ip", "-o", "link").stdout.count("\n") == allocations_before
        if shutil.which("nft"):
            assert "8181" not in _nft_ports(d)
        # the address it had is free again: the next container gets the same one
        first = d.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0").stdout
        again = d.cli("run", "--rm", "busybox", "ip", "-o", "-4", "addr", "show", "eth0").stdout
        assert first.split()[3] == again.split()[3]
    finally:
        holder.kill()
        holder.wait(timeout=10)
        d.cli("rm", "-f", "taken", check=False)


def test_bad_port_specs_are_refused(net_hafend: NetHafend) -> None:
    d = net_hafend
    before = d.cli("ps", "-aq").stdout
    for spec in ("99999:80", "80/sctpx", "a:b:c:d"):
        out = d.cli("create", "-p", spec, "busybox", "true", check=False)
        assert out.returncode == 125 and "invalid" in out.stderr.lower(), spec
    assert d.cli("ps", "-aq").stdout == before


def test_docker_cli_run_p_and_port(net_hafend: NetHafend) -> None:
    env = net_hafend.env
    run = subprocess.run([DOCKER, "run", "-d", "-p", "127.0.0.1:8282:80", "busybox", "sh", "-c",
                          HTTPD], capture_output=True, text=True, env=env, check=True)  # fmt: skip
    cid = run.stdout.strip()
    try:
        out = subprocess.run([DOCKER, "port", cid], capture_output=True, text=True, env=env,
                             check=True)  # fmt: skip
        assert out.stdout == "80/tcp -> 127.0.0.1:8282\n"
    finally:
        subprocess.run([DOCKER, "rm", "-f", cid], capture_output=True, env=env)


def test_outbound_traffic_is_forwarded_and_masqueraded(net_hafend: NetHafend) -> None:
    """An "outside" namespace joined to the daemon's by a veth: a container reaches it,
    and it sees the daemon's address (masquerade), having no route to the bridge."""
    if not shutil.which("nft"):
        pytest.skip("forwarding is only enabled where nftables isolates bridges")
    d = net_hafend
    outside = subprocess.Popen(
        ["unshare", "--net", "--", "sh", "-c", "ip link set lo up && exec sleep 60"]
    )
    try:
        time.sleep(0.3)
        d.in_netns("ip", "link", "add", "ext0", "type", "veth", "peer", "name", "ext1")
        d.in_netns("ip", "link", "set", "ext1", "netns", str(outside.pid))
        d.in_netns("ip", "addr", "add", "192.0.2.1/24", "dev", "ext0")
        d.in_netns("ip", "link", "set", "ext0", "up")
        enter = ["nsenter", f"--net=/proc/{outside.pid}/ns/net", "--"]
        subprocess.run([*enter, "ip", "addr", "add", "192.0.2.2/24", "dev", "ext1"], check=True)
        subprocess.run([*enter, "ip", "link", "set", "ext1", "up"], check=True)
        server = subprocess.Popen(
            [*enter, sys.executable, "-c",
             "import socket;s=socket.socket();s.bind(('192.0.2.2',8000));s.listen();"
             "s.settimeout(20);print('ready',flush=True);c,a=s.accept();"
             "c.sendall(a[0].encode()+b'\\n');c.close()"],
            stdout=subprocess.PIPE, text=True,
        )  # fmt: skip
        assert server.stdout is not None and server.stdout.readline().strip() == "ready"
        # an internal network: no default route, and even a route made by hand (NET_ADMIN)
        # does not get out: the forward chain drops it; its subnet is never masqueraded
        d.cli("network", "create", "--internal", "--subnet", "10.83.0.0/24", "sealed")
        # the outside host could even answer: it has a route back to the sealed subnet
        subprocess.run([*enter, "ip", "route", "add", "10.83.0.0/24", "via", "192.0.2.1"],
                       check=True)  # fmt: skip
        try:
            out = d.cli("run", "--rm", "--network", "sealed", "--cap-add", "NET_ADMIN",
                        "busybox", "sh", "-c", "ip route; ip route add default via 10.83.0.1 "
                        "&& nc -w 2 192.0.2.2 8000 </dev/null", check=False)  # fmt: skip
            assert "default" not in out.stdout and "192.0.2." not in out.stdout
            assert out.returncode != 0
            masq = d.in_netns("nft", "list", "set", "ip", "hafen", "masq").stdout
            assert "10.83.0.0/24" not in masq
        finally:
            d.cli("network", "rm", "sealed")
        out = d.cli("run", "--rm", "busybox", "sh", "-c", "nc -w 3 192.0.2.2 8000 </dev/null")
        assert out.stdout == "192.0.2.1\n"
        server.wait(timeout=10)
    finally:
        outside.kill()
        outside.wait(timeout=10)
        d.in_netns("ip", "link", "del", "ext0", check=False)


def test_run_on_several_networks(two_networks: NetHafend) -> None:
    """A container on front and back reaches peers on each, by name, through each
    network's own interface; the peers still cannot reach each other."""
    d = two_networks
    serve_back = HTTPD.replace("echo hello", "echo from-back")
    d.cli("run", "-d", "--name", "backweb", "--network", "back", "busybox", "sh", "-c",
          serve_back)  # fmt: skip
    try:
        out = d.cli("run", "--rm", "--network", "front", "--network", "back", "busybox", "sh",
                    "-c", f"ls /sys/class/net; {_nc_get('www')}; {_nc_get('backweb')}; "
                    "nslookup backweb. | grep -c 'Address: 10.78.0.'")  # fmt: skip
        words = out.stdout.split()
        assert sorted(words[:3]) == ["eth0", "eth1", "lo"]
        assert words[3:] == ["hello", "from-back", "1"]
        back_ip = _inspect(d, "backweb")["NetworkSettings"]["Networks"]["back"]["IPAddress"]
        apart = d.cli("exec", "web", "sh", "-c", _nc_get(back_ip), check=False)
        assert "from-back" not in apart.stdout
    finally:
        d.cli("rm", "-f", "backweb")
    bad = d.cli("create", "--network", "host", "--network", "front", "busybox", "true",
                check=False)  # fmt: skip
    assert bad.returncode == 125 and "conflicting options" in bad.stderr


def test_network_options_mtu_masquerade_and_bridge_name(net_hafend: NetHafend) -> None:
    d = net_hafend
    bad = d.cli("network", "create", "--opt", "com.docker.network.driver.mtu=huge", "badopt",
                check=False)  # fmt: skip
    assert bad.returncode == 1 and "com.docker.network.driver.mtu" in bad.stderr
    d.cli("network", "create", "--subnet", "10.82.0.0/24",
          "--opt", "com.docker.network.bridge.name=hafbr1",
          "--opt", "com.docker.network.driver.mtu=1400",
          "--opt", "com.docker.network.bridge.enable_ip_masquerade=false", "optnet")  # fmt: skip
    try:
        assert "badopt" not in d.cli("network", "ls").stdout
        assert "mtu 1400" in d.in_netns("ip", "-o", "link", "show", "hafbr1").stdout
        out = d.cli("run", "--rm", "--network", "optnet", "busybox", "cat",
                    "/sys/class/net/eth0/mtu")  # fmt: skip
        assert out.stdout == "1400\n"
        options = json.loads(d.cli("network", "inspect", "optnet").stdout)[0]["Options"]
        assert options["com.docker.network.bridge.name"] == "hafbr1"
        if shutil.which("nft"):
            masq = d.in_netns("nft", "list", "set", "ip", "hafen", "masq").stdout
            assert "10.82.0.0/24" not in masq and "172.17.0.0/16" in masq
        same = d.cli("network", "create", "--opt", "com.docker.network.bridge.name=hafbr1",
                     "again", check=False)  # fmt: skip
        assert same.returncode == 1 and "already used" in same.stderr
    finally:
        d.cli("network", "rm", "optnet")
    assert d.in_netns("ip", "link", "show", "hafbr1", check=False).returncode != 0


def test_network_ls_filters_inspect_containers_and_prune(net_hafend: NetHafend) -> None:
    d = net_hafend
    d.cli("network", "create", "--label", "stage=tmp", "unused1")
    d.cli("network", "create", "--label", "stage=tmp", "used1")
    d.cli("network", "create", "--label", "stage=keep", "unused2")
    cid = d.cli("run", "-d", "--network", "used1", "busybox", "sleep", "60").stdout.strip()
    try:
        names = d.cli("network", "ls", "--filter", "label=stage=tmp", "--format", "{{.Name}}")
        assert sorted(names.stdout.split()) == ["unused1", "used1"]
        doc = json.loads(d.cli("network", "inspect", "used1").stdout)[0]
        ip = _inspect(d, cid)["NetworkSettings"]["Networks"]["used1"]["IPAddress"]
        assert doc["Containers"][cid]["IPv4Address"] == f"{ip}/16"
        out = d.cli("network", "prune", "-f", "--filter", "label=stage=tmp").stdout
        assert "unused1" in out.split() and "used1" not in out.split()
        left = d.cli("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert "unused1" not in left and {"used1", "unused2", "bridge", "host", "none"} <= set(left)
    finally:
        d.cli("rm", "-f", cid)
        d.cli("network", "rm", "used1", "unused2", check=False)


def test_concurrent_starts_never_share_an_address(two_networks: NetHafend) -> None:
    from concurrent.futures import ThreadPoolExecutor

    d = two_networks

    def start(_: int) -> str:
        return d.cli("run", "-d", "--network", "back", "busybox", "sleep", "60").stdout.strip()

    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(start, range(8)))
    try:
        ips = [_inspect(d, i)["NetworkSettings"]["Networks"]["back"]["IPAddress"] for i in ids]
        assert len(set(ips)) == 8 and all(ip.startswith("10.78.0.") for ip in ips)
        inside = [
            d.cli("exec", i, "ip", "-o", "-4", "addr", "show", "eth0").stdout.split()[3]
            for i in ids
        ]
        assert sorted(inside) == sorted(f"{ip}/24" for ip in ips)
    finally:
        d.cli("rm", "-f", *ids)


def test_bridge_mac_is_fixed_while_veths_come_and_go(two_networks: NetHafend) -> None:
    """A bridge left to itself takes its ports' lowest MAC and changes it as veths come
    and go, so running containers would hold a stale ARP entry for their gateway."""
    d = two_networks
    bridge = json.loads(d.cli("network", "inspect", "back").stdout)[0]["Options"]
    name = bridge.get("com.docker.network.bridge.name") or (
        "br-" + json.loads(d.cli("network", "inspect", "back").stdout)[0]["Id"][:12]
    )

    def mac() -> str:
        return d.in_netns("ip", "-o", "link", "show", name).stdout.split("link/ether ")[1][:17]

    before = mac()
    assert before == "02:42:0a:4e:00:01"  # from the gateway's address, stable across restarts
    keep = d.cli("run", "-d", "--network", "back", "busybox", "sleep", "60").stdout.strip()
    try:
        for _ in range(3):
            d.cli("run", "--rm", "--network", "back", "busybox", "true")
            assert mac() == before
        out = d.cli("exec", keep, "sh", "-c", "ping -c 1 -W 1 10.78.0.1 >/dev/null; ip neigh")
        assert f"10.78.0.1 dev eth0 lladdr {before}" in out.stdout
    finally:
        d.cli("rm", "-f", keep)


def test_disconnecting_the_published_network_moves_or_closes_the_ports(
    two_networks: NetHafend,
) -> None:
    d = two_networks
    cid = d.cli("run", "-d", "--network", "front", "-p", "8686:80", "busybox", "sh", "-c",
                HTTPD).stdout.strip()  # fmt: skip
    try:
        assert _http_get_retry(d, "http://127.0.0.1:8686/") == "hello\n"
        d.cli("network", "connect", "back", cid)
        d.cli("network", "disconnect", "front", cid)
        back_ip = _inspect(d, cid)["NetworkSettings"]["Networks"]["back"]["IPAddress"]
        assert _http_get_retry(d, "http://127.0.0.1:8686/") == "hello\n"
        if shutil.which("nft"):
            assert f"tcp . 8686 : {back_ip} . 80" in _nft_ports(d)
        d.cli("network", "disconnect", "back", cid)
        assert d.cli("port", cid).stdout == ""
        with pytest.raises(subprocess.CalledProcessError):
            _http_get(d, "http://127.0.0.1:8686/")
        if shutil.which("nft"):
            assert "8686" not in _nft_ports(d)
    finally:
        d.cli("rm", "-f", cid)


def _http_get_retry(d: NetHafend, url: str) -> str:
    for _ in range(50):
        try:
            return _http_get(d, url)
        except subprocess.CalledProcessError:
            time.sleep(0.1)
    return ""


def test_endpoint_wiring_and_its_removal_at_stop(two_networks: NetHafend) -> None:
    """The container's end of the veth is made in its namespace as eth0 with the
    endpoint's MAC, address and default route; the host end is an up port of the
    network's bridge; stop returns only once that veth is gone from the bridge."""
    d = two_networks
    net_id = json.loads(d.cli("network", "inspect", "back").stdout)[0]["Id"]
    bridge = "br-" + net_id[:12]
    cid = d.cli("run", "-d", "--network", "back", "busybox", "sleep", "60").stdout.strip()
    try:
        ep = _inspect(d, cid)["NetworkSettings"]["Networks"]["back"]
        inside = d.cli("exec", cid, "sh", "-c", "cat /sys/class/net/eth0/address; "
                       "ip -o -4 addr show eth0; ip route").stdout  # fmt: skip
        last = int(ep["IPAddress"].split(".")[3])
        assert inside.splitlines()[0] == ep["MacAddress"] == f"02:42:0a:4e:00:{last:02x}"
        assert f"inet {ep['IPAddress']}/24" in inside
        assert "default via 10.78.0.1 dev eth0" in inside
        ports = d.in_netns("ip", "-o", "link", "show", "master", bridge).stdout.splitlines()
        veth = ports[0].split(":")[1].strip().split("@")[0]
        assert len(ports) == 1 and "state UP" in ports[0] and veth.startswith("veth")
        d.cli("stop", "-t", "0", cid)
        assert d.in_netns("ip", "-o", "link", "show", "master", bridge).stdout == ""
        assert veth not in d.in_netns("ip", "-o", "link").stdout
    finally:
        d.cli("rm", "-f", cid)


def test_hosts_files_are_rewritten_for_user_network_peers_only(two_networks: NetHafend) -> None:
    """A container coming or going on the default bridge leaves other containers' hosts
    files alone (the default bridge puts no peers there); on a user network each peer's
    hosts file gains the newcomer's names and loses them when it goes."""
    d = two_networks
    on_bridge = d.cli("run", "-d", "busybox", "sleep", "60").stdout.strip()
    try:
        hosts = Path(_inspect(d, on_bridge)["HostsPath"])
        before = (hosts.stat().st_mtime_ns, hosts.read_text())
        d.cli("run", "--rm", "busybox", "true")
        assert (hosts.stat().st_mtime_ns, hosts.read_text()) == before
        web_hosts = Path(_inspect(d, "web")["HostsPath"])
        d.cli("run", "-d", "--name", "newpeer", "--network", "front", "busybox", "sleep", "60")
        ip = _inspect(d, "newpeer")["NetworkSettings"]["Networks"]["front"]["IPAddress"]
        assert f"{ip}\tnewpeer " in web_hosts.read_text()
        assert f"{ip}\tnewpeer " in d.cli("exec", "web", "cat", "/etc/hosts").stdout
        d.cli("rm", "-f", "newpeer")
        assert "newpeer" not in web_hosts.read_text()
    finally:
        d.cli("rm", "-f", on_bridge, "newpeer", check=False)
