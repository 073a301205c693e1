"""System verbs: inspect (any object), version and info."""

from __future__ import annotations

import json
import platform
import sys
from collections.abc import Callable
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, get_client, write_out
from hafen.client import CLIENT_API_VERSION, APIClient
from hafen.errors import HafenError, NotFound


def _render_each(fmt: str, items: list[Any]) -> str:
    from hafen.cli.template import Template, TemplateError, preprocess

    try:
        _table, text = preprocess(fmt)
        tmpl = Template(text)
        return "".join(tmpl.render(item) + "\n" for item in items)
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


def inspect_objects(
    client: APIClient,
    names: tuple[str, ...],
    kind: str | None,
    fmt: str | None,
    size: bool,
) -> None:
    """docker's inspect: a JSON array (4-space indent) of every object found, or the
    template applied to each; misses reported after the output, exit status 1."""
    fetchers: list[tuple[str, Callable[[str], dict[str, Any]]]] = []
    if kind in (None, "container"):
        fetchers.append(("container", lambda n: client.inspect_container(n, size=size)))
    if kind in (None, "image"):
        fetchers.append(("image", client.inspect_image))
    if not fetchers:
        raise CLIError(f'"{kind}" is not a valid value for --type', 1)
    found: list[dict[str, Any]] = []
    failures: list[str] = []
    for name in names:
        for _what, fetch in fetchers:
            try:
                found.append(fetch(name))
                break
            except NotFound:
                continue
            except HafenError as exc:
                failures.append(daemon_error_text(exc))
                break
        else:
            failures.append(f"Error: No such {kind or 'object'}: {name}")
    if fmt and fmt != "json":
        write_out(_render_each(fmt, found))
    else:
        write_out(json.dumps(found, indent=4, ensure_ascii=False) + "\n")
    if failures:
        raise CLIError("\n".join(failures), 1)


@flags.command()
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.option(
    "-s", "--size", is_flag=True, help="Display total file sizes if the type is container"
)
@flags.option("--type", "kind", help="Return JSON for specified type")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def inspect(
    ctx: flags.Context, fmt: str | None, size: bool, kind: str | None, names: tuple[str, ...]
) -> None:
    """Return low-level information on hafen objects."""
    inspect_objects(get_client(ctx), names, kind, fmt, size)


def _client_version() -> dict[str, Any]:
    from hafen import __version__

    machine = platform.machine().lower()
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
    return {
        "Platform": {"Name": ""},
        "Version": __version__,
        "APIVersion": CLIENT_API_VERSION,
        "DefaultAPIVersion": CLIENT_API_VERSION,
        "GitCommit": "",
        "GoVersion": "python" + platform.python_version(),
        "Os": sys.platform if sys.platform != "linux" else "linux",
        "Arch": arch,
        "BuildTime": "",
        "Context": "default",
    }


def _kv(lines: list[str], indent: str, key: str, value: Any, width: int) -> None:
    lines.append(f"{indent}{key + ':':<{width}}{value}")


@flags.command()
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.pass_context
def version(ctx: flags.Context, fmt: str | None) -> None:
    """Show the hafen version information."""
    client = get_client(ctx)
    client_info = _client_version()
    server: dict[str, Any] | None = None
    error: HafenError | None = None
    try:
        server = client.version()
        client_info["APIVersion"] = client.api_version
    except HafenError as exc:
        error = exc
    if fmt:
        write_out(_render_each(fmt, [{"Client": client_info, "Server": server}]))
    else:
        lines = ["Client:"]
        w = 19
        _kv(lines, " ", "Version", client_info["Version"], w)
        _kv(lines, " ", "API version", client_info["APIVersion"], w)
        _kv(lines, " ", "Python version", client_info["GoVersion"].removeprefix("python"), w)
        _kv(lines, " ", "OS/Arch", f"{client_info['Os']}/{client_info['Arch']}", w)
        _kv(lines, " ", "Context", client_info["Context"], w)
        if server is not None:
            name = (server.get("Platform") or {}).get("Name") or ""
            lines += ["", f"Server: {name}".rstrip(), " Engine:"]
            w = 18
            _kv(lines, "  ", "Version", server.get("Version", ""), w)
            api = server.get("ApiVersion", "")
            if server.get("MinAPIVersion"):
                api += f" (minimum version {server['MinAPIVersion']})"
            _kv(lines, "  ", "API version", api, w)
            if server.get("GoVersion"):
                _kv(lines, "  ", "Go version", server["GoVersion"], w)
            if server.get("GitCommit"):
                _kv(lines, "  ", "Git commit", server["GitCommit"], w)
            if server.get("BuildTime"):
                _kv(lines, "  ", "Built", server["BuildTime"], w)
            _kv(lines, "  ", "OS/Arch", f"{server.get('Os', '')}/{server.get('Arch', '')}", w)
            _kv(lines, "  ", "Experimental", str(bool(server.get("Experimental"))).lower(), w)
            for comp in server.get("Components") or []:
                if comp.get("Name") in ("Engine", name):
                    continue
                lines.append(f" {comp.get('Name')}:")
                _kv(lines, "  ", "Version", comp.get("Version", ""), w)
                for key, value in (comp.get("Details") or {}).items():
                    _kv(lines, "  ", key, value, w)
        write_out("\n".join(lines) + "\n")
    if error is not None:
        raise CLIError(daemon_error_text(error), 1)


@flags.command()
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.pass_context
def info(ctx: flags.Context, fmt: str | None) -> None:
    """Display system-wide information."""
    from hafen.cli.format import bytes_size

    client = get_client(ctx)
    client_info = _client_version()
    try:
        data = client.info()
    except HafenError as exc:
        if fmt:
            raise
        write_out(f"Client:\n Version:    {client_info['Version']}\n Context:    default\n\n")
        raise CLIError(f"Server:\nERROR: {daemon_error_text(exc)}", 1)
    if fmt:
        write_out(_render_each(fmt, [{**data, "ClientInfo": client_info}]))
        return
    lines = [
        "Client:",
        f" Version:    {client_info['Version']}",
        " Context:    default",
        f" Debug Mode: {str(bool(ctx.find_root().obj and ctx.find_root().obj.debug)).lower()}",
        "",
        "Server:",
    ]

    def add(label: str, key: str, indent: str = " ") -> None:
        if key in data and data[key] not in (None, ""):
            value = data[key]
            if isinstance(value, bool):
                value = str(value).lower()
            lines.append(f"{indent}{label}: {value}")

    add("Containers", "Containers")
    add("Running", "ContainersRunning", "  ")
    add("Paused", "ContainersPaused", "  ")
    add("Stopped", "ContainersStopped", "  ")
    add("Images", "Images")
    add("Server Version", "ServerVersion")
    add("Storage Driver", "Driver")
    for pair in data.get("DriverStatus") or []:
        if isinstance(pair, list) and len(pair) == 2:
            lines.append(f"  {pair[0]}: {pair[1]}")
    add("Logging Driver", "LoggingDriver")
    add("Cgroup Driver", "CgroupDriver")
    add("Cgroup Version", "CgroupVersion")
    runtimes = data.get("Runtimes") or {}
    if runtimes:
        lines.append(f" Runtimes: {' '.join(sorted(runtimes))}")
    add("Default Runtime", "DefaultRuntime")
    add("Init Binary", "InitBinary")
    security = data.get("SecurityOptions") or []
    if security:
        lines.append(" Security Options:")
        for opt in security:
            for part in str(opt).split(","):
                key, _, value = part.partition("=")
                lines.append(f"  {value}" if key == "name" else f"   {key.title()}: {value}")
    add("Kernel Version", "KernelVersion")
    add("Operating System", "OperatingSystem")
    add("OSType", "OSType")
    add("Architecture", "Architecture")
    add("CPUs", "NCPU")
    if data.get("MemTotal"):
        lines.append(f" Total Memory: {bytes_size(float(data['MemTotal']))}")
    add("Name", "Name")
    add("ID", "ID")
    add("Docker Root Dir", "DockerRootDir")
    add("Debug Mode", "Debug")
    add("Experimental", "ExperimentalBuild")
    add("Live Restore Enabled", "LiveRestoreEnabled")
    write_out("\n".join(lines) + "\n")
    for warning in data.get("Warnings") or []:
        sys.stderr.write(f"{warning}\n")
