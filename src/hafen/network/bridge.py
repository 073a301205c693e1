"""The ``bridge`` driver: a Linux bridge per network, a veth pair per endpoint (netlink).

Everything goes through netlink; no ``ip`` command is run or parsed. Bridges (made at
network create and daemon start) through pyroute2; endpoints, on every container's start
and exit, through ``rtnl``'s few hand-built requests.
The container end of a veth is made in the container's namespace (by file descriptor of
the bind-mounted netns file) as ``ethN`` with its MAC, then given its address and, for
the first non-internal network, the default route through the bridge's gateway.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import secrets
from typing import TYPE_CHECKING

from hafen.errors import RuntimeFailure
from hafen.network.linkdel import delete_link
from hafen.network.model import Endpoint, Network
from hafen.network.netns import run_in
from hafen.network.rtnl import Rtnl

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
