"""The ``bridge`` driver: a Linux bridge per network, a veth pair per endpoint (netlink).

Everything goes through pyroute2's netlink sockets; no ``ip`` command is run or parsed.
The container end of a veth is made in the container's namespace (by file descriptor of
the bind-mounted netns file) as ``ethN`` with its MAC, then given its address and, for
the first non-internal network, the default route through the bridge's gateway.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
from typing import TYPE_CHECKING, Any

from hafen.errors import RuntimeFailure
from hafen.network.linkdel import delete_link
from hafen.network.model import Endpoint, Network
from hafen.network.netns import run_in

if TYPE_CHECKING:
    from pyroute2 import IPRoute


def netlink() -> tuple[type[IPRoute], type[Exception]]:
    """pyroute2's ``IPRoute`` and ``NetlinkError``, imported at the first netlink call:
    pyroute2 costs ~9 MB and ~80 ms of imports, which a daemon without bridges (the
    usual case on a host, and ``--bridge=none``) never needs."""
    from pyroute2 import IPRoute
    from pyroute2.netlink.exceptions import NetlinkError

    return IPRoute, NetlinkError


def _prefix(network: Network) -> int:
    return ipaddress.IPv4Network(network.subnet).prefixlen


def veth_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


class BridgeDriver:
    name = "bridge"

    def create(self, network: Network) -> None:
        # the classes under their own names, so the code reads as pyroute2's documentation
        IPRoute, NetlinkError = netlink()
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=network.bridge)
            try:
                if not found:
                    extra = {"mtu": network.mtu} if network.mtu else {}
                    ipr.link("add", ifname=network.bridge, kind="bridge", **extra)
                    found = ipr.link_lookup(ifname=network.bridge)
                index = found[0]
                # a fixed MAC: a bridge without one takes the lowest of its ports' MACs
                # and changes it as veths come and go, which leaves every container's
                # ARP entry for the gateway stale (connections stall until it is probed)
                ipr.link("set", index=index, address=mac_for(network.gateway))
                have = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(index=index, family=2)}
                if network.gateway not in have:
                    ipr.addr(
                        "add", index=index, address=network.gateway, prefixlen=_prefix(network)
                    )
                ipr.link("set", index=index, state="up")
            except NetlinkError as e:
                raise RuntimeFailure(f"creating bridge {network.bridge} for {network.name}: {e}")

    def delete(self, network: Network) -> None:
        IPRoute, NetlinkError = netlink()
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=network.bridge)
            if found:
                try:
                    ipr.link("del", index=found[0])
                except NetlinkError as e:
                    raise RuntimeFailure(f"removing bridge {network.bridge}: {e}")

    def join(self, network: Network, endpoint: Endpoint, netns: str, default_route: bool) -> None:
        IPRoute, NetlinkError = netlink()
        with IPRoute() as ipr:
            try:
                bridge = ipr.link_lookup(ifname=network.bridge)
                if not bridge:
                    raise RuntimeFailure(f"bridge {network.bridge} of {network.name} is missing")
                # one request: the host end enslaved to the bridge and up, its peer made
                # straight in the container's namespace under its final name and MAC.
                # Moving a made link into another namespace (IFLA_NET_NS_FD on a set)
                # waits a whole RCU grace period in the kernel (~16 ms a container);
                # making it there costs nothing extra.
                fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    peer: dict[str, Any] = {
                        "ifname": endpoint.ifname, "address": endpoint.mac, "net_ns_fd": fd,
                    }  # fmt: skip
                    extra: dict[str, Any] = {}
                    if network.mtu:
                        peer["mtu"] = extra["mtu"] = network.mtu
                    ipr.link(
                        "add", ifname=endpoint.host_ifname, kind="veth", peer=peer,
                        master=bridge[0], state="up", **extra,
                    )  # fmt: skip
                finally:
                    os.close(fd)
            except NetlinkError as e:
                self._remove_host_side(ipr, endpoint)
                raise RuntimeFailure(f"connecting to network {network.name}: {e}")
            except BaseException:
                self._remove_host_side(ipr, endpoint)
                raise

        def configure() -> None:
            with IPRoute() as ns:
                index = ns.link_lookup(ifname=endpoint.ifname)[0]
                ns.addr("add", index=index, address=endpoint.ip, prefixlen=endpoint.prefixlen)
                ns.link("set", index=index, state="up")
                if default_route:
                    ns.route("add", dst="0.0.0.0/0", gateway=endpoint.gateway)

        try:
            run_in(netns, configure)
        except (NetlinkError, IndexError, OSError) as e:
            self.leave(network, endpoint)
            raise RuntimeFailure(f"configuring {endpoint.ifname} on network {network.name}: {e}")

    def leave(self, network: Network, endpoint: Endpoint) -> None:
        """Remove the veth pair (the peer in the container goes with the host end);
        returns once the kernel has unlisted it, without waiting out its RCU barrier."""
        IPRoute, _ = netlink()
        with IPRoute() as ipr:
            found = ipr.link_lookup(ifname=endpoint.host_ifname)
        if found:
            delete_link(found[0], endpoint.host_ifname)

    @staticmethod
    def _remove_host_side(ipr: Any, endpoint: Endpoint) -> None:
        _, NetlinkError = netlink()
        found = ipr.link_lookup(ifname=endpoint.host_ifname)
        if found:
            try:
                ipr.link("del", index=found[0])  # the peer in the container goes with it
            except NetlinkError:
                pass


def mac_for(ip: str) -> str:
    """Docker's scheme: 02:42 followed by the IPv4 address."""
    octets = [int(o) for o in ip.split(".")]
    return "02:42:" + ":".join(f"{o:02x}" for o in octets)
