"""``container prune``, ``system df`` and ``system prune``, with docker's prompts and output.

``system prune`` is what docker's CLI makes of it: one prune request per kind
(containers, networks, volumes with ``--volumes``, images — dangling, or every unused
one with ``-a`` — and the build cache), then the total reclaimed.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, confirm, daemon_error_text, echo, get_client
from hafen.errors import HafenError


def _filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CLIError(f"bad format of filter (expected name=value): {value}", 125)
        out.setdefault(key.strip(), []).append(val)
    return out


def _confirm(warning: str, force: bool) -> bool:
    return force or confirm(warning + "\nAre you sure you want to continue?")


def _size(n: int) -> str:
    from hafen.cli.format import human_size

    return human_size(n)


def _post(client: Any, path: str, filters: dict[str, list[str]]) -> Any:
    params = {"filters": json.dumps(filters)} if filters else None
    return client._call("POST", path, params)


@flags.command("prune")
@flags.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'until=<ts>')"
)
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.pass_context
def container_prune(ctx: flags.Context, filters: tuple[str, ...], force: bool) -> None:
    """Remove all stopped containers."""
    parsed = _filters(filters)
    if not _confirm("WARNING! This will remove all stopped containers.", force):
        return
    try:
        result = _post(get_client(ctx), "/containers/prune", parsed) or {}
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    deleted = result.get("ContainersDeleted") or []
    if deleted:
        echo("Deleted Containers:")
        for cid in deleted:
            echo(cid)
        echo()
    echo(f"Total reclaimed space: {_size(int(result.get('SpaceReclaimed') or 0))}")


@flags.command("prune")
@flags.option(
    "-a",
    "--all",
    "all_images",
    is_flag=True,
    help="Remove all unused images not just dangling ones",
)
@flags.option(
    "--filter", "filters", multiple=True, help="Provide filter values (e.g. 'label=<key>=<value>')"
)
@flags.option("-f", "--force", is_flag=True, help="Do not prompt for confirmation")
@flags.option("--volumes", is_flag=True, help="Prune anonymous volumes")
@flags.pass_context
def system_prune(
    ctx: flags.Context, all_images: bool, filters: tuple[str, ...], force: bool, volumes: bool
) -> None:
    """Remove unused data."""
    parsed = _filters(filters)
    items = ["all stopped containers", "all networks not used by at least one container"]
    if volumes:
        items.append("all anonymous volumes not used by at least one container")
    items.append("all images without at least one container associated to them"
                 if all_images else "all dangling images")  # fmt: skip
    items.append("unused build cache" if all_images else "all dangling build cache")
    warning = "WARNING! This will remove:\n" + "".join(f"  - {i}\n" for i in items)
    if not _confirm(warning.rstrip("\n"), force):
        return
    client = get_client(ctx)
    total = 0
    steps: list[tuple[str, dict[str, list[str]], str, str]] = [
        ("/containers/prune", parsed, "ContainersDeleted", "Deleted Containers:"),
        ("/networks/prune", parsed, "NetworksDeleted", "Deleted Networks:"),
    ]
    if volumes:
        steps.append(("/volumes/prune", parsed, "VolumesDeleted", "Deleted Volumes:"))
    image_filters = {**parsed, "dangling": ["false" if all_images else "true"]}
    steps.append(("/images/prune", image_filters, "ImagesDeleted", "Deleted Images:"))
    build_filters = dict(parsed)
    steps.append(("/build/prune", build_filters, "CachesDeleted", "Deleted build cache objects:"))
    for path, step_filters, key, title in steps:
        try:
            result = _post(client, path, step_filters) or {}
        except HafenError as exc:
            if exc.status in (404, 405):
                continue  # a kind this daemon does not have (yet): nothing of it to prune
            raise CLIError(daemon_error_text(exc), 1)
        deleted = result.get(key) or []
        if deleted:
            echo(title)
            for item in deleted:
                if isinstance(item, dict):  # images: {"Untagged": ...} / {"Deleted": ...}
                    for kind, value in item.items():
                        echo(f"{kind.lower()}: {value}")
                else:
                    echo(item)
            echo()
        total += int(result.get("SpaceReclaimed") or 0)
    echo(f"Total reclaimed space: {_size(total)}")


@flags.command("df")
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.option("-v", "--verbose", is_flag=True, help="Show detailed information on space usage")
@flags.pass_context
def system_df(ctx: flags.Context, fmt: str | None, verbose: bool) -> None:
    """Show docker disk usage."""
    from hafen.cli.template import TemplateError, render_rows

    try:
        df = get_client(ctx)._call("GET", "/system/df") or {}
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    images = df.get("Images") or []
    containers = df.get("Containers") or []
    volumes = df.get("Volumes") or []
    cache = df.get("BuildCache") or []
    if verbose and not fmt:
        _verbose(images, containers, volumes, cache)
        return
    image_size = int(df.get("LayersSize") or 0)
    image_unused = sum(int(i.get("Size") or 0) for i in images if not i.get("Containers"))
    rw = [int(c.get("SizeRw") or 0) for c in containers]
    stopped_rw = sum(int(c.get("SizeRw") or 0) for c in containers if c.get("State") != "running")
    vol_sizes = [int((v.get("UsageData") or {}).get("Size") or 0) for v in volumes]
    vol_unused = sum(
        int((v.get("UsageData") or {}).get("Size") or 0)
        for v in volumes
        if not (v.get("UsageData") or {}).get("RefCount")
    )

    def reclaim(unused: int, total: int) -> str:
        pct = f" ({round(unused * 100 / total)}%)" if total else ""
        return f"{_size(unused)}{pct}"

    rows = [
        {"Type": "Images", "TotalCount": len(images),
         "Active": sum(1 for i in images if i.get("Containers")),
         "Size": _size(image_size), "Reclaimable": reclaim(image_unused, image_size)},
        {"Type": "Containers", "TotalCount": len(containers),
         "Active": sum(1 for c in containers if c.get("State") == "running"),
         "Size": _size(sum(rw)), "Reclaimable": reclaim(stopped_rw, sum(rw))},
        {"Type": "Local Volumes", "TotalCount": len(volumes),
         "Active": sum(1 for v in volumes if (v.get("UsageData") or {}).get("RefCount")),
         "Size": _size(sum(vol_sizes)), "Reclaimable": reclaim(vol_unused, sum(vol_sizes))},
        {"Type": "Build Cache", "TotalCount": len(cache), "Active": 0,
         "Size": _size(sum(int(b.get("Size") or 0) for b in cache)), "Reclaimable": "0B"},
    ]  # fmt: skip
    template = fmt or ("table {{.Type}}\t{{.TotalCount}}\t{{.Active}}\t{{.Size}}\t{{.Reclaimable}}")
    header = {"Type": "TYPE", "TotalCount": "TOTAL", "Active": "ACTIVE", "Size": "SIZE",
              "Reclaimable": "RECLAIMABLE"}  # fmt: skip
    try:
        sys.stdout.write(render_rows(template, rows, header))
    except TemplateError as exc:
        raise CLIError(str(exc), 1)


def _verbose(
    images: list[dict[str, Any]],
    containers: list[dict[str, Any]],
    volumes: list[dict[str, Any]],
    cache: list[dict[str, Any]],
) -> None:
    from hafen.cli.format import tabwrite, time_ago, truncate_id

    echo("Images space usage:\n")
    lines = ["REPOSITORY\tTAG\tIMAGE ID\tCREATED\tSIZE\tSHARED SIZE\tUNIQUE SIZE\tCONTAINERS"]
    for i in images:
        tags = i.get("RepoTags") or ["<none>:<none>"]
        repo, _, tag = tags[0].rpartition(":")
        size = _size(int(i.get("Size") or 0))
        lines.append(
            f"{repo}\t{tag}\t{truncate_id(i['Id'])}\t{time_ago(i.get('Created', 0))}\t{size}\t"
            f"0B\t{size}\t{i.get('Containers', 0)}"
        )
    echo(tabwrite(lines))
    echo("\nContainers space usage:\n")
    lines = ["CONTAINER ID\tIMAGE\tCOMMAND\tLOCAL VOLUMES\tSIZE\tCREATED\tSTATUS\tNAMES"]
    for c in containers:
        command = c.get("Command", "")
        command = json.dumps(command[:17] + "…" if len(command) > 20 else command,
                             ensure_ascii=False)  # fmt: skip
        vols = sum(1 for m in c.get("Mounts") or [] if m.get("Type") == "volume")
        name = (c.get("Names") or ["/"])[0].lstrip("/")
        lines.append(
            f"{truncate_id(c['Id'])}\t{c.get('Image', '')}\t{command}\t{vols}\t"
            f"{_size(int(c.get('SizeRw') or 0))}\t{time_ago(c.get('Created', 0))}\t"
            f"{c.get('Status', '')}\t{name}"
        )
    echo(tabwrite(lines))
    echo("\nLocal Volumes space usage:\n")
    lines = ["VOLUME NAME\tLINKS\tSIZE"]
    for v in volumes:
        usage = v.get("UsageData") or {}
        lines.append(
            f"{v['Name']}\t{usage.get('RefCount', 0)}\t{_size(int(usage.get('Size') or 0))}"
        )
    echo(tabwrite(lines))
    echo("\nBuild cache usage: " + _size(sum(int(b.get("Size") or 0) for b in cache)))
    echo()


@flags.group("system")
def system_group() -> None:
    """Manage Docker."""


def _build_system_group() -> None:
    from hafen.cli.commands.events import events
    from hafen.cli.commands.system import info

    system_group.add_command(system_df)
    system_group.add_command(system_prune)
    system_group.add_command(events)
    system_group.add_command(info)


_build_system_group()
