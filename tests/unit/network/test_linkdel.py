"""linkdel: a link is gone when delete_link returns, whose RTM_DELLINK notices it reads."""

from __future__ import annotations

import struct
import subprocess
import sys

from hafen.network.linkdel import RTM_DELLINK, deleted_indexes

RTM_NEWLINK = 16


def _msg(kind: int, index: int) -> bytes:
    body = struct.pack("=BxHiII", 0, 1, index, 0, 0) + b"\x08\x00\x03\x00eth\x00"
    return struct.pack("=IHHII", 16 + len(body), kind, 0, 0, 0) + body


def test_deleted_indexes_reads_every_dellink_of_a_datagram() -> None:
    data = _msg(RTM_NEWLINK, 3) + _msg(RTM_DELLINK, 7) + _msg(RTM_DELLINK, 9)
    assert deleted_indexes(data) == [7, 9]


def test_deleted_indexes_stops_at_a_truncated_message() -> None:
    data = _msg(RTM_DELLINK, 7) + _msg(RTM_DELLINK, 8)[:20]
    assert deleted_indexes(data) == [7]
    assert deleted_indexes(b"") == []


# runs in a private network namespace (unshare --net): the machine's own is never touched
_IN_NETNS = r"""
import subprocess, sys
from hafen.network.linkdel import delete_link
from hafen.network.rtnl import Rtnl
from hafen.errors import RuntimeFailure
for i in range(5):
    subprocess.run(["ip", "link", "add", f"vt{i}", "type", "veth", "peer", "name", f"vp{i}"],
                   check=True)
with Rtnl() as rtnl:
    for i in range(5):
        index = rtnl.link_index(f"vt{i}")
        delete_link(index, f"vt{i}")
        assert rtnl.link_index(f"vt{i}") is None, "still listed"
        assert rtnl.link_index(f"vp{i}") is None, "peer still listed"
    delete_link(index, "vt4")  # already gone: no error
    lo = rtnl.link_index("lo")
try:
    delete_link(lo, "lo")  # the kernel refuses: the error is the caller's
except RuntimeFailure as e:
    print("refused:", e)
else:
    sys.exit("deleting lo did not fail")
print("ok")
"""


def test_delete_link_returns_with_the_link_and_its_peer_gone() -> None:
    out = subprocess.run(
        ["unshare", "--net", "--", sys.executable, "-c", _IN_NETNS],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "refused: removing lo:" in out.stdout and out.stdout.endswith("ok\n")
