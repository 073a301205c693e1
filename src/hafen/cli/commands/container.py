"""Container verbs: run, create, start, ps, logs, stop, restart, kill, rm, wait, and the
``container`` group of aliases. Each follows docker's flags, output and exit codes.
"""

from __future__ import annotations

import sys

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, echo, get_client, write_out
from hafen.cli.verbs import VERBS
from hafen.client import APIClient
from hafen.errors import HafenError, InvalidArgument, NotFound

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

# ----------------------------------------------------------------------------- errors


def report(verb: str, message: str, with_help: bool = False) -> str:
    """docker's ``reportError``: "hafen: <message>." plus the help hint when asked."""
    text = "hafen: " + message.rstrip(".") + "."
    if with_help:
        text += f"\nSee 'hafen {verb} --help'."
    return text


def start_exit_code(err: Exception) -> int:
    """docker's ``runStartContainerErr``: 127 for a command that is not there, 126 for
    one that cannot be invoked, else 125."""
    text = str(err)
    if (
        "executable file not found" in text
        or "no such file or directory" in text
        or "system cannot find the file specified" in text
    ):
        return 127
    if "permission denied" in text or "is a directory" in text:
        return 126
    return 125


def _collect(
    names: tuple[str, ...], action: Callable[[str], None], print_names: bool = True
) -> list[tuple[str, str]]:
    """Apply ``action`` to each name, printing the name on success (docker's multi-verb
    pattern); returns (name, error line) for each failure."""
    failures: list[tuple[str, str]] = []
    for name in names:
        try:
            action(name)
        except HafenError as exc:
            failures.append((name, daemon_error_text(exc)))
            continue
        if print_names:
            echo(name)
    return failures


def _finish(failures: list[tuple[str, str]], summary: str | None = None) -> None:
    if failures:
        lines = [line for _name, line in failures]
        if summary:
            lines.append(f"{summary}: {', '.join(name for name, _line in failures)}")
        raise CLIError("\n".join(lines), 1)


# ----------------------------------------------------------------------------- run / create


def _run_flags(func: Callable[..., Any]) -> Callable[..., Any]:
    """The flags ``run`` and ``create`` share (docker's container options)."""
    decorators = [
        flags.option("--name", help="Assign a name to the container"),
        flags.option(
            "--rm",
            "auto_remove",
            is_flag=True,
            help="Automatically remove the container when it exits",
        ),
        flags.option("-e", "--env", multiple=True, help="Set environment variables"),
        flags.option("--env-file", multiple=True, help="Read in a file of environment variables"),
        flags.option("-w", "--workdir", help="Working directory inside the container"),
        flags.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])"),
        flags.option("--entrypoint", help="Overwrite the default ENTRYPOINT of the image"),
        flags.option(
            "-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached"
        ),
        flags.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY"),
        flags.option("-h", "--hostname", help="Container host name"),
        flags.option("-l", "--label", "labels", multiple=True, help="Set meta data on a container"),
        flags.option("--label-file", multiple=True, help="Read in a line delimited file of labels"),
        flags.option("-a", "--attach", multiple=True, help="Attach to STDIN, STDOUT or STDERR"),
        flags.option("-m", "--memory", help="Memory limit"),
        flags.option(
            "--pids-limit", type=int, help="Tune container pids limit (set -1 for unlimited)"
        ),
        flags.option("--cpus", type=float, help="Number of CPUs"),
        flags.option(
            "--privileged", is_flag=True, help="Give extended privileges to this container"
        ),
        flags.option("--cap-add", multiple=True, help="Add Linux capabilities"),
        flags.option("--cap-drop", multiple=True, help="Drop Linux capabilities"),
        flags.option(
            "--read-only", is_flag=True, help="Mount the container's root filesystem as read only"
        ),
        flags.option("--init", is_flag=True, help="Run an init inside the container"),
        flags.option("--stop-signal", help="Signal to stop the container"),
        flags.option("--stop-timeout", type=int, help="Timeout (in seconds) to stop a container"),
        flags.option("--restart", help="Restart policy to apply when a container exits"),
        flags.option("-v", "--volume", "volumes", multiple=True, help="Bind mount a volume"),
        flags.option(
            "--mount", "mounts", multiple=True, help="Attach a filesystem mount to the container"
        ),
        flags.option("--tmpfs", multiple=True, help="Mount a tmpfs directory"),
        flags.option(
            "--volumes-from", multiple=True, help="Mount volumes from the specified container(s)"
        ),
        flags.option(
            "-p", "--publish", multiple=True, help="Publish a container's port(s) to the host"
        ),
        flags.option("--expose", multiple=True, help="Expose a port or a range of ports"),
        flags.option(
            "-P",
            "--publish-all",
            is_flag=True,
            help="Publish all exposed ports to random ports",
        ),
        flags.option(
            "--network",
            "--net",
            "network",
            multiple=True,
            help="Connect a container to a network (repeat for several)",
        ),
        flags.option(
            "--network-alias", multiple=True, help="Add network-scoped alias for the container"
        ),
        flags.option("--ip", help="IPv4 address (e.g., 172.30.100.104)"),
        flags.option("--dns", multiple=True, help="Set custom DNS servers"),
        flags.option("--dns-search", multiple=True, help="Set custom DNS search domains"),
        flags.option("--dns-option", multiple=True, help="Set DNS options"),
        flags.option("--add-host", multiple=True, help="Add a custom host-to-IP mapping (host:ip)"),
        flags.option("--platform", help="Set platform if server is multi-platform capable"),
        flags.option(
            "--pull",
            default="missing",
            help='Pull image before running ("always", "missing", "never")',
        ),
        flags.argument("image"),
        flags.argument("command", nargs=-1),
    ]
    from hafen.cli.health import health_options
    from hafen.cli.isolation import isolation_flags

    for decorator in reversed(decorators):
        func = decorator(func)
    from hafen.cli.logflags import log_options

    return log_options(health_options(isolation_flags(func)))


def _options(params: dict[str, Any], detach: bool) -> Any:
    from hafen.cli import isolation
    from hafen.cli.health import healthcheck_from_flags
    from hafen.cli.logflags import log_config_from_flags
    from hafen.cli.runopts import RunOptions

    given = params.get("network")
    networks = (given,) if isinstance(given, str) else tuple(given or ())

    return RunOptions(
        image=params["image"],
        command=list(params["command"]),
        name=params["name"],
        detach=detach,
        auto_remove=params["auto_remove"],
        env=list(params["env"]),
        env_files=list(params["env_file"]),
        workdir=params["workdir"],
        user=params["user"],
        entrypoint=params["entrypoint"],
        interactive=params["interactive"],
        tty=params["tty"],
        hostname=params["hostname"],
        labels=list(params["labels"]),
        label_files=list(params["label_file"]),
        memory=params["memory"],
        pids_limit=params["pids_limit"],
        cpus=params["cpus"],
        privileged=params["privileged"],
        cap_add=list(params["cap_add"]),
        cap_drop=list(params["cap_drop"]),
        read_only=params["read_only"],
        init=params["init"],
        stop_signal=params["stop_signal"],
        stop_timeout=params["stop_timeout"],
        restart=params["restart"],
        volumes=list(params["volumes"]),
        mounts=list(params["mounts"]),
        tmpfs=list(params["tmpfs"]),
        volumes_from=list(params["volumes_from"]),
        publish=list(params["publish"]),
        publish_all=params["publish_all"],
        expose=list(params["expose"]),
        network=networks[0] if networks else None,
        extra_networks=list(networks[1:]),
        network_aliases=list(params["network_alias"]),
        ip=params["ip"],
        dns=list(params["dns"]),
        dns_search=list(params["dns_search"]),
        dns_options=list(params["dns_option"]),
        add_hosts=list(params["add_host"]),
        attach=list(params["attach"]),
        isolation=isolation.collect(params),
        healthcheck=healthcheck_from_flags(params),
        log_config=log_config_from_flags(params),
    )


def create_container(
    client: APIClient, opts: Any, verb: str, platform: str | None = None
) -> tuple[str, dict[str, Any]]:
    """Map the flags, ``POST /containers/create``, report like docker; returns (id, body)."""
    from hafen.cli._stdio import terminal_size
    from hafen.cli.runopts import build_create_body, familiar_tagged

    if opts.tty:
        opts.console_size = terminal_size()
    try:
        body = build_create_body(opts)
    except InvalidArgument as exc:
        raise CLIError(report(verb, str(exc), with_help=True), 125)
    try:
        created = client.create_container(body, name=opts.name, platform=platform)
    except NotFound as exc:
        # docker would pull here; hafen has no pull yet, so the miss is final.
        sys.stderr.write(f"Unable to find image '{familiar_tagged(opts.image)}' locally\n")
        raise CLIError(report(verb, daemon_error_text(exc), with_help=True), 125)
    except HafenError as exc:
        raise CLIError(report(verb, daemon_error_text(exc), with_help=True), 125)
    for warning in created.warnings:
        sys.stderr.write(f"WARNING: {warning}\n")
    return created.id, body


def attach_and_wait(
    client: APIClient,
    cid: str,
    *,
    tty: bool,
    stdin: bool,
    stdout: bool,
    stderr: bool,
    auto_remove: bool,
    sig_proxy: bool,
    start: Callable[[], None],
    verb: str,
) -> int:
    """docker's attached flow: attach, register the wait, start, pump stdio, return the
    exit status (0 when the user detached)."""
    from hafen.cli._stdio import AttachedSession, proxy_signals, raw_terminal, resize_on_sigwinch

    conn = None
    if stdin or stdout or stderr:
        try:
            conn = client.attach(cid, stdin=stdin, stdout=stdout, stderr=stderr)
        except HafenError as exc:
            raise CLIError(report(verb, daemon_error_text(exc)), 125)
    try:
        pending = client.wait_async(cid, "removed" if auto_remove else "next-exit")
        # The daemon answers the wait's headers once it has registered it; only then is
        # it safe to start (a fast exit would otherwise be missed). Old daemons that
        # answer only at exit still work: we go on after a short grace period.
        pending.registered(timeout=5)
    except HafenError as exc:
        if conn is not None:
            conn.close()
        raise CLIError(report(verb, daemon_error_text(exc)), 125)
    try:
        start()
    except HafenError as exc:
        if conn is not None:
            conn.close()
        if auto_remove:
            try:
                pending.result(timeout=10)
            except (HafenError, TimeoutError):
                pass
        raise CLIError(report(verb, daemon_error_text(exc)), start_exit_code(exc))

    detached = False
    with (
        raw_terminal(tty and stdin),
        resize_on_sigwinch(lambda h, w: client.resize(cid, h, w), tty),
        proxy_signals(lambda sig: client.kill(cid, sig), sig_proxy and not tty),
    ):
        if conn is not None:
            detached = AttachedSession(conn, tty=tty, forward_stdin=stdin).run()
        if detached:
            return 0
        try:
            result = pending.result()
        except HafenError as exc:
            sys.stderr.write(f"Error waiting for container: {exc}\n")
            return 125
    if result.error:
        sys.stderr.write(f"Error waiting for container: {result.error}\n")
        return 125
    return result.status_code


@flags.command(interspersed=False)
@_run_flags
@flags.option(
    "-d", "--detach", is_flag=True, help="Run container in background and print container ID"
)
@flags.option(
    "--sig-proxy", is_flag=True, default=True, help="Proxy received signals to the process"
)
@flags.option("--detach-keys", help="Override the key sequence for detaching a container")
@flags.pass_context
def run(ctx: flags.Context, **params: Any) -> None:
    """Create and run a new container from an image."""
    from hafen.cli._stdio import stdin_is_tty

    client = get_client(ctx)
    opts = _options(params, detach=params["detach"])
    if opts.tty and opts.interactive and not opts.detach and not stdin_is_tty():
        raise CLIError("the input device is not a TTY", 1)
    cid, body = create_container(client, opts, "run", params["platform"])
    if opts.detach:
        try:
            client.start(cid)
        except HafenError as exc:
            raise CLIError(report("run", daemon_error_text(exc)), start_exit_code(exc))
        echo(cid)
        return
    code = attach_and_wait(
        client,
        cid,
        tty=opts.tty,
        stdin=body["AttachStdin"],
        stdout=body["AttachStdout"],
        stderr=body["AttachStderr"],
        auto_remove=opts.auto_remove,
        sig_proxy=params["sig_proxy"],
        start=lambda: client.start(cid),
        verb="run",
    )
    ctx.exit(code)


@flags.command(interspersed=False)
@_run_flags
@flags.pass_context
def create(ctx: flags.Context, **params: Any) -> None:
    """Create a new container."""
    # Not detached: like docker, a created container records AttachStdout/AttachStderr.
    opts = _options(params, detach=False)
    cid, _body = create_container(get_client(ctx), opts, "create", params["platform"])
    echo(cid)


# ----------------------------------------------------------------------------- start


@flags.command()
@flags.option("-a", "--attach", is_flag=True, help="Attach STDOUT/STDERR and forward signals")
@flags.option("-i", "--interactive", is_flag=True, help="Attach container's STDIN")
@flags.option("--detach-keys", help="Override the key sequence for detaching a container")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def start(
    ctx: flags.Context,
    attach: bool,
    interactive: bool,
    detach_keys: str | None,
    containers: tuple[str, ...],
) -> None:
    """Start one or more stopped containers."""
    from hafen.cli._stdio import stdin_is_tty

    client = get_client(ctx)
    if attach or interactive:
        if len(containers) > 1:
            raise CLIError("hafen: you cannot start and attach multiple containers at once", 1)
        info = client.inspect_container(containers[0])
        config = info.get("Config") or {}
        host_config = info.get("HostConfig") or {}
        tty = bool(config.get("Tty"))
        stdin = interactive and bool(config.get("OpenStdin"))
        if tty and stdin and not stdin_is_tty():
            raise CLIError("the input device is not a TTY", 1)
        cid = info.get("Id") or containers[0]
        code = attach_and_wait(
            client,
            cid,
            tty=tty,
            stdin=stdin,
            stdout=True,
            stderr=True,
            auto_remove=bool(host_config.get("AutoRemove")),
            sig_proxy=True,
            start=lambda: client.start(cid),
            verb="start",
        )
        ctx.exit(code)
    _finish(_collect(containers, client.start), "Error: failed to start containers")


# ----------------------------------------------------------------------------- ps


def _parse_filters(values: tuple[str, ...]) -> dict[str, list[str]]:
    filters: dict[str, list[str]] = {}
    for value in values:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CLIError(f"bad format of filter (expected name=value): {value}", 125)
        filters.setdefault(key.strip().lower(), []).append(val)
    return filters


@flags.command()
@flags.option(
    "-a", "--all", "show_all", is_flag=True, help="Show all containers (default shows just running)"
)
@flags.option("-q", "--quiet", is_flag=True, help="Only display container IDs")
@flags.option(
    "-n",
    "--last",
    type=int,
    default=-1,
    help="Show n last created containers (includes all states)",
)
@flags.option(
    "-l", "--latest", is_flag=True, help="Show the latest created container (includes all states)"
)
@flags.option("--no-trunc", is_flag=True, help="Don't truncate output")
@flags.option("-s", "--size", is_flag=True, help="Display total file sizes")
@flags.option(
    "-f", "--filter", "filters", multiple=True, help="Filter output based on conditions provided"
)
@flags.option("--format", "fmt", help="Format output using a custom template")
@flags.pass_context
def ps(
    ctx: flags.Context,
    show_all: bool,
    quiet: bool,
    last: int,
    latest: bool,
    no_trunc: bool,
    size: bool,
    filters: tuple[str, ...],
    fmt: str | None,
) -> None:
    """List containers."""
    from hafen.cli.template import TemplateError, render_rows
    from hafen.cli.views import PS_DEFAULT_FORMAT, PS_HEADERS, ContainerRow

    limit = 1 if latest else last
    if last != -1 or latest:
        show_all = True
    entries = get_client(ctx).containers(
        all=show_all, limit=limit if limit > 0 else None, size=size, filters=_parse_filters(filters)
    )
    if quiet:
        fmt = "{{.ID}}"
    elif not fmt or fmt == "table":
        fmt = PS_DEFAULT_FORMAT + ("\t{{.Size}}" if size else "")
    rows = [ContainerRow(entry, trunc=not no_trunc) for entry in entries]
    try:
        write_out(render_rows(fmt, rows, PS_HEADERS))
    except TemplateError as exc:
        raise CLIError(f"template parsing error: {exc}", 1)


# ----------------------------------------------------------------------------- logs


@flags.command()
@flags.option("-f", "--follow", is_flag=True, help="Follow log output")
@flags.option("-t", "--timestamps", is_flag=True, help="Show timestamps")
@flags.option(
    "-n", "--tail", default="all", help="Number of lines to show from the end of the logs"
)
@flags.option("--since", help="Show logs since timestamp or relative (e.g. 42m for 42 minutes)")
@flags.option("--until", help="Show logs before a timestamp or relative (e.g. 42m for 42 minutes)")
@flags.option("--details", is_flag=True, help="Show extra details provided to logs")
@flags.argument("container")
@flags.pass_context
def logs(
    ctx: flags.Context,
    follow: bool,
    timestamps: bool,
    tail: str,
    since: str | None,
    until: str | None,
    details: bool,
    container: str,
) -> None:
    """Fetch the logs of a container."""
    from hafen.cli._stdio import _binary
    from hafen.cli.format import parse_timestamp
    from hafen.client import STDOUT, demux

    client = get_client(ctx)
    info = client.inspect_container(container)
    tty = bool((info.get("Config") or {}).get("Tty"))
    try:
        since_ts = parse_timestamp(since) if since else None
        until_ts = parse_timestamp(until) if until else None
    except InvalidArgument as exc:
        raise CLIError(str(exc), 1)
    stream = client.logs(
        info.get("Id") or container,
        follow=follow,
        timestamps=timestamps,
        tail=tail,
        since=since_ts,
        until=until_ts,
        details=details,
    )
    out, err = _binary(sys.stdout), _binary(sys.stderr)
    ctype = stream.content_type
    multiplexed = "multiplexed" in ctype or (not tty and "raw-stream" not in ctype)
    try:
        with stream:
            if multiplexed:
                for kind, payload in demux(stream.read):
                    target = out if kind == STDOUT else err
                    target.write(payload)
                    target.flush()
            else:
                for chunk in stream:
                    out.write(chunk)
                    out.flush()
    except KeyboardInterrupt:
        pass


# ----------------------------------------------------------------------------- stop/kill/rm/wait


@flags.command()
@flags.option(
    "-t",
    "--time",
    "--timeout",
    "timeout",
    type=int,
    help="Seconds to wait before killing the container",
)
@flags.option("-s", "--signal", "sig", help="Signal to send to the container")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def stop(
    ctx: flags.Context, timeout: int | None, sig: str | None, containers: tuple[str, ...]
) -> None:
    """Stop one or more running containers."""
    client = get_client(ctx)
    _finish(_collect(containers, lambda c: client.stop(c, timeout=timeout, signal=sig)))


@flags.command()
@flags.option(
    "-t",
    "--time",
    "--timeout",
    "timeout",
    type=int,
    help="Seconds to wait before killing the container",
)
@flags.option("-s", "--signal", "sig", help="Signal to send to the container")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def restart(
    ctx: flags.Context, timeout: int | None, sig: str | None, containers: tuple[str, ...]
) -> None:
    """Restart one or more containers."""
    client = get_client(ctx)
    _finish(_collect(containers, lambda c: client.restart(c, timeout=timeout, signal=sig)))


@flags.command()
@flags.option("-s", "--signal", "sig", help="Signal to send to the container")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def kill(ctx: flags.Context, sig: str | None, containers: tuple[str, ...]) -> None:
    """Kill one or more running containers."""
    client = get_client(ctx)
    _finish(_collect(containers, lambda c: client.kill(c, signal=sig)))


@flags.command()
@flags.option(
    "-f", "--force", is_flag=True, help="Force the removal of a running container (uses SIGKILL)"
)
@flags.option(
    "-v", "--volumes", is_flag=True, help="Remove anonymous volumes associated with the container"
)
@flags.option("-l", "--link", is_flag=True, help="Remove the specified link")
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def rm(
    ctx: flags.Context, force: bool, volumes: bool, link: bool, containers: tuple[str, ...]
) -> None:
    """Remove one or more containers."""
    client = get_client(ctx)
    _finish(
        _collect(
            containers,
            lambda c: client.remove_container(c, force=force, volumes=volumes, link=link),
        )
    )


@flags.command()
@flags.argument("container")
@flags.argument("new_name")
@flags.pass_context
def rename(ctx: flags.Context, container: str, new_name: str) -> None:
    """Rename a container."""
    try:
        get_client(ctx).rename(container, new_name)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)


@flags.command()
@flags.argument("containers", nargs=-1, required=True)
@flags.pass_context
def wait(ctx: flags.Context, containers: tuple[str, ...]) -> None:
    """Block until one or more containers stop, then print their exit codes."""
    client = get_client(ctx)

    def one(name: str) -> None:
        echo(str(client.wait(name).status_code))

    _finish(_collect(containers, one, print_names=False))


# ----------------------------------------------------------------------------- aliases


# Subcommands that live in other modules load when used: ``hafen run`` imports this one.
_CONTAINER_LAZY: dict[str, tuple[str, str, str]] = {
    **{
        name: VERBS[name]
        for name in ("attach", "exec", "pause", "port", "stats", "top", "unpause", "update")
    },
    "prune": ("hafen.cli.commands.disk", "container_prune", "Remove all stopped containers"),
}


@flags.group("container", cls=flags.LazyGroup, lazy=_CONTAINER_LAZY, sort_help=True)
def container_group() -> None:
    """Manage containers."""


container_group.add_command(run)
container_group.add_command(create)
container_group.add_command(start)
container_group.add_command(ps, "ls")
container_group.add_command(ps, "list")
container_group.add_command(ps, "ps")
container_group.add_command(logs)
container_group.add_command(stop)
container_group.add_command(restart)
container_group.add_command(kill)
container_group.add_command(rm)
container_group.add_command(rm, "remove")
container_group.add_command(wait)
container_group.add_command(rename)


@flags.command("inspect")
@flags.option("-f", "--format", "fmt", help="Format output using a custom template")
@flags.option("-s", "--size", is_flag=True, help="Display total file sizes")
@flags.argument("names", nargs=-1, required=True)
@flags.pass_context
def container_inspect(
    ctx: flags.Context, fmt: str | None, size: bool, names: tuple[str, ...]
) -> None:
    """Display detailed information on one or more containers."""
    from hafen.cli.commands.system import inspect_objects

    inspect_objects(get_client(ctx), names, "container", fmt, size)


container_group.add_command(container_inspect)
