"""The ``bridge`` driver: a Linux bridge per network, a veth pair per endpoint (netlink).

Everything goes through netlink (``rtnl``'s few hand-built requests); no ``ip`` command
is run or parsed.
The container end of a veth is made in the container's namespace (by file descriptor of
the bind-mounted netns file) as ``ethN`` with its MAC, then given its address and, for
the first non-internal network, the default route through the bridge's gateway.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets

from hafen.errors import RuntimeFailure
from hafen.network.linkdel import delete_link
from hafen.network.model import Endpoint, Network
from hafen.network.netns import run_in
from hafen.network.rtnl import Rtnl


def _prefix(network: Network) -> int:
    return ipaddress.IPv4Network(network.subnet).prefixlen


def veth_name() -> str:
    return "veth" + secrets.token_hex(4)[:7]


class BridgeDriver:
    name = "bridge"

    def create(self, network: Network) -> None:
        with Rtnl() as rtnl:
            try:
                index = rtnl.link_index(network.bridge)
                if index is None:
                    rtnl.add_bridge(network.bridge, network.mtu)
                    index = rtnl.link_index(network.bridge)
                    if index is None:
                        raise OSError(errno.ENODEV, "the new bridge is not there")
                # a fixed MAC: a bridge without one takes the lowest of its ports' MACs
                # and changes it as veths come and go, which leaves every container's
                # ARP entry for the gateway stale (connections stall until it is probed)
                rtnl.set_mac(index, mac_for(network.gateway))
                if network.gateway not in rtnl.addresses(index):
                    rtnl.add_address(index, network.gateway, _prefix(network))
                rtnl.set_up(index)
            except OSError as e:
                raise RuntimeFailure(
                    f"creating bridge {network.bridge} for {network.name}: {e.strerror or e}"
                )

    def delete(self, network: Network) -> None:
        with Rtnl() as rtnl:
            index = rtnl.link_index(network.bridge)
        if index is not None:
            delete_link(index, network.bridge)  # RuntimeFailure: "removing <bridge>: ..."

    def join(self, network: Network, endpoint: Endpoint, netns: str, default_route: bool) -> None:
        with Rtnl() as rtnl:
            try:
                bridge = rtnl.link_index(network.bridge)
                if bridge is None:
                    raise RuntimeFailure(f"bridge {network.bridge} of {network.name} is missing")
                # one request: the host end enslaved to the bridge and up, its peer made
                # straight in the container's namespace under its final name and MAC.
                # Moving a made link into another namespace (IFLA_NET_NS_FD on a set)
                # waits a whole RCU grace period in the kernel (~16 ms a container);
                # making it there costs nothing extra.
                fd = os.open(netns, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    rtnl.add_veth(endpoint.host_ifname, bridge, endpoint.ifname, endpoint.mac,
                                  fd, network.mtu)  # fmt: skip
                finally:
                    os.close(fd)
            except OSError as e:
                self._remove_host_side(rtnl, endpoint)
                raise RuntimeFailure(f"connecting to network {network.name}: {e.strerror or e}")
            except BaseException:
                self._remove_host_side(rtnl, endpoint)
                raise

        def configure() -> None:
            with Rtnl() as ns:  # opened on a thread in the container's namespace
                index = ns.link_index(endpoint.ifname)
                if index is None:
                    raise OSError(errno.ENODEV, f"{endpoint.ifname} did not arrive")
                ns.add_address(index, endpoint.ip, endpoint.prefixlen)
                ns.set_up(index)
                if default_route:
                    ns.add_default_route(endpoint.gateway)

        try:
            run_in(netns, configure)
        except OSError as e:
            self.leave(network, endpoint)
            raise RuntimeFailure(
                f"configuring {endpoint.ifname} on network {network.name}: {e.strerror or e}"
            )

    def leave(self, network: Network, endpoint: Endpoint) -> None:
        """Remove the veth pair (the peer in the container goes with the host end);
        returns once the kernel has unlisted it, without waiting out its RCU barrier."""
        with Rtnl() as rtnl:
            index = rtnl.link_index(endpoint.host_ifname)
        if index is not None:
            delete_link(index, endpoint.host_ifname)

    @staticmethod
    def _remove_host_side(rtnl: Rtnl, endpoint: Endpoint) -> None:
        try:
            index = rtnl.link_index(endpoint.host_ifname)
            if index is not None:
                rtnl.delete_link(index)  # the peer in the container goes with it
        except OSError:
            pass


def mac_for(ip: str) -> str:
    """Docker's scheme: 02:42 followed by the IPv4 address."""
    octets = [int(o) for o in ip.split(".")]
    return "02:42:" + ":".join(f"{o:02x}" for o in octets)
