"""The embedded DNS server (127.0.0.11) of user-defined networks, asked directly.

The daemon runs in a private network *and* mount namespace whose /etc/resolv.conf names
127.0.0.53 only, where a fake upstream server of the test's own answers (as
systemd-resolved would on a host): so "other names go to the host's resolvers" is
proven without a ``--dns`` flag. Queries are made with a raw DNS client inside the
container's network namespace, so /etc/hosts never answers for the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.network.conftest import NetHafend

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[2]
UPSTREAM_ANSWER = "10.20.30.40"


class DnsSetup:
    def __init__(self, daemon: NetHafend, queries: Path) -> None:
        self.d = daemon
        self.queries = queries  # what the fake upstream was asked

    def inspect(self, ref: str) -> dict[str, Any]:
        return dict(json.loads(self.d.cli("inspect", ref).stdout)[0])

    def ip(self, ref: str, network: str) -> str:
        return str(self.inspect(ref)["NetworkSettings"]["Networks"][network]["IPAddress"])

    def ask(self, ref: str, name: str, qtype: str = "A", proto: str = "udp") -> dict[str, Any]:
        """Ask 127.0.0.11 from inside the network namespace of container ``ref``."""
        pid = self.inspect(ref)["State"]["Pid"]
        out = subprocess.run(
            ["nsenter", f"--net=/proc/{pid}/ns/net", "--", sys.executable,
             str(HERE / "dns_client.py"), "127.0.0.11", name, qtype, proto],
            capture_output=True, text=True, timeout=30, check=True,
        )  # fmt: skip
        return dict(json.loads(out.stdout))


@pytest.fixture(scope="module")
def dns(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DnsSetup]:
    root = tmp_path_factory.mktemp("hafend-dns")
    resolv = root / "host-resolv.conf"
    resolv.write_text("nameserver 127.0.0.53\nsearch corp.test\n")
    queries = root / "upstream-queries.log"
    queries.touch()
    daemon = NetHafend(root / "daemon")
    daemon.resolv_conf = resolv
    stub: subprocess.Popen[str] | None = None
    try:
        daemon.start()
        stub = subprocess.Popen(
            ["nsenter", f"--net=/proc/{daemon.daemon_pid}/ns/net", "--", sys.executable,
             str(HERE / "dns_stub.py"), "127.0.0.53", UPSTREAM_ANSWER, "600", str(queries)],
            stdout=subprocess.PIPE, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        assert stub.stdout is not None and stub.stdout.readline().strip() == "ready"
        daemon.bootstrap()
        daemon.cli("network", "create", "--subnet", "10.71.0.0/24", "front")
        daemon.cli("network", "create", "--subnet", "10.72.0.0/24", "back")
        daemon.cli("run", "-d", "--name", "web", "--hostname", "webhost", "--network", "front",
                   "--network-alias", "www", "busybox", "sleep", "600")  # fmt: skip
        daemon.cli("run", "-d", "--name", "asker", "--network", "front", "busybox", "sleep", "600")
        daemon.cli("run", "-d", "--name", "outsider", "--network", "back", "busybox", "sleep",
                   "600")  # fmt: skip
        yield DnsSetup(daemon, queries)
    finally:
        daemon.cleanup()
        if stub is not None:
            stub.kill()
            stub.wait(timeout=10)


def test_resolv_conf_names_the_embedded_server_and_keeps_the_hosts_search(
    dns: DnsSetup,
) -> None:
    out = dns.d.cli("exec", "asker", "cat", "/etc/resolv.conf").stdout
    assert out == "nameserver 127.0.0.11\nsearch corp.test\n"
    # the default bridge has no embedded server, and the host's only server is loopback
    # (unreachable from a container): Docker's public fallback, as dockerd writes it
    out = dns.d.cli("run", "--rm", "busybox", "cat", "/etc/resolv.conf").stdout
    assert out == "nameserver 8.8.8.8\nnameserver 8.8.4.4\nsearch corp.test\n"


def test_names_aliases_hostnames_and_short_ids_resolve_on_the_network(dns: DnsSetup) -> None:
    web_ip = dns.ip("web", "front")
    short_id = dns.inspect("web")["Id"][:12]
    for name in ("web", "www", "webhost", short_id, "web.front", "WWW"):
        for proto in ("udp", "tcp"):
            got = dns.ask("asker", name, proto=proto)
            assert got == {"rcode": 0, "tc": False, "answers": [web_ip]}, (name, proto)
    assert "web" not in dns.queries.read_text().split()  # answered, never forwarded


def test_aaaa_for_a_container_name_is_noerror_without_records(dns: DnsSetup) -> None:
    # busybox and glibc ask A and AAAA together; NXDOMAIN here would fail the lookup
    for name in ("web", "www"):
        assert dns.ask("asker", name, "AAAA") == {"rcode": 0, "tc": False, "answers": []}
    out = dns.d.cli("exec", "asker", "nslookup", "www.")
    assert f"Address: {dns.ip('web', 'front')}" in out.stdout


def test_other_names_go_to_the_hosts_resolvers(dns: DnsSetup) -> None:
    got = dns.ask("asker", "www.example.test")
    assert got == {"rcode": 0, "tc": False, "answers": [UPSTREAM_ANSWER]}
    assert "udp www.example.test 1" in dns.queries.read_text().splitlines()
    assert dns.ask("asker", "nx.example.org")["rcode"] == 3  # NXDOMAIN relayed as is
    out = dns.d.cli("exec", "asker", "nslookup", "app.example.test")  # the resolver's way
    assert f"Address: {UPSTREAM_ANSWER}" in out.stdout


def test_a_truncated_upstream_answer_is_fetched_again_over_tcp(dns: DnsSetup) -> None:
    over_udp = dns.ask("asker", "big.example.test")
    assert over_udp["tc"] is True and over_udp["answers"] == []
    over_tcp = dns.ask("asker", "big.example.test", proto="tcp")
    assert over_tcp["rcode"] == 0 and len(over_tcp["answers"]) == 40
    asked = dns.queries.read_text().splitlines()
    assert "udp big.example.test 1" in asked and "tcp big.example.test 1" in asked


def test_containers_on_other_networks_are_not_answered(dns: DnsSetup) -> None:
    web_ip = dns.ip("web", "front")
    short_id = dns.inspect("web")["Id"][:12]
    for name in ("web", "www", short_id):
        got = dns.ask("outsider", name)
        assert web_ip not in got["answers"] and got["rcode"] == 3, name  # the upstream's NXDOMAIN
    # a container on both networks is answered with its address on the asker's network
    dns.d.cli("network", "connect", "--alias", "both", "back", "web")
    try:
        back_ip = dns.ip("web", "back")
        assert dns.ask("outsider", "both")["answers"] == [back_ip]
        assert dns.ask("outsider", "web")["answers"] == [back_ip]
        assert dns.ask("asker", "web")["answers"] == [web_ip]
        assert dns.ask("asker", "both")["rcode"] == 3  # that alias lives on back only
    finally:
        dns.d.cli("network", "disconnect", "back", "web")
    assert dns.ask("outsider", "web")["rcode"] == 3


def test_a_container_connected_later_gets_the_embedded_server(dns: DnsSetup) -> None:
    """Started on the default bridge (no embedded server, public resolvers), then
    connected to a user-defined network: the server starts and resolv.conf names it."""
    dns.d.cli("run", "-d", "--name", "late", "busybox", "sleep", "600")
    try:
        dns.d.cli("network", "connect", "front", "late")
        out = dns.d.cli("exec", "late", "cat", "/etc/resolv.conf").stdout
        assert out == "nameserver 127.0.0.11\nsearch corp.test\n"
        assert dns.ask("late", "www")["answers"] == [dns.ip("web", "front")]
        assert dns.ask("late", "www.example.test")["answers"] == [UPSTREAM_ANSWER]
    finally:
        dns.d.cli("rm", "-f", "late")
