"""Deleting a network link without waiting out the kernel's RCU barrier.

An RTM_DELLINK request returns only after ``netdev_run_todo`` has run ``rcu_barrier()``
(a whole RCU grace period, ~15 ms on a quiet machine, more under load), although the
link is gone for every practical purpose long before: unlisted, detached from its
bridge, its addresses dropped, and the kernel's RTM_DELLINK notification sent. So the
request is made on a throwaway thread while the caller listens for that notification on
a netlink socket of its own (joined to the link multicast group *before* the request)
and returns as soon as it arrives; the thread sits out the barrier alone.
"""

from __future__ import annotations

import contextlib
import errno
import os
import select
import socket
import struct
import threading
import time

from hafen.errors import RuntimeFailure
from hafen.network.rtnl import Rtnl

RTMGRP_LINK = 0x1
RTM_DELLINK = 17
_NLMSG = struct.Struct("=IHHII")  # nlmsghdr: length, type, flags, seq, pid
_IFINFO = struct.Struct("=BxHiII")  # ifinfomsg: family, type, index, flags, change
# how long the caller waits for the notification before waiting for the request itself
# (a full receive buffer drops notifications: the request's own end still tells)
NOTICE_TIMEOUT = 2.0


def deleted_indexes(data: bytes) -> list[int]:
    """The interface indexes of the RTM_DELLINK messages in one netlink datagram."""
    out: list[int] = []
    pos = 0
    while pos + _NLMSG.size <= len(data):
        length, kind, _, _, _ = _NLMSG.unpack_from(data, pos)
        if length < _NLMSG.size or pos + length > len(data):
            break
        if kind == RTM_DELLINK and length >= _NLMSG.size + _IFINFO.size:
            out.append(_IFINFO.unpack_from(data, pos + _NLMSG.size)[2])
        pos += (length + 3) & ~3
    return out


def delete_link(index: int, ifname: str) -> None:
    """Delete link ``index`` (``ifname``, for messages) of this thread's namespace; return
    once the kernel has announced it gone. A link already gone is no error."""
    monitor = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, 0)
    wake_r, wake_w = os.pipe2(os.O_CLOEXEC)
    error: list[BaseException] = []
    try:
        monitor.bind((0, RTMGRP_LINK))
        monitor.setblocking(False)

        def request() -> None:  # a new thread starts in its creator's network namespace
            try:
                with Rtnl() as rtnl:
                    rtnl.delete_link(index)
            except OSError as e:
                if e.errno != errno.ENODEV:
                    error.append(e)
            except BaseException as e:
                error.append(e)
            finally:
                with contextlib.suppress(OSError):  # the caller may have gone (EPIPE)
                    os.write(wake_w, b"x")
                os.close(wake_w)

        thread = threading.Thread(target=request, name=f"del-{ifname}", daemon=True)
        try:
            thread.start()
        except BaseException:
            os.close(wake_w)
            raise
        deadline = time.monotonic() + NOTICE_TIMEOUT
        while (left := deadline - time.monotonic()) > 0:
            readable, _, _ = select.select([monitor.fileno(), wake_r], [], [], left)
            if wake_r in readable:
                break  # the request ended (the notification, if any, came before it)
            try:
                data = monitor.recv(1 << 16)
            except BlockingIOError:
                continue
            except OSError as e:  # ENOBUFS: notifications were dropped; wait for the request
                if e.errno != errno.ENOBUFS:
                    raise
                break
            if index in deleted_indexes(data):
                return
        thread.join()
        if error:
            failed = error[0]
            reason = getattr(failed, "strerror", None) or failed
            raise RuntimeFailure(f"removing {ifname}: {reason}")
    finally:
        monitor.close()
        os.close(wake_r)
