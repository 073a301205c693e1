"""nft: scripts through libnftables in-process (one socket, never inherited) or, without
the library, through ``nft -f -``; both give the same table and the same errors.

Each check runs in a private network namespace (``unshare --net``): the machine's own
nftables are never touched."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

pytestmark = pytest.mark.skipif(shutil.which("nft") is None, reason="needs nftables")

_IN_NETNS = r"""
import os, subprocess, sys
from hafen.network import nft
from hafen.errors import RuntimeFailure
if sys.argv[1] == "command":  # as where libnftables.so.1 cannot be loaded
    nft._library_tried = True
nft.reset()
nft.add_port("tcp", "", 8000, "10.0.0.2", 80)
nft.add_port("udp", "127.0.0.1", 8001, "10.0.0.3", 81)
table = subprocess.run(["nft", "list", "table", "ip", "hafen"], capture_output=True,
                       text=True, check=True).stdout
assert "tcp . 8000 : 10.0.0.2 . 80" in table, table
assert "127.0.0.1 . udp . 8001 : 10.0.0.3 . 81" in table, table
nft.delete_port("tcp", "", 8000)
nft.delete_port("tcp", "", 8000)  # gone already: no error
table = subprocess.run(["nft", "list", "table", "ip", "hafen"], capture_output=True,
                       text=True, check=True).stdout
assert "8000" not in table and "8001" in table, table
try:
    nft._run("add element ip hafen nosuch { tcp . 1 : 10.0.0.2 . 80 }\n")
except RuntimeFailure as e:
    assert "Error: " in str(e) and "nosuch" in str(e), e
    print("refused")
nft.reset()  # stale elements go
table = subprocess.run(["nft", "list", "table", "ip", "hafen"], capture_output=True,
                       text=True, check=True).stdout
assert "8001" not in table, table
if sys.argv[1] == "library":
    assert nft._library is not None
    # the library's netlink socket is open in the daemon and never reaches a child
    fds = subprocess.run(["ls", "-l", "/proc/self/fd/"], capture_output=True, text=True,
                         close_fds=False).stdout
    assert "socket:" not in fds, fds
    mine = [fd for fd in os.listdir("/proc/self/fd")
            if os.path.exists(f"/proc/self/fd/{fd}")
            and os.readlink(f"/proc/self/fd/{fd}").startswith("socket:")]
    assert mine, "no socket kept open"
    # a socket the library opens again later (after an error, say) is noticed and treated
    import socket
    again = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, 12)
    again.bind((0, 0))  # as libmnl does (an unbound one is not listed in /proc/net/netlink)
    again.set_inheritable(True)
    nft._library.sockets = {"99999": "socket:[1]"}  # the one it had is gone
    nft.delete_port("tcp", "", 8003)
    assert not again.get_inheritable()
print("ok")
"""


@pytest.mark.parametrize("way", ["library", "command"])
def test_ports_reset_and_errors(way: str) -> None:
    out = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", _IN_NETNS, way],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert out.stdout == "refused\nok\n"
