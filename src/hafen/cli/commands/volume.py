"""``hafen volume``: create, ls, inspect, rm, prune — docker's flags and output."""

from __future__ import annotations

import json
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, confirm, daemon_error_text, echo, get_client, write_out
from hafen.errors import HafenError, NotFound

VOLUME_LS_FORMAT = "table {{.Driver}}\t{{.Name}}"
VOLUME_HEADERS = {
    "Driver": "DRIVER",
    "Name": "VOLUME NAME",
    "Labels": "LABELS",
    "Mountpoint": "MOUNTPOINT",
    "Scope": "SCOPE",
    "CreatedAt": "CREATED AT",
}


class VolumeRow:
    """The fields ``volume ls --format`` templates see."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.Driver = doc.get("Driver", "")
        self.Name = doc.get("Name", "")
        self.Mountpoint = doc.get("Mountpoint", "")
        self.Scope = doc.get("Scope", "local")
        self.CreatedAt = doc.get("CreatedAt", "")
        labels = doc.get("Labels") or {}
        self.Labels = ",".join(f"{k}={v}" for k, v in labels.items())
        self._labels = labels

    def Label(self, name: str) -> str:
        return str(self._labels.get(name, ""))


def _pairs(values: tuple[str, ...], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for v in values:
        key, sep, value = v.partition("=")
        if not key or (what == "opt" and not sep):
            raise CLIError(f'invalid argument "{v}" for "--{what}" flag: expected key=value', 125)
        out[key] = value
    return out


@flags.group("volume")
def volume_group() -> None:
    """Manage volumes."""


@volume_group.command("create")
@flags.option("-d", "--driver", default="local", help="Specify volume driver name")
@flags.option("--label", "labels", multiple=True, help="Set metadata for a volume")
@flags.option("-o", "--opt", "opts", multiple=True, help="Set driver specific options")
@flags.option("--name", "name_flag", help="Specify volume name")
@flags.argument("name", required=False)
@flags.pass_context
def create(
    ctx: flags.Context,
    driver: str,
    labels: tuple[str, ...],
    opts: tuple[str, ...],
    name_flag: str | None,
    name: str | None,
) -> None:
    """Create a volume."""
    if name and name_flag and name != name_flag:
        raise CLIError(
            "conflicting options: either specify --name or provide positional arg, not both", 1
        )
    doc = get_client(ctx).create_volume(
        name or name_flag, driver, _pairs(opts, "opt"), _pairs(labels, "label")
    )
    echo(doc["Name"])


@volume_group.command("ls")
@flags.option("-q", "--quiet", is_flag=True, help="Only display volume names")
@flags.option("-f", "--filter", "filters", multiple=True, help="Provide filter values")
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.pass_context
def ls(ctx: flags.Context, quiet: bool, filters: tuple[str, ...], fmt: str | None) -> None:
    """List volumes."""
    from hafen.cli.commands.container import _parse_filters
    from hafen.cli.template import TemplateError, render_rows

    docs = get_client(ctx).volumes(_parse_filters(filters) or None)
    if quiet:
        fmt = "{{.Name}}"
    elif not fmt or fmt == "table":
        fmt = VOLUME_LS_FORMAT
    try:
        write_out(render_rows(fmt, [VolumeRow(d) for d in docs], VOLUME_HEADERS))
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


@volume_group.command("inspect")
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def inspect(ctx: flags.Context, fmt: str | None, names: tuple[str, ...]) -> None:
    """Display detailed information on one or more volumes."""
    from hafen.cli.commands.system import _render_each

    client = get_client(ctx)
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        try:
            found.append(client.inspect_volume(name))
        except NotFound:
            failures.append(f"Error: No such volume: {name}")
        except HafenError as exc:
            failures.append(daemon_error_text(exc))
    if fmt and fmt != "json":
        write_out(_render_each(fmt, found))
    else:
        write_out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if failures:
        raise CLIError("\n".join(failures), 1)


@volume_group.command("rm")
@flags.option("-f", "--force", is_flag=True, help="Force the removal of one or more volumes")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def rm(ctx: flags.Context, force: bool, names: tuple[str, ...]) -> None:
    """Remove one or more volumes."""
    client = get_client(ctx)
    failures: list[str] = []
    for name in names:
        try:
            client.remove_volume(name, force=force)
            echo(name)
        except HafenError as exc:
            failures.append(daemon_error_text(exc))
    if failures:
        raise CLIError("\n".join(failures), 1)


volume_group.add_command(rm, "remove")
volume_group.add_command(ls, "list")


@volume_group.command("prune")
@flags.option(
    "-a", "--all", "all_", is_flag=True, help="Remove all unused volumes, not just anonymous ones"
)
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.option("--filter", "filters", multiple=True, help="Provide filter values")
@flags.pass_context
def prune(ctx: flags.Context, all_: bool, force: bool, filters: tuple[str, ...]) -> None:
    """Remove unused local volumes."""
    from hafen.cli.commands.container import _parse_filters
    from hafen.cli.format import human_size

    if not force:
        what = "all local volumes" if all_ else "all anonymous local volumes"
        echo(f"WARNING! This will remove {what} not used by at least one container.")
        if not confirm("Are you sure you want to continue?"):
            return
    parsed = _parse_filters(filters)
    if all_:
        parsed["all"] = ["true"]
    doc = get_client(ctx).prune_volumes(parsed or None)
    deleted = doc.get("VolumesDeleted") or []
    if deleted:
        echo("Deleted Volumes:")
        for name in deleted:
            echo(name)
        echo()
    echo(f"Total reclaimed space: {human_size(int(doc.get('SpaceReclaimed') or 0))}")
