"""``hafen exec``: run a command in a running container, with docker's flags and exit codes.

The exit status is the command's own; 126 when it could not be started (the daemon has
already written why into the stream); 1 for a daemon error before anything ran.
"""

from __future__ import annotations

import sys
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, get_client
from hafen.errors import HafenError


@flags.command("exec", interspersed=False)
@flags.option("-d", "--detach", is_flag=True, help="Detached mode: run command in the background")
@flags.option("--detach-keys", help="Override the key sequence for detaching a container")
@flags.option("-e", "--env", multiple=True, help="Set environment variables")
@flags.option("--env-file", multiple=True, help="Read in a file of environment variables")
@flags.option("-i", "--interactive", is_flag=True, help="Keep STDIN open even if not attached")
@flags.option("--privileged", is_flag=True, help="Give extended privileges to the command")
@flags.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
@flags.option("-u", "--user", help="Username or UID (format: <name|uid>[:<group|gid>])")
@flags.option("-w", "--workdir", help="Working directory inside the container")
@flags.argument("container")
@flags.argument("command", nargs=-1, required=True)
@flags.pass_context
def exec_(ctx: flags.Context, **params: Any) -> None:
    """Execute a command in a running container."""
    from hafen.cli._stdio import (
        AttachedSession,
        raw_terminal,
        resize_on_sigwinch,
        stdin_is_tty,
        terminal_size,
    )
    from hafen.cli.runopts import parse_env

    client = get_client(ctx)
    tty, interactive, detach = params["tty"], params["interactive"], params["detach"]
    if tty and interactive and not detach and not stdin_is_tty():
        raise CLIError("the input device is not a TTY", 1)
    try:
        env = parse_env(params["env"], params["env_file"])
    except HafenError as exc:
        raise CLIError(f"hafen: {exc}", 125)
    config: dict[str, Any] = {
        "Cmd": list(params["command"]),
        "Env": env,
        "User": params["user"] or "",
        "WorkingDir": params["workdir"] or "",
        "Tty": tty,
        "Privileged": params["privileged"],
        "AttachStdin": interactive and not detach,
        "AttachStdout": not detach,
        "AttachStderr": not detach,
        "DetachKeys": params["detach_keys"] or "",
    }
    try:
        exec_id = client.exec_create(params["container"], config)
        if detach:
            client.exec_start_detached(exec_id)
            return
        conn = client.exec_start(exec_id, tty, terminal_size() if tty else None)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    with (
        raw_terminal(tty and interactive),
        resize_on_sigwinch(lambda h, w: client.exec_resize(exec_id, h, w), tty),
    ):
        detached = AttachedSession(conn, tty=tty, forward_stdin=interactive).run()
    if detached:
        return
    try:
        code = client.exec_inspect(exec_id).get("ExitCode")
    except HafenError as exc:
        sys.stderr.write(daemon_error_text(exc) + "\n")
        ctx.exit(1)
    ctx.exit(int(code) if code is not None else 0)
