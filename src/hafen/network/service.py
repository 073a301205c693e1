"""The network service: networks, their IPAM, and containers' namespaces and endpoints.

``NetworkService`` owns the ``networks`` and ``ip_allocations`` tables and every device
it creates. The predefined networks ``bridge`` (device ``hafen0``), ``host`` and
``none`` exist from daemon start. A container on bridge networks gets its own network
namespace as a bind-mounted file under ``<exec-root>/netns/<id>``, made and wired here
before the runtime starts and removed when the container stops.

Safety: devices are only created when the daemon runs in a network namespace of its own
or daemon.json sets ``"bridge-on-host": true`` (flag ``--bridge-on-host``); otherwise bridge networking is off
(containers get a private namespace with only ``lo``) and creating networks is refused.
``"bridge": "none"`` in daemon.json (dockerd's ``--bridge=none``) leaves out only the
default ``bridge`` network: containers that name no network get ``none`` (a namespace
with only ``lo``), and user-defined networks still work.

Every method blocks (netlink, SQLite, mount): callers on the event loop use threads.
"""

from __future__ import annotations

import builtins
import ipaddress
import logging
import secrets
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from hafen.errors import Conflict, Forbidden, HafenError, InvalidArgument, NotFound
from hafen.network import ipam, netns
from hafen.network.bridge import BridgeDriver, mac_for, veth_name
from hafen.network.driver import NetworkDriver
from hafen.network.model import (
    OPT_BRIDGE_NAME,
    OPT_MASQUERADE,
    OPT_MTU,
    Endpoint,
    EndpointRequest,
    Network,
)
from hafen.store.metadata import MetadataStore
from hafen.volumes.service import label_filter_matches

log = logging.getLogger("hafen.network")

DEFAULT_BRIDGE = "hafen0"
# how an administrator turns bridges on where hafend shares the machine's namespace
BRIDGE_ON_HOST_HINT = (
    'set "bridge-on-host": true in daemon.json or start hafend with --bridge-on-host'
)


class NetworkNotFound(NotFound):
    def __init__(self, ref: str) -> None:
        super().__init__(f"network {ref} not found")


def _validated_options(options: dict[str, str]) -> dict[str, str]:
    """``--opt`` values the bridge driver reads, checked before anything is made (others
    are kept and shown by inspect, as dockerd does)."""
    masq = options.get(OPT_MASQUERADE)
    if masq is not None:
        if masq.lower() not in ("true", "false"):
            raise InvalidArgument(
                f"invalid value {masq!r} for option {OPT_MASQUERADE} (true or false)"
            )
        options[OPT_MASQUERADE] = masq.lower()
    mtu = options.get(OPT_MTU)
    if mtu is not None and not (mtu.isdigit() and 68 <= int(mtu) <= 65535):
        raise InvalidArgument(f"invalid value {mtu!r} for option {OPT_MTU} (68 to 65535)")
    return options


def _now() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


class NetworkService:
    def __init__(
        self,
        metadata: MetadataStore,
        exec_root: Path,
        enabled: bool,
        default_bridge: str = DEFAULT_BRIDGE,
        default_bridge_enabled: bool = True,
    ) -> None:
        self.metadata = metadata
        self.netns_dir = exec_root / "netns"
        self.enabled = enabled
        self.default_bridge = default_bridge
        self.default_bridge_enabled = default_bridge_enabled
        self.drivers: dict[str, NetworkDriver] = {"bridge": BridgeDriver()}
        self._users: Callable[[str], builtins.list[str]] = lambda network_id: []
        self._lock = threading.RLock()
        self.on_change: Callable[[], None] | None = None  # after a network is made or removed

    def set_users(self, users: Callable[[str], builtins.list[str]]) -> None:
        """``users(network_id)`` → ids of the containers configured on that network."""
        self._users = users

    # ------------------------------------------------------------------ records

    def list(self) -> builtins.list[Network]:
        rows = self.metadata.query("SELECT record FROM networks ORDER BY name")
        return [Network.from_json(r["record"]) for r in rows]

    def get(self, ref: str) -> Network:
        """By full id, name, or unique id prefix."""
        if not ref:
            raise NetworkNotFound(ref)
        nets = self.list()
        for n in nets:
            if n.id == ref or n.name == ref:
                return n
        matches = [n for n in nets if n.id.startswith(ref)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            raise InvalidArgument(f"network {ref} is ambiguous ({len(matches)} matches found)")
        raise NetworkNotFound(ref)

    def users(self, network_id: str) -> builtins.list[str]:
        return self._users(network_id)

    def _insert(self, network: Network) -> None:
        with self.metadata.transaction() as db:
            db.execute(
                "INSERT INTO networks(id, name, record) VALUES(?,?,?)",
                (network.id, network.name, network.to_json()),
            )

    # ------------------------------------------------------------------ start-up

    def start(self, running: set[str]) -> None:
        """Create the predefined networks, recreate bridges, drop stale allocations."""
        with self._lock:
            names = {n.name for n in self.list()}
            if "bridge" not in names and self.default_bridge_enabled:
                self._insert(
                    Network(
                        id=secrets.token_hex(32),
                        name="bridge",
                        driver="bridge",
                        created=_now(),
                        subnet=ipam.DEFAULT_BRIDGE_SUBNET,
                        gateway="172.17.0.1",
                        bridge=self.default_bridge,
                        options={
                            "com.docker.network.bridge.default_bridge": "true",
                            "com.docker.network.bridge.name": self.default_bridge,
                        },
                    )
                )
            for name, driver in (("host", "host"), ("none", "null")):
                if name not in names:
                    self._insert(
                        Network(id=secrets.token_hex(32), name=name, driver=driver, created=_now())
                    )
            with self.metadata.transaction() as db:
                rows = db.execute("SELECT DISTINCT container_id FROM ip_allocations").fetchall()
                for (cid,) in rows:
                    if cid not in running:
                        db.execute("DELETE FROM ip_allocations WHERE container_id = ?", (cid,))
            if self.netns_dir.is_dir():
                for path in self.netns_dir.iterdir():
                    if path.name not in running:
                        netns.remove(path)
            if self.enabled:
                for n in self.list():
                    if n.driver == "bridge":
                        try:
                            self.drivers["bridge"].create(n)
                        except HafenError as e:
                            log.error("network %s: %s", n.name, e)

    # ------------------------------------------------------------------ networks

    def create(
        self,
        name: str,
        driver: str = "bridge",
        subnet: str = "",
        gateway: str = "",
        ip_range: str = "",
        internal: bool = False,
        labels: dict[str, str] | None = None,
        options: dict[str, str] | None = None,
        check_duplicate: bool = True,
    ) -> Network:
        if not name:
            raise InvalidArgument("a network name is required")
        if driver not in ("bridge",):
            if driver in ("host", "null"):
                raise Forbidden(f'only one instance of "{driver}" network is allowed')
            raise NotFound(f'plugin "{driver}" not found')
        if not self.enabled:
            raise Forbidden(
                "bridge networking is disabled: hafend runs in the machine's own network "
                f"namespace; {BRIDGE_ON_HOST_HINT} to allow it"
            )
        options = _validated_options(dict(options or {}))
        with self._lock:
            existing = self.list()
            if any(n.name == name for n in existing):
                raise Conflict(f"network with name {name} already exists")
            taken = [n.subnet for n in existing if n.subnet]
            user_subnet = bool(subnet)
            if subnet:
                subnet, gateway, ip_range = ipam.validate_subnet(subnet, gateway, ip_range, taken)
            else:
                if gateway or ip_range:
                    raise InvalidArgument("--gateway and --ip-range need --subnet")
                subnet = ipam.choose_subnet(taken)
                gateway = str(ipaddress.IPv4Network(subnet).network_address + 1)
            net_id = secrets.token_hex(32)
            bridge = options.get(OPT_BRIDGE_NAME) or f"br-{net_id[:12]}"
            if any(n.bridge == bridge for n in existing):
                raise Conflict(f"bridge name {bridge} is already used by another network")
            if len(bridge) > 15:
                raise InvalidArgument(f"bridge name {bridge!r} is longer than 15 characters")
            network = Network(
                id=net_id,
                name=name,
                driver=driver,
                created=_now(),
                subnet=subnet,
                gateway=gateway,
                ip_range=ip_range,
                internal=internal,
                labels=dict(labels or {}),
                options=options,
                bridge=bridge,
                user_subnet=user_subnet,
            )
            self.drivers[driver].create(network)
            try:
                self._insert(network)
            except BaseException:
                self.drivers[driver].delete(network)
                raise
        self._changed()
        return network

    def remove(self, ref: str) -> None:
        with self._lock:
            network = self.get(ref)
            if not network.user_defined:
                raise Forbidden(f"{network.name} is a pre-defined network and cannot be removed")
            users = self._users(network.id)
            if users:
                raise Conflict(
                    f"error while removing network: network {network.name} id {network.id} "
                    f"has active endpoints ({', '.join(u[:12] for u in users)})"
                )
            with self.metadata.transaction() as db:
                db.execute("DELETE FROM networks WHERE id = ?", (network.id,))
                db.execute("DELETE FROM ip_allocations WHERE network_id = ?", (network.id,))
                if network.driver in self.drivers and self.enabled:
                    self.drivers[network.driver].delete(network)
        self._changed()

    def _changed(self) -> None:
        if self.on_change is None:
            return
        try:
            self.on_change()
        except HafenError as e:  # the network itself is fine; its firewall rules are not
            log.error("updating nftables after a network change: %s", e)

    def prune(self, labels: builtins.list[str]) -> builtins.list[str]:
        removed = []
        for network in self.list():
            if not network.user_defined or self._users(network.id):
                continue
            if not label_filter_matches(network.labels, labels):
                continue
            try:
                self.remove(network.id)
            except (Conflict, NotFound) as e:
                log.info("prune skipped %s: %s", network.name, e)
                continue
            removed.append(network.name)
        return removed

    # ------------------------------------------------------------------ containers

    def requests_for(
        self, network_mode: str, endpoints: dict[str, EndpointRequest]
    ) -> dict[str, EndpointRequest]:
        """The networks a new container joins, by network id; validates ``--ip`` and aliases."""
        mode = network_mode or "default"
        if mode == "default" and not self.default_bridge_enabled:
            mode = "none"  # dockerd --bridge=none: no default network to join
            endpoints = {k: v for k, v in endpoints.items() if k not in ("default", "none")}
        if mode in ("host", "none") or mode.startswith("container:"):
            if endpoints and any(k not in (mode,) for k in endpoints):
                raise InvalidArgument(
                    f"container cannot be connected to other networks with network mode {mode}"
                )
            return {}
        primary = "bridge" if mode == "default" else mode
        # clients name the default network "default" or "bridge" in EndpointsConfig
        named = {("bridge" if k == "default" else k): v for k, v in endpoints.items()}
        wanted = {primary: named.get(primary, EndpointRequest())}
        for name, req in named.items():
            wanted.setdefault(name, req)
        out: dict[str, EndpointRequest] = {}
        for name, req in wanted.items():
            network = self.get(name)
            if network.driver != "bridge":
                raise InvalidArgument(
                    f"container cannot be connected to network {name} together with others"
                )
            if not network.user_defined and (req.ipv4_address or req.aliases):
                raise InvalidArgument(
                    "user specified IP address is supported on user defined networks only"
                    if req.ipv4_address
                    else "network-scoped alias is supported only for containers in user defined networks"
                )
            if req.ipv4_address and not network.user_subnet:
                raise InvalidArgument(
                    "user specified IP address is supported only when connecting to networks "
                    "with user configured subnets"
                )
            if req.ipv4_address:
                try:
                    addr = ipaddress.IPv4Address(req.ipv4_address)
                except ValueError:
                    raise InvalidArgument(f"invalid IPv4 address: {req.ipv4_address}")
                if addr not in ipaddress.IPv4Network(network.subnet):
                    raise InvalidArgument(
                        f"no configured subnet contains IP address {addr} on network {name}"
                    )
            out[network.id] = EndpointRequest(
                ipv4_address=req.ipv4_address, aliases=list(req.aliases), network_name=network.name
            )
        return out

    def netns_path(self, container_id: str) -> Path:
        return self.netns_dir / container_id

    def attach(
        self, container_id: str, requests: dict[str, EndpointRequest]
    ) -> tuple[str, builtins.list[Endpoint]]:
        """A new namespace for the container, joined to every requested network.

        Returns ("", []) when bridge networking is disabled: the runtime then makes a
        private namespace with only ``lo``. On any failure everything is undone.
        """
        if not self.enabled or not requests:
            return "", []
        path = self.netns_path(container_id)
        netns.create(path)
        endpoints: builtins.list[Endpoint] = []
        try:
            for network_id, req in requests.items():
                endpoints.append(self._join(container_id, str(path), network_id, req, endpoints))
        except BaseException:
            self.detach(container_id, endpoints)
            raise
        return str(path), endpoints

    def connect(
        self, container_id: str, netns_path: str, network_id: str, req: EndpointRequest,
        current: builtins.list[Endpoint],
    ) -> Endpoint:  # fmt: skip
        """Join a running container's namespace to one more network."""
        return self._join(container_id, netns_path, network_id, req, current)

    def _join(
        self,
        container_id: str,
        netns_path: str,
        network_id: str,
        req: EndpointRequest,
        current: builtins.list[Endpoint],
    ) -> Endpoint:
        network = self.get(network_id)
        with self.metadata.transaction() as db:
            ip = ipam.allocate(db, network, container_id, req.ipv4_address)
        used = {e.ifname for e in current}
        ifname = next(f"eth{i}" for i in range(len(current) + 1) if f"eth{i}" not in used)
        endpoint = Endpoint(
            network_id=network.id,
            network_name=network.name,
            container_id=container_id,
            endpoint_id=secrets.token_hex(32),
            ip=ip,
            prefixlen=ipaddress.IPv4Network(network.subnet).prefixlen,
            gateway=network.gateway,
            mac=mac_for(ip),
            ifname=ifname,
            host_ifname=veth_name(),
            aliases=list(req.aliases),
        )
        default_route = not network.internal and not any(
            not self._internal(e.network_id) for e in current
        )
        try:
            self.drivers[network.driver].join(network, endpoint, netns_path, default_route)
        except BaseException:
            with self.metadata.transaction() as db:
                ipam.release(db, network.id, container_id)
            raise
        return endpoint

    def _internal(self, network_id: str) -> bool:
        try:
            return self.get(network_id).internal
        except NotFound:
            return False

    def disconnect(self, endpoint: Endpoint) -> None:
        try:
            network = self.get(endpoint.network_id)
            self.drivers[network.driver].leave(network, endpoint)
        except HafenError as e:
            log.warning("leaving network %s: %s", endpoint.network_name, e)
        with self.metadata.transaction() as db:
            ipam.release(db, endpoint.network_id, endpoint.container_id)

    def detach(self, container_id: str, endpoints: builtins.list[Endpoint]) -> None:
        """Undo ``attach``: endpoints, addresses, the namespace file."""
        for endpoint in endpoints:
            self.disconnect(endpoint)
        with self.metadata.transaction() as db:
            db.execute("DELETE FROM ip_allocations WHERE container_id = ?", (container_id,))
        netns.remove(self.netns_path(container_id))
