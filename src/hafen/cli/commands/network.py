"""``hafen network``: create, ls, inspect, rm, connect, disconnect, prune — docker's flags."""

from __future__ import annotations

import json
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, confirm, daemon_error_text, echo, get_client, write_out
from hafen.errors import HafenError, NotFound

NETWORK_LS_FORMAT = "table {{.ID}}\t{{.Name}}\t{{.Driver}}\t{{.Scope}}"
NETWORK_HEADERS = {
    "ID": "NETWORK ID",
    "Name": "NAME",
    "Driver": "DRIVER",
    "Scope": "SCOPE",
    "IPv6": "IPV6",
    "Internal": "INTERNAL",
    "Labels": "LABELS",
    "CreatedAt": "CREATED AT",
}


class NetworkRow:
    """The fields ``network ls --format`` templates see."""

    def __init__(self, doc: dict[str, Any], trunc: bool) -> None:
        self.ID = doc["Id"][:12] if trunc else doc["Id"]
        self.Name = doc.get("Name", "")
        self.Driver = doc.get("Driver", "")
        self.Scope = doc.get("Scope", "local")
        self.IPv6 = str(bool(doc.get("EnableIPv6"))).lower()
        self.Internal = str(bool(doc.get("Internal"))).lower()
        self.CreatedAt = doc.get("Created", "")
        labels = doc.get("Labels") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in labels.items())


def _pairs(values: tuple[str, ...], flag: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, _, value = v.partition("=")
        if not key:
            raise CLIError(f'invalid argument "{v}" for "--{flag}" flag', 125)
        out[key] = value
    return out


@flags.group("network")
def network_group() -> None:
    """Manage networks."""


@network_group.command("create")
@flags.option("-d", "--driver", default="bridge", help="Driver to manage the Network")
@flags.option("--subnet", multiple=True, help="Subnet in CIDR format")
@flags.option("--gateway", multiple=True, help="IPv4 Gateway for the master subnet")
@flags.option("--ip-range", multiple=True, help="Allocate container ip from a sub-range")
@flags.option("--internal", is_flag=True, help="Restrict external access to the network")
@flags.option("--label", "labels", multiple=True, help="Set metadata on a network")
@flags.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@flags.argument("name")
@flags.pass_context
def create(
    ctx: flags.Context,
    driver: str,
    subnet: tuple[str, ...],
    gateway: tuple[str, ...],
    ip_range: tuple[str, ...],
    internal: bool,
    labels: tuple[str, ...],
    opts: tuple[str, ...],
    name: str,
) -> None:
    """Create a network."""
    if len(gateway) > len(subnet) or len(ip_range) > len(subnet):
        raise CLIError("every --gateway and --ip-range needs its --subnet", 125)
    config = []
    for i, sub in enumerate(subnet):
        entry = {"Subnet": sub}
        if i < len(gateway):
            entry["Gateway"] = gateway[i]
        if i < len(ip_range):
            entry["IPRange"] = ip_range[i]
        config.append(entry)
    body = {
        "Name": name,
        "Driver": driver,
        "Internal": internal,
        "IPAM": {"Driver": "default", "Config": config},
        "Options": _pairs(opts, "opt"),
        "Labels": _pairs(labels, "label"),
        "CheckDuplicate": True,
    }
    echo(get_client(ctx).create_network(body)["Id"])


@network_group.command("ls")
@flags.option("-q", "--quiet", is_flag=True, help="Only display network IDs")
@flags.option("-f", "--filter", "filters", multiple=True, help="Provide filter values")
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.option("--no-trunc", is_flag=True, help="Do not truncate the output")
@flags.pass_context
def ls(
    ctx: flags.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None, no_trunc: bool
) -> None:
    """List networks."""
    from hafen.cli.commands.container import _parse_filters
    from hafen.cli.template import TemplateError, render_rows

    docs = get_client(ctx).networks(_parse_filters(filters) or None)
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = NETWORK_LS_FORMAT
    rows = [NetworkRow(d, trunc=not no_trunc) for d in docs]
    try:
        write_out(render_rows(fmt, rows, NETWORK_HEADERS))
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


@network_group.command("inspect")
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def inspect(ctx: flags.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more networks."""
    from hafen.cli.commands.system import _render_each

    client = get_client(ctx)
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        try:
            found.append(client.inspect_network(name))
        except NotFound:
            failures.append(f"Error: No such network: {name}")
        except HafenError as exc:
            failures.append(daemon_error_text(exc))
    if fmt and fmt != "json":
        write_out(_render_each(fmt, found))
    else:
        write_out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if failures:
        raise CLIError("\n".join(failures), 1)


@network_group.command("rm")
@flags.option("-f", "--force", is_flag=True, help="Do not error if the network does not exist")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def rm(ctx: flags.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more networks."""
    client = get_client(ctx)
    failures: list[str] = []
    for name in names:
        try:
            client.remove_network(name)
            echo(name)
        except NotFound:
            if not force:
                failures.append(f"Error response from daemon: network {name} not found")
        except HafenError as exc:
            failures.append(daemon_error_text(exc))
    if failures:
        raise CLIError("\n".join(failures), 1)


network_group.add_command(rm, "remove")
network_group.add_command(ls, "list")


@network_group.command("connect")
@flags.option("--ip", default="", help="IPv4 address (e.g., 172.30.100.104)")
@flags.option(
    "--alias", "aliases", multiple=True, help="Add network-scoped alias for the container"
)
@flags.argument("network")
@flags.argument("container")
@flags.pass_context
def connect(
    ctx: flags.Context, ip: str, aliases: tuple[str, ...], network: str, container: str
) -> None:
    """Connect a container to a network."""
    get_client(ctx).connect_network(network, container, ip=ip, aliases=list(aliases))


@network_group.command("disconnect")
@flags.option("-f", "--force", is_flag=True, help="Force the container to disconnect")
@flags.argument("network")
@flags.argument("container")
@flags.pass_context
def disconnect(ctx: flags.Context, force: bool, network: str, container: str) -> None:
    """Disconnect a container from a network."""
    get_client(ctx).disconnect_network(network, container, force=force)


@network_group.command("prune")
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.option("--filter", "filters", multiple=True, help="Provide filter values")
@flags.pass_context
def prune(ctx: flags.Context, force: bool, filters: tuple[str, ...]) -> None:
    """Remove all unused networks."""
    from hafen.cli.commands.container import _parse_filters

    if not force:
        echo("WARNING! This will remove all custom networks not used by at least one container.")
        if not confirm("Are you sure you want to continue?"):
            return
    doc = get_client(ctx).prune_networks(_parse_filters(filters) or None)
    deleted = doc.get("NetworksDeleted") or []
    if deleted:
        echo("Deleted Networks:")
        for name in deleted:
            echo(name)
