"""hafen's nftables table (``ip hafen``): DNAT for published ports, masquerade for bridges.

One table per network namespace, recreated empty at daemon start (stale rules of a
previous daemon go with it). Published ports are elements of two maps, so adding and
removing one is a single element operation and never needs rule handles:

    ports      proto . port            → container ip . port   (host ip 0.0.0.0)
    hostports  host ip . proto . port  → container ip . port   (a specific host ip)

Traffic that comes from a bridge is never DNATed: a container asking the host's address
for a published port (through host-gateway, say) is served by the userland proxy, as
dockerd's rules (``! -i docker0``) leave it to docker-proxy. DNAT back into the bridge
the packet came from would be answered by the peer straight from its own address (or,
where br_netfilter re-bridges it, not delivered at all to a container asking itself).

``masq`` holds the subnets of bridge networks that masquerade when leaving them. The
``forward`` chain isolates bridges from each other (and internal ones from everything),
rebuilt whole by ``set_isolation`` whenever the set of networks changes.
Scripts go to libnftables in the daemon (ctypes, one context and so one netlink socket
for the daemon's life), or to ``nft -f -`` where the library cannot be loaded; nothing
parses nft's output. Not a process per change: besides its fork and exec, an ``nft``
process that deleted anything waits at exit, in close(2) of its netlink socket, for the
kernel to free the deleted objects (NETLINK_URELEASE flushes nf_tables' destroy work, a
whole RCU grace period: ~15 ms per unpublished port). A socket that stays open never
waits for it.
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
import threading

from hafen.errors import RuntimeFailure

TABLE = "hafen"
_NETLINK_NETFILTER = 12

_SKELETON = """
table ip hafen {
  map ports { type inet_proto . inet_service : ipv4_addr . inet_service ; }
  map hostports { type ipv4_addr . inet_proto . inet_service : ipv4_addr . inet_service ; }
  set masq { type ipv4_addr ; flags interval ; }
  set bridges { type ifname ; }
  chain forward {
    type filter hook forward priority filter; policy accept;
  }
  chain prerouting {
    type nat hook prerouting priority dstnat; policy accept;
    iifname != @bridges fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @hostports
    iifname != @bridges fib daddr type local dnat ip to meta l4proto . th dport map @ports
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @masq ip daddr != @masq masquerade
  }
}
"""


def available() -> bool:
    return shutil.which("nft") is not None


class _Library:
    """One libnftables context. Its netlink socket belongs to the network namespace of
    the thread that makes it: the daemon's worker threads (never one in ``run_in``)."""

    def __init__(self) -> None:
        lib = ctypes.CDLL("libnftables.so.1", use_errno=True)
        lib.nft_ctx_new.restype = ctypes.c_void_p
        lib.nft_ctx_new.argtypes = [ctypes.c_uint32]
        lib.nft_ctx_buffer_output.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_buffer_error.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_error_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_error_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_ctx_get_output_buffer.restype = ctypes.c_char_p
        lib.nft_ctx_get_output_buffer.argtypes = [ctypes.c_void_p]
        lib.nft_run_cmd_from_buffer.argtypes = [ctypes.c_void_p, ctypes.c_char_p]
        ctx = lib.nft_ctx_new(0)  # NFT_CTX_DEFAULT
        if not ctx:
            raise OSError(ctypes.get_errno(), "nft_ctx_new failed")
        lib.nft_ctx_buffer_output(ctx)
        lib.nft_ctx_buffer_error(ctx)
        self.lib, self.ctx = lib, ctx
        self.sockets: dict[str, str] = {}
        self.run("list tables ip\n")  # the library opens its socket at the first command

    def run(self, script: str) -> tuple[bool, str]:
        ok = self.lib.nft_run_cmd_from_buffer(self.ctx, script.encode()) == 0
        self.lib.nft_ctx_get_output_buffer(self.ctx)  # read (and so emptied): unused
        error = self.lib.nft_ctx_get_error_buffer(self.ctx) or b""
        if not self.sockets or not all(map(_is, self.sockets.items())):
            self.sockets = _not_inherited_netfilter_sockets()  # opened (or reopened) since
        return ok, error.decode(errors="replace")


def _is(fd_target: tuple[str, str]) -> bool:
    try:
        return os.readlink(f"/proc/self/fd/{fd_target[0]}") == fd_target[1]
    except OSError:
        return False


def _not_inherited_netfilter_sockets() -> dict[str, str]:
    """The library's socket is inheritable (libmnl opens it without SOCK_CLOEXEC), and
    no child of the daemon may get a socket that edits its firewall: every
    NETLINK_NETFILTER socket of the daemon gets close-on-exec (the daemon's own
    descriptors have it anyway). Returns them (descriptor → link target), so that a
    socket the library reopens later is noticed and treated too."""
    inodes = set()
    with open("/proc/net/netlink") as f:  # sk Eth Pid Groups Rmem Wmem Dump Locks Drops Inode
        for line in f.readlines()[1:]:
            fields = line.split()
            if len(fields) >= 10 and fields[1] == str(_NETLINK_NETFILTER):
                inodes.add(fields[9])
    found = {}
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:[") and target[8:-1] in inodes:
                os.set_inheritable(int(fd), False)
                found[fd] = target
        except OSError:  # the descriptor listdir itself used, closed since
            continue
    return found


_lock = threading.Lock()
_library: _Library | None = None
_library_tried = False


def _execute(script: str) -> tuple[bool, str]:
    """Run ``script`` as one nft transaction: (succeeded, nft's error text)."""
    global _library, _library_tried
    with _lock:  # one context, one script at a time
        if not _library_tried:
            _library_tried = True
            try:
                _library = _Library()
            except (OSError, AttributeError):
                _library = None  # no libnftables.so.1: the nft command does it
        if _library is not None:
            return _library.run(script)
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    return result.returncode == 0, result.stderr


def _run(script: str) -> None:
    ok, error = _execute(script)
    if not ok:
        raise RuntimeFailure(f"nftables: {error.strip() or 'nft failed'}")


def reset() -> None:
    """Drop whatever a previous daemon left and start from the empty skeleton."""
    _execute(f"delete table ip {TABLE}\n")  # absent on a fresh machine: no error
    _run(_SKELETON)


def remove_table() -> None:
    _execute(f"delete table ip {TABLE}\n")


def _key(proto: str, host_ip: str, host_port: int) -> tuple[str, str]:
    if host_ip in ("", "0.0.0.0"):
        return "ports", f"{proto} . {host_port}"
    return "hostports", f"{host_ip} . {proto} . {host_port}"


def add_port(proto: str, host_ip: str, host_port: int, ip: str, port: int) -> None:
    table_map, key = _key(proto, host_ip, host_port)
    _run(f"add element ip {TABLE} {table_map} {{ {key} : {ip} . {port} }}\n")


def delete_port(proto: str, host_ip: str, host_port: int) -> None:
    table_map, key = _key(proto, host_ip, host_port)
    _execute(f"delete element ip {TABLE} {table_map} {{ {key} }}\n")  # gone already: fine


def set_masquerade(subnets: list[str]) -> None:
    script = f"flush set ip {TABLE} masq\n"
    if subnets:
        script += f"add element ip {TABLE} masq {{ {', '.join(subnets)} }}\n"
    _run(script)


def set_isolation(bridges: list[tuple[str, bool]]) -> None:
    """Forwarding rules for (bridge device, internal) pairs: no bridge reaches another;
    an internal bridge reaches nothing outside itself. The ``bridges`` set also keeps
    their traffic away from DNAT."""
    script = f"flush chain ip {TABLE} forward\nflush set ip {TABLE} bridges\n"
    if bridges:
        names = ", ".join(f'"{name}"' for name, _ in bridges)
        script += f"add element ip {TABLE} bridges {{ {names} }}\n"
    for name, internal in bridges:
        if internal:
            script += f'add rule ip {TABLE} forward iifname "{name}" oifname != "{name}" drop\n'
            script += f'add rule ip {TABLE} forward oifname "{name}" iifname != "{name}" drop\n'
        else:
            script += (
                f'add rule ip {TABLE} forward iifname "{name}" oifname @bridges '
                f'oifname != "{name}" drop\n'
            )
    _run(script)
