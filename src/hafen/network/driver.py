"""The ``NetworkDriver`` interface: how a network's devices are made and containers joined.

Lifecycle, as the network service drives it:

    create(network)               make the network's host-side devices (a bridge)
    join(network, endpoint, ns)   give the container's namespace ``ns`` (a bind-mounted
                                  netns file) an interface with ``endpoint.ip`` on it
    leave(network, endpoint)      remove that interface's host side
    delete(network)               remove the host-side devices; only when nothing is joined

Addresses are chosen by the IPAM before ``join``; a driver never picks one. ``join``
either finishes or undoes what it did and raises.
"""

from __future__ import annotations

from typing import Protocol

from hafen.network.model import Endpoint, Network


class NetworkDriver(Protocol):
    name: str

    def create(self, network: Network) -> None: ...

    def delete(self, network: Network) -> None: ...

    def join(
        self, network: Network, endpoint: Endpoint, netns: str, default_route: bool
    ) -> None: ...

    def leave(self, network: Network, endpoint: Endpoint) -> None: ...
