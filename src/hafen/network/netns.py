"""Network namespaces as bind-mounted files (``<exec-root>/netns/<id>``), as ip-netns does.

The daemon creates a container's namespace before the runtime runs, configures it over
netlink and hands its path to the runtime (config.json ``linux.namespaces[].path``). The
file keeps the namespace alive without a process in it; removing it ends the namespace.
A throwaway thread makes it (unshare(2), then a bind mount of its own namespace), so
the daemon's other threads never change namespace.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from hafen.errors import RuntimeFailure
from hafen.network.rtnl import Rtnl
from hafen.store._mount import MS_BIND, is_mount_point, mount, unmount

T = TypeVar("T")
CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)


def _on_own_thread(fn: Callable[[], T]) -> T:
    """Call ``fn`` on a fresh thread (which may change its namespace: it ends right after)."""
    result: list[T] = []
    error: list[BaseException] = []

    def body() -> None:
        try:
            result.append(fn())
        except BaseException as e:
            error.append(e)

    thread = threading.Thread(target=body, name="netns", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return result[0]


def run_in(path: str, fn: Callable[[], T]) -> T:
    """Call ``fn`` on a fresh thread that has entered the namespace at ``path``.

    setns(2) changes only the calling thread, and that thread ends right after, so the
    daemon's other threads never leave their namespace. (pyroute2's own ``netns=``
    forks a helper process, whose signals would reach the daemon's event loop through
    the inherited wakeup fd.)
    """

    def body() -> T:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            if _libc.setns(fd, CLONE_NEWNET) != 0:
                err = ctypes.get_errno()
                raise OSError(err, f"setns {path}: {os.strerror(err)}")
        finally:
            os.close(fd)
        return fn()

    return _on_own_thread(body)


def create(path: Path) -> None:
    """A new namespace kept alive by a bind mount on ``path``, with ``lo`` up.

    A throwaway thread unshares its network namespace (unshare(2) changes only the
    calling thread for CLONE_NEWNET), bind-mounts its ``/proc/thread-self/ns/net`` onto
    the file and brings ``lo`` up from inside, all in one trip: no process is started
    (``unshare --net=FILE`` cost a fork and exec, ~3 ms a container).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    path.touch()

    def body() -> None:
        if _libc.unshare(CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"unshare: {os.strerror(err)}")
        mount(f"/proc/self/task/{threading.get_native_id()}/ns/net", str(path), None, MS_BIND)
        with Rtnl() as ns:
            lo = ns.link_index("lo")
            if lo is not None:
                ns.set_up(lo)

    try:
        _on_own_thread(body)
    except OSError as e:
        remove(path)
        raise RuntimeFailure(f"creating network namespace {path}: {e.strerror or e}")
    except BaseException:
        remove(path)
        raise


def remove(path: Path) -> None:
    if is_mount_point(path):
        try:
            unmount(str(path), detach=True)
        except OSError:
            pass
    path.unlink(missing_ok=True)


# the inode number the kernel gives the initial network namespace (PROC_NET_INIT_INO)
_INIT_NET_INO = 0xEFFFFFF9


def in_initial_namespace() -> bool:
    """Whether this process shares the machine's own network namespace (when unsure: yes)."""
    try:
        mine = os.stat("/proc/self/ns/net").st_ino
    except OSError:
        return True
    try:
        return mine == os.stat("/proc/1/ns/net").st_ino
    except OSError:  # /proc/1 hidden from us: the kernel's fixed number for init_net
        return mine == _INIT_NET_INO
