"""Network and endpoint records: what the daemon stores (Docker's JSON lives in api/)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any

PREDEFINED = ("bridge", "host", "none")

# the bridge driver options (``network create --opt``) hafen honours, by Docker's names
OPT_BRIDGE_NAME = "com.docker.network.bridge.name"
OPT_MASQUERADE = "com.docker.network.bridge.enable_ip_masquerade"
OPT_MTU = "com.docker.network.driver.mtu"


@dataclass
class Network:
    id: str
    name: str
    driver: str  # bridge, host, null
    created: str
    subnet: str = ""  # CIDR, "" for host/none
    gateway: str = ""
    ip_range: str = ""
    internal: bool = False
    labels: dict[str, str] = field(default_factory=dict)
    options: dict[str, str] = field(default_factory=dict)
    bridge: str = ""  # the Linux bridge device
    user_subnet: bool = False  # --subnet given: only then may containers ask for an --ip

    @property
    def user_defined(self) -> bool:
        return self.name not in PREDEFINED

    @property
    def masquerade(self) -> bool:
        """Whether traffic leaving the network is masqueraded (never for internal ones)."""
        return not self.internal and self.options.get(OPT_MASQUERADE, "true") != "false"

    @property
    def mtu(self) -> int:
        """The MTU of the bridge and its veths; 0: the kernel's default."""
        return int(self.options.get(OPT_MTU) or 0)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Network:
        raw = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


@dataclass
class EndpointRequest:
    """What a container asked for on one network (``--ip``, ``--network-alias``)."""

    ipv4_address: str = ""
    aliases: list[str] = field(default_factory=list)
    network_name: str = ""  # filled in when resolved, for inspect


@dataclass
class Endpoint:
    """A container's attachment to a network while it runs."""

    network_id: str
    network_name: str
    container_id: str
    endpoint_id: str
    ip: str
    prefixlen: int
    gateway: str
    mac: str
    ifname: str  # inside the container (eth0, eth1, …)
    host_ifname: str  # the veth end on the bridge
    aliases: list[str] = field(default_factory=list)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Endpoint:
        raw: dict[str, Any] = json.loads(text)
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})
