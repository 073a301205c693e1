"""IPAM: subnet choice and validation, addresses never handed out twice, persistence."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.errors import Conflict, InvalidArgument
from hafen.network import ipam
from hafen.network.model import Network
from hafen.store.metadata import MetadataStore


def _net(**kw: str) -> Network:
    base = {"id": "n1", "name": "front", "driver": "bridge", "created": "", "subnet": "10.1.0.0/29",
            "gateway": "10.1.0.1"}  # fmt: skip
    base.update(kw)
    return Network(**base)  # type: ignore[arg-type]


def test_choose_subnet_skips_overlapping_pools() -> None:
    assert ipam.choose_subnet(["172.17.0.0/16"]) == "172.18.0.0/16"
    assert ipam.choose_subnet(["172.17.0.0/16", "172.18.5.0/24"]) == "172.19.0.0/16"


def test_validate_subnet_refuses_overlaps_and_bad_gateways() -> None:
    assert ipam.validate_subnet("10.2.0.5/24", "", "", []) == ("10.2.0.0/24", "10.2.0.1", "")
    with pytest.raises(Conflict, match="overlaps"):
        ipam.validate_subnet("10.2.0.0/16", "", "", ["10.2.3.0/24"])
    with pytest.raises(InvalidArgument, match="gateway"):
        ipam.validate_subnet("10.2.0.0/24", "10.3.0.1", "", [])
    with pytest.raises(InvalidArgument, match="ip-range"):
        ipam.validate_subnet("10.2.0.0/24", "", "10.9.0.0/28", [])
    with pytest.raises(InvalidArgument, match="invalid subnet"):
        ipam.validate_subnet("banana", "", "", [])


def test_addresses_are_unique_until_released_and_survive_a_reopen(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.db")
    net = _net()
    with store.transaction() as db:
        got = [ipam.allocate(db, net, f"c{i}") for i in range(5)]  # a /29 has 5 free hosts
    assert got == [f"10.1.0.{i}" for i in range(2, 7)]
    with store.transaction() as db, pytest.raises(Conflict, match="no available"):
        ipam.allocate(db, net, "c9")
    store.close()
    reopened = MetadataStore(tmp_path / "m.db")  # a daemon restart
    with reopened.transaction() as db:
        with pytest.raises(Conflict, match="Address already in use"):
            ipam.allocate(db, net, "c9", "10.1.0.4")
        ipam.release(db, net.id, "c2")
        assert ipam.allocate(db, net, "c9") == "10.1.0.4"
    with reopened.transaction() as db:
        with pytest.raises(InvalidArgument, match="no configured subnet"):
            ipam.allocate(db, net, "c10", "10.9.9.9")
        with pytest.raises(Conflict):
            ipam.allocate(db, net, "c10", "10.1.0.1")  # the gateway


def test_ip_range_limits_the_pool(tmp_path: Path) -> None:
    store = MetadataStore(tmp_path / "m.db")
    net = _net(subnet="10.5.0.0/16", ip_range="10.5.7.0/30")
    with store.transaction() as db:
        assert [ipam.allocate(db, net, f"c{i}") for i in range(2)] == ["10.5.7.1", "10.5.7.2"]
        with pytest.raises(Conflict):
            ipam.allocate(db, net, "c3")
