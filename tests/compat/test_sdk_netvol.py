"""The Docker SDK for Python against hafend: volumes, networks, published ports."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.conftest import Hafend
from tests.integration.network.conftest import NetHafend

docker = pytest.importorskip("docker")


@pytest.fixture
def sdk(hafend: Hafend) -> Iterator[Any]:
    client = docker.DockerClient(base_url=hafend.host, timeout=60)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="module")
def net_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[NetHafend]:
    daemon = NetHafend(tmp_path_factory.mktemp("hafend-sdk-net"))
    try:
        daemon.start()
        daemon.bootstrap()
        yield daemon
    finally:
        daemon.cleanup()


def test_sdk_volume_lifecycle(sdk: Any) -> None:
    vol = sdk.volumes.create("sdkvol", labels={"k": "v"})
    assert vol.name == "sdkvol" and vol.attrs["Driver"] == "local"
    assert "sdkvol" in [v.name for v in sdk.volumes.list(filters={"label": "k=v"})]
    out = sdk.containers.run("busybox", ["sh", "-c", "echo kept > /v/f"], remove=True,
                             volumes={"sdkvol": {"bind": "/v", "mode": "rw"}})  # fmt: skip
    assert out == b""
    out = sdk.containers.run("busybox", ["cat", "/v/f"], remove=True,
                             volumes=["sdkvol:/v:ro"])  # fmt: skip
    assert out == b"kept\n"
    sdk.volumes.get("sdkvol").remove()
    with pytest.raises(docker.errors.NotFound):
        sdk.volumes.get("sdkvol")


def test_sdk_networks_and_ports(net_daemon: NetHafend) -> None:
    sdk = docker.DockerClient(base_url=net_daemon.host, timeout=60)
    try:
        ipam = docker.types.IPAMConfig(pool_configs=[docker.types.IPAMPool(subnet="10.55.0.0/24")])
        net = sdk.networks.create("sdknet", driver="bridge", ipam=ipam)
        web = sdk.containers.run("busybox", ["sleep", "60"], detach=True, network="sdknet",
                                 ports={"80/tcp": ("127.0.0.1", 8585)})  # fmt: skip
        try:
            web.reload()
            settings = web.attrs["NetworkSettings"]
            assert settings["Networks"]["sdknet"]["IPAddress"].startswith("10.55.0.")
            assert settings["Ports"]["80/tcp"] == [{"HostIp": "127.0.0.1", "HostPort": "8585"}]
            net.reload()
            assert web.id in net.attrs["Containers"]
            net.disconnect(web)
            net.reload()
            assert web.id not in net.attrs["Containers"]
        finally:
            web.remove(force=True)
        net.remove()
        assert "sdknet" not in [n.name for n in sdk.networks.list()]
    finally:
        sdk.close()
