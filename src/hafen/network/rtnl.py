"""A minimal rtnetlink client: the bridge driver's every request (bridges and endpoints).

The few requests a network's bridge and a container's endpoint need (look a link up by
name, make a bridge, make a veth pair whose peer lands in the container's namespace,
set a MAC, bring a link up, list and add addresses, add the default route, delete a
link), built with ``struct`` and sent on a plain netlink socket. pyroute2 did the same
in ~0.25 ms of Python a request (its asyncio core runs an event loop per call), which
added up to ~4 ms a container, and cost ~90 ms and ~9 MB of imports; these take a few
microseconds.

A socket belongs to the network namespace of the thread that opened it, for its life:
one opened on a thread that entered a container's namespace configures that namespace
from any thread after. Errors are ``OSError`` with the kernel's errno.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct

RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK, RTM_NEWADDR, RTM_GETADDR, RTM_NEWROUTE = (
    16, 17, 18, 20, 22, 24,
)  # fmt: skip
NLMSG_ERROR, NLMSG_DONE = 2, 3
NLM_F_REQUEST, NLM_F_ACK, NLM_F_DUMP, NLM_F_EXCL, NLM_F_CREATE = 0x1, 0x4, 0x300, 0x200, 0x400
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_LINKINFO, IFLA_NET_NS_FD = 18, 28
IFLA_INFO_KIND, IFLA_INFO_DATA, VETH_INFO_PEER = 1, 2, 1
IFA_ADDRESS, IFA_LOCAL, IFA_BROADCAST = 1, 2, 4
RTA_GATEWAY = 5
IFF_UP = 0x1
RT_TABLE_MAIN, RTPROT_BOOT, RT_SCOPE_UNIVERSE, RTN_UNICAST = 254, 3, 0, 1

_NLMSG = struct.Struct("=IHHII")  # length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # family, type, index, flags, change
_IFADDR = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
_RTMSG = struct.Struct(
    "=BBBBBBBBI"
)  # family, dst_len, src_len, tos, table, proto, scope, type, flags


def attr(kind: int, payload: bytes) -> bytes:
    """One rtattr, padded to 4 bytes."""
    size = 4 + len(payload)
    return struct.pack("=HH", size, kind) + payload + b"\0" * (-size & 3)


def attrs(data: bytes, pos: int) -> dict[int, bytes]:
    """The rtattrs from ``pos`` on, by type (nested ones left packed)."""
    out: dict[int, bytes] = {}
    while pos + 4 <= len(data):
        size, kind = struct.unpack_from("=HH", data, pos)
        if size < 4:
            break
        out[kind & 0x3FFF] = data[pos + 4 : pos + size]  # without NLA_F_NESTED/BYTEORDER
        pos += (size + 3) & ~3
    return out


def _name(text: str) -> bytes:
    return text.encode() + b"\0"


def _u32(value: int) -> bytes:
    return struct.pack("=I", value)


def _mac(text: str) -> bytes:
    return bytes(int(octet, 16) for octet in text.split(":"))


def ifinfo(index: int = 0, flags: int = 0, change: int = 0) -> bytes:
    return _IFINFO.pack(socket.AF_UNSPEC, 0, index, flags, change)


class Rtnl:
    """One NETLINK_ROUTE socket; one request at a time (not shared between threads)."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
        self.sock.bind((0, 0))
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Rtnl:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, kind: int, body: bytes, flags: int = 0) -> list[tuple[int, bytes]]:
        """Send one request and read to its acknowledgement; the (type, payload) of the
        messages that came before it. A negative acknowledgement raises ``OSError``."""
        self.seq += 1
        message = _NLMSG.pack(_NLMSG.size + len(body), kind, NLM_F_REQUEST | NLM_F_ACK | flags,
                              self.seq, 0) + body  # fmt: skip
        self.sock.send(message)
        replies: list[tuple[int, bytes]] = []
        while True:
            data = self.sock.recv(1 << 16)
            pos = 0
            while pos + _NLMSG.size <= len(data):
                length, rtype, _, seq, _ = _NLMSG.unpack_from(data, pos)
                if length < _NLMSG.size:
                    break
                payload = data[pos + _NLMSG.size : pos + length]
                pos += (length + 3) & ~3
                if seq != self.seq:
                    continue
                if rtype == NLMSG_ERROR:
                    code = -struct.unpack_from("=i", payload)[0]
                    if code:
                        raise OSError(code, os.strerror(code))
                    return replies
                if rtype == NLMSG_DONE:
                    return replies
                replies.append((rtype, payload))

    def link_index(self, ifname: str) -> int | None:
        """The index of link ``ifname`` in this socket's namespace (None: there is none)."""
        try:
            replies = self.request(RTM_GETLINK, ifinfo() + attr(IFLA_IFNAME, _name(ifname)))
        except OSError as e:
            if e.errno == errno.ENODEV:
                return None
            raise
        for rtype, payload in replies:
            if rtype == RTM_NEWLINK:
                return int(_IFINFO.unpack_from(payload)[2])
        return None

    def add_veth(
        self, ifname: str, master: int, peer: str, peer_mac: str, peer_netns_fd: int, mtu: int = 0
    ) -> None:
        """A veth pair: ``ifname`` here, enslaved to ``master`` and up; ``peer`` made in
        the namespace of ``peer_netns_fd`` with MAC ``peer_mac`` (down)."""
        mtu_attr = attr(IFLA_MTU, _u32(mtu)) if mtu else b""
        peer_msg = (
            ifinfo()
            + attr(IFLA_IFNAME, _name(peer))
            + attr(IFLA_ADDRESS, _mac(peer_mac))
            + attr(IFLA_NET_NS_FD, _u32(peer_netns_fd))
            + mtu_attr
        )
        linkinfo = attr(IFLA_INFO_KIND, b"veth") + attr(
            IFLA_INFO_DATA, attr(VETH_INFO_PEER, peer_msg)
        )
        body = (
            ifinfo(flags=IFF_UP, change=IFF_UP)
            + attr(IFLA_IFNAME, _name(ifname))
            + attr(IFLA_MASTER, _u32(master))
            + mtu_attr
            + attr(IFLA_LINKINFO, linkinfo)
        )
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def add_bridge(self, ifname: str, mtu: int = 0) -> None:
        body = ifinfo() + attr(IFLA_IFNAME, _name(ifname))
        if mtu:
            body += attr(IFLA_MTU, _u32(mtu))
        body += attr(IFLA_LINKINFO, attr(IFLA_INFO_KIND, b"bridge"))
        self.request(RTM_NEWLINK, body, NLM_F_CREATE | NLM_F_EXCL)

    def set_mac(self, index: int, mac: str) -> None:
        self.request(RTM_NEWLINK, ifinfo(index) + attr(IFLA_ADDRESS, _mac(mac)))

    def addresses(self, index: int) -> list[str]:
        """The IPv4 addresses of link ``index``."""
        body = _IFADDR.pack(socket.AF_INET, 0, 0, 0, 0)
        out = []
        for rtype, payload in self.request(RTM_GETADDR, body, NLM_F_DUMP):
            if rtype != RTM_NEWADDR or len(payload) < _IFADDR.size:
                continue
            family, _, _, _, link = _IFADDR.unpack_from(payload)
            found = attrs(payload, _IFADDR.size).get(IFA_LOCAL)
            if family == socket.AF_INET and link == index and found and len(found) == 4:
                out.append(str(ipaddress.IPv4Address(found)))
        return out

    def set_up(self, index: int) -> None:
        self.request(RTM_NEWLINK, ifinfo(index, IFF_UP, IFF_UP))

    def add_address(self, index: int, ip: str, prefixlen: int) -> None:
        """An IPv4 address with its subnet's broadcast address (as dockerd's containers)."""
        packed = ipaddress.IPv4Address(ip).packed
        net = ipaddress.IPv4Network(f"{ip}/{prefixlen}", strict=False)
        body = _IFADDR.pack(socket.AF_INET, prefixlen, 0, RT_SCOPE_UNIVERSE, index)
        body += attr(IFA_LOCAL, packed) + attr(IFA_ADDRESS, packed)
        if prefixlen < 31:
            body += attr(IFA_BROADCAST, net.broadcast_address.packed)
        self.request(RTM_NEWADDR, body, NLM_F_CREATE | NLM_F_EXCL)

    def add_default_route(self, gateway: str) -> None:
        body = _RTMSG.pack(socket.AF_INET, 0, 0, 0, RT_TABLE_MAIN, RTPROT_BOOT,
                           RT_SCOPE_UNIVERSE, RTN_UNICAST, 0)  # fmt: skip
        body += attr(RTA_GATEWAY, ipaddress.IPv4Address(gateway).packed)
        self.request(RTM_NEWROUTE, body, NLM_F_CREATE | NLM_F_EXCL)

    def delete_link(self, index: int) -> None:
        self.request(RTM_DELLINK, ifinfo(index))
