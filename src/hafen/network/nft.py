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
Rules are fed to ``nft -f -``; nothing parses nft's output.
"""

from __future__ import annotations

import shutil
import subprocess

from hafen.errors import RuntimeFailure

TABLE = "hafen"

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


def _run(script: str) -> None:
    result = subprocess.run(["nft", "-f", "-"], input=script, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeFailure(f"nftables: {result.stderr.strip() or 'nft failed'}")


def reset() -> None:
    """Drop whatever a previous daemon left and start from the empty skeleton."""
    subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)
    _run(_SKELETON)


def remove_table() -> None:
    subprocess.run(["nft", "delete", "table", "ip", TABLE], capture_output=True)


def _key(proto: str, host_ip: str, host_port: int) -> tuple[str, str]:
    if host_ip in ("", "0.0.0.0"):
        return "ports", f"{proto} . {host_port}"
    return "hostports", f"{host_ip} . {proto} . {host_port}"


def add_port(proto: str, host_ip: str, host_port: int, ip: str, port: int) -> None:
    table_map, key = _key(proto, host_ip, host_port)
    _run(f"add element ip {TABLE} {table_map} {{ {key} : {ip} . {port} }}\n")


def delete_port(proto: str, host_ip: str, host_port: int) -> None:
    table_map, key = _key(proto, host_ip, host_port)
    subprocess.run(
        ["nft", "-f", "-"],
        input=f"delete element ip {TABLE} {table_map} {{ {key} }}\n",
        capture_output=True,
        text=True,
    )


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
