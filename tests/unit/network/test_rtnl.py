"""rtnl: the hand-built rtnetlink requests of the endpoint path do what ``ip`` shows.

Each check runs in a private network namespace (``unshare --net``): the machine's own
network is never touched."""

from __future__ import annotations

import subprocess
import sys

from hafen.network.rtnl import attr

_IN_NETNS = r"""
import errno, os, subprocess, sys, tempfile
from pathlib import Path
from hafen.network import netns
from hafen.network.rtnl import Rtnl

def ip(*argv, ns=None):
    pre = ["nsenter", f"--net={ns}", "--"] if ns else []
    return subprocess.run([*pre, "ip", *argv], capture_output=True, text=True, check=True).stdout

with Rtnl() as rtnl:
    rtnl.add_bridge("br9", mtu=1400)
    br = rtnl.link_index("br9")
    rtnl.set_mac(br, "02:42:0a:05:00:01")
    assert rtnl.addresses(br) == []
    rtnl.add_address(br, "10.5.0.1", 24)
    rtnl.set_up(br)
    assert rtnl.addresses(br) == ["10.5.0.1"]
    assert rtnl.addresses(rtnl.link_index("lo")) == []  # lo is down: 127.0.0.1 not there
bridge = ip("-o", "link", "show", "br9")
assert "02:42:0a:05:00:01" in bridge and "mtu 1400" in bridge, bridge
assert "inet 10.5.0.1/24 brd 10.5.0.255" in ip("-o", "-4", "addr", "show", "br9")
tmp = Path(tempfile.mkdtemp())
path = tmp / "ns"
netns.create(path)
try:
    assert "UP" in ip("-o", "link", "show", "lo", ns=str(path)).split(">")[0]  # lo is up
    with Rtnl() as rtnl:
        assert rtnl.link_index("nosuch0") is None
        bridge = rtnl.link_index("br9")
        fd = os.open(path, os.O_RDONLY)
        rtnl.add_veth("vethtest", bridge, "eth0", "02:42:0a:05:00:02", fd, mtu=1400)
        try:
            rtnl.add_veth("vethtest", bridge, "eth0", "02:42:0a:05:00:02", fd)
        except OSError as e:
            assert e.errno == errno.EEXIST, e
        else:
            sys.exit("a second vethtest was made")
        os.close(fd)
        host = ip("-o", "link", "show", "vethtest")
        assert "master br9" in host and "mtu 1400" in host and "UP" in host.split(">")[0], host
    def configure():
        with Rtnl() as ns:
            index = ns.link_index("eth0")
            ns.add_address(index, "10.5.0.2", 24)
            ns.set_up(index)
            ns.add_default_route("10.5.0.1")
    netns.run_in(str(path), configure)
    inner = ip("-o", "link", "show", "eth0", ns=str(path))
    assert "02:42:0a:05:00:02" in inner and "mtu 1400" in inner, inner
    addr = ip("-o", "-4", "addr", "show", "eth0", ns=str(path))
    assert "inet 10.5.0.2/24 brd 10.5.0.255 scope global eth0" in addr, addr
    assert "default via 10.5.0.1 dev eth0" in ip("route", ns=str(path))
    with Rtnl() as rtnl:
        rtnl.delete_link(rtnl.link_index("vethtest"))
        assert rtnl.link_index("vethtest") is None
    assert "eth0" not in ip("-o", "link", ns=str(path))  # the peer went with it
finally:
    netns.remove(path)
    tmp.rmdir()
print("ok")
"""


def test_attr_pads_to_four_bytes() -> None:
    assert attr(3, b"eth0\0") == b"\x09\x00\x03\x00eth0\x00\x00\x00\x00"
    assert attr(4, b"\x00\x00\x00\x01") == b"\x08\x00\x04\x00\x00\x00\x00\x01"


def test_endpoint_requests_in_a_private_namespace() -> None:
    out = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", _IN_NETNS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "ok\n"
