"""``hafend --bridge=none`` (dockerd's flag; ``"bridge": "none"`` in daemon.json): no
default bridge network; containers that name no network get only ``lo``, and
user-defined networks still work."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.integration.network.conftest import NetHafend


@pytest.fixture(scope="module")
def nobridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-nobridge"), ["--bridge=none"])
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def test_no_default_bridge_network_and_containers_get_only_lo(nobridge: NetHafend) -> None:
    names = nobridge.cli("network", "ls", "--format", "{{.Name}}").stdout.split()
    assert sorted(names) == ["host", "none"]
    out = nobridge.cli("run", "--rm", "busybox", "ls", "/sys/class/net")
    assert out.stdout.split() == ["lo"]
    assert "hafen0" not in nobridge.in_netns("ip", "-o", "link").stdout


def test_user_defined_networks_still_work_without_the_default_bridge(
    nobridge: NetHafend,
) -> None:
    nobridge.cli("network", "create", "front")
    try:
        out = nobridge.cli("run", "--rm", "--network", "front", "busybox", "ls", "/sys/class/net")
        assert sorted(out.stdout.split()) == ["eth0", "lo"]
    finally:
        nobridge.cli("network", "rm", "front")
