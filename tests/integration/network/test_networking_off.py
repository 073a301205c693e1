"""A daemon in the machine's own network namespace makes no bridges (the session daemon):
containers get a private namespace with only ``lo`` and publishing is refused."""

from __future__ import annotations

from tests.conftest import Hafend


def test_default_network_is_loopback_only_without_bridges(hafend: Hafend) -> None:
    out = hafend.cli("run", "--rm", "busybox", "ls", "/sys/class/net")
    assert out.stdout.split() == ["lo"]


def test_publishing_is_refused_where_bridge_networking_is_off(hafend: Hafend) -> None:
    out = hafend.cli("create", "-p", "8080:80", "busybox", "true", check=False)
    assert out.returncode == 125 and "published ports need bridge networking" in out.stderr
    assert '"bridge-on-host": true in daemon.json' in out.stderr
    assert "--bridge-on-host" in out.stderr.replace('"bridge-on-host"', "")
    out = hafend.cli("network", "create", "nope", check=False)
    assert out.returncode == 1 and "bridge networking is disabled" in out.stderr
    assert (
        '"bridge-on-host": true in daemon.json' in out.stderr
        and "hafend with --bridge-on-host" in out.stderr
    )
    assert "nope" not in hafend.cli("network", "ls").stdout


def test_host_gateway_is_refused_without_a_bridge(hafend: Hafend) -> None:
    out = hafend.cli("create", "--add-host", "gw:host-gateway", "busybox", "true", check=False)
    assert out.returncode == 125 and "unable to derive the IP value for host-gateway" in out.stderr
