"""The generated ``/etc/hosts`` and ``/etc/resolv.conf`` of a container.

Pure text builders. Peers on the same user-defined networks appear in ``/etc/hosts`` by
name, aliases and short id; the daemon rewrites the file in place (the container sees
the bind-mounted inode) when a peer joins or leaves.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

_HOSTS_HEAD = (
    "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"
    "fe00::0\tip6-localnet\nff00::0\tip6-mcastprefix\nff02::1\tip6-allnodes\n"
    "ff02::2\tip6-allrouters\n"
)


@dataclass
class HostEntry:
    ip: str
    names: list[str] = field(default_factory=list)


def hosts_file(
    hostname: str,
    own_ip: str,
    extra_hosts: Sequence[str],
    peers: Sequence[HostEntry],
    host_gateway: str = "",
) -> str:
    """``host_gateway``: the address ``--add-host NAME:host-gateway`` stands for (the
    default bridge's gateway, as dockerd's); the daemon refuses that spec at create
    when it has none, so an entry is never silently left out."""
    lines = [_HOSTS_HEAD.rstrip("\n")]
    for spec in extra_hosts:
        name, sep, ip = spec.partition(":")
        if sep and name and ip:
            if ip == "host-gateway":
                if not host_gateway:
                    continue
                ip = host_gateway
            lines.append(f"{ip.strip('[]')}\t{name}")
    lines.append(f"{own_ip or '127.0.1.1'}\t{hostname}")
    for peer in peers:
        if peer.names:
            lines.append(f"{peer.ip}\t{' '.join(peer.names)}")
    return "\n".join(lines) + "\n"


def host_nameservers(host_resolv: str) -> list[str]:
    """Every nameserver of a resolv.conf (loopback ones too: the daemon can reach them)."""
    out = []
    for line in host_resolv.splitlines():
        words = line.split()
        if len(words) > 1 and words[0] == "nameserver":
            out.append(words[1])
    return out


def resolv_conf(
    host_resolv: str,
    dns: Sequence[str],
    search: Sequence[str],
    options: Sequence[str],
    embedded: str = "",
) -> str:
    """The host's resolv.conf without loopback servers (unreachable from the container's
    namespace), with ``--dns``/``--dns-search``/``--dns-option`` replacing its parts.
    With ``embedded`` (the embedded DNS server's address) that is the only nameserver:
    it forwards to the others itself."""
    servers: list[str] = []
    host_search: list[str] = []
    host_options: list[str] = []
    for line in host_resolv.splitlines():
        words = line.split()
        if not words or words[0].startswith(("#", ";")):
            continue
        if words[0] == "nameserver" and len(words) > 1:
            if not words[1].startswith("127.") and words[1] != "::1":
                servers.append(words[1])
        elif words[0] in ("search", "domain"):
            host_search = words[1:]
        elif words[0] == "options":
            host_options.extend(words[1:])
    servers = [embedded] if embedded else (list(dns) or servers)
    if not servers:
        servers = ["8.8.8.8", "8.8.4.4"]  # Docker's fallback when the host has none usable
    out = [f"nameserver {s}" for s in servers]
    chosen_search = list(search) or host_search
    if chosen_search and chosen_search != ["."]:
        out.append("search " + " ".join(chosen_search))
    chosen_options = list(options) or host_options
    if chosen_options:
        out.append("options " + " ".join(chosen_options))
    return "\n".join(out) + "\n"
