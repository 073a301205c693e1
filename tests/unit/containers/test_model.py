"""The container record's JSON: what the metadata database stores and restore reads back."""

from __future__ import annotations

import dataclasses
import json

import pytest

from hafen.containers.model import (
    Container,
    ContainerConfig,
    ContainerStateRecord,
    ContainerStatus,
    HostConfig,
    RestartPolicy,
)
from hafen.network.model import Endpoint, EndpointRequest
from hafen.network.ports import PortBinding
from hafen.volumes.model import MountPoint


def _full_container() -> Container:
    """A record with every nested kind filled: dataclasses in lists, dicts and fields."""
    return Container(
        id="c" * 64,
        name="/web",
        created="2026-11-23T18:00:00.123456789Z",
        image_id="sha256:" + "a" * 64,
        image_ref="busybox",
        config=ContainerConfig(image="busybox", cmd=["sh", "-c", "echo ü"], env=["A=1"]),
        host_config=HostConfig(
            restart_policy=RestartPolicy(name="on-failure", maximum_retry_count=3),
            mounts=[MountPoint(type="volume", destination="/data", name="v1")],
            tmpfs={"/run": "size=1m"},
            port_bindings={"80/tcp": [{"HostIp": "", "HostPort": "8080"}]},
            ulimits=[{"Name": "nofile", "Soft": 1024, "Hard": 2048}],
        ),
        args=["-c", "echo ü"],
        state=ContainerStateRecord(
            status=ContainerStatus.RUNNING, pid=42, health={"Status": "starting", "Log": []}
        ),
        mount_points=[MountPoint(type="bind", destination="/src", source="/tmp/src")],
        networks={"n1": EndpointRequest(aliases=["web"], network_name="front")},
        endpoints=[
            Endpoint(
                network_id="n1",
                network_name="front",
                container_id="c" * 64,
                endpoint_id="e1",
                ip="10.0.0.2",
                prefixlen=24,
                gateway="10.0.0.1",
                mac="02:42:0a:00:00:02",
                ifname="eth0",
                host_ifname="veth1",
            )
        ],
        ports=[PortBinding(proto="tcp", container_port=80, host_ip="0.0.0.0", host_port=8080)],
    )


def test_the_record_is_the_json_of_asdict_byte_for_byte() -> None:
    # records written before the encoder walked the tree must stay readable, and new ones
    # must read the same in an older daemon
    c = _full_container()
    assert c.to_json() == json.dumps(dataclasses.asdict(c), separators=(",", ":"))


def test_the_record_round_trips() -> None:
    c = _full_container()
    again = Container.from_json(c.to_json())
    assert again == c
    assert again.state.status is ContainerStatus.RUNNING


def test_a_value_json_cannot_hold_is_refused_by_name() -> None:
    c = _full_container()
    c.state.health = {"when": object()}
    with pytest.raises(TypeError, match="object is not JSON serializable"):
        c.to_json()
