"""hafen's nftables table (``ip hafen``): DNAT for published ports, masquerade for bridges.

One table per network namespace, recreated empty at daemon start (stale rules of a
previous daemon go with it). Published ports are elements of two maps, so adding and
removing one is a single element operation and never needs rule handles:

    ports      proto . port            → container ip . port   (host ip 0.0.0.0)
    hostports  host ip . proto . port  → container ip . port   (a specific host ip)

``masq`` holds the subnets of bridge networks that masquerade when leaving them. The
``forward`` chain isolates bridges from each other (and internal ones from everything),
and the ``hairpin`` chain masquerades a container's connection to a published port that
DNAT sends back into its own bridge (else the answer would come straight from the peer,
not from the address asked, and be dropped); both are rebuilt whole by
``set_isolation`` whenever the set of networks changes.
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
    fib daddr type local dnat ip to ip daddr . meta l4proto . th dport map @hostports
    fib daddr type local dnat ip to meta l4proto . th dport map @ports
  }
  chain postrouting {
    type nat hook postrouting priority srcnat; policy accept;
    ip saddr @masq ip daddr != @masq masquerade
  }
  chain hairpin {
    type nat hook postrouting priority srcnat; policy accept;
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


def set_isolation(bridges: list[tuple[str, bool, str]]) -> None:
    """Rules for (bridge device, internal, subnet) triples: no bridge reaches another; an
    internal bridge reaches nothing outside itself; hairpin traffic is masqueraded (the
    input interface is unknown at postrouting, so "from the subnet, DNATed, back out of
    the bridge" is how it is told apart)."""
    script = (
        f"flush chain ip {TABLE} forward\nflush chain ip {TABLE} hairpin\n"
        f"flush set ip {TABLE} bridges\n"
    )
    if bridges:
        names = ", ".join(f'"{name}"' for name, _, _ in bridges)
        script += f"add element ip {TABLE} bridges {{ {names} }}\n"
    for name, internal, subnet in bridges:
        script += (
            f'add rule ip {TABLE} hairpin oifname "{name}" ip saddr {subnet} '
            "ct status dnat masquerade\n"
        )
        if internal:
            script += f'add rule ip {TABLE} forward iifname "{name}" oifname != "{name}" drop\n'
            script += f'add rule ip {TABLE} forward oifname "{name}" iifname != "{name}" drop\n'
        else:
            script += (
                f'add rule ip {TABLE} forward iifname "{name}" oifname @bridges '
                f'oifname != "{name}" drop\n'
            )
    _run(script)
