"""``hafen attach`` and ``hafen port``: docker's verbs on a running container's I/O and ports."""

from __future__ import annotations

from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, echo, get_client
from hafen.errors import HafenError

_CTRL = {"@": 0, "[": 27, "\\": 28, "]": 29, "^": 30, "_": 31}


def parse_detach_keys(spec: str) -> bytes:
    """docker's ``--detach-keys``: ``ctrl-p,ctrl-q`` / ``a,ctrl-x`` → bytes."""
    keys = bytearray()
    for part in spec.split(","):
        part = part.strip()
        if len(part) == 1:
            keys.append(ord(part))
        elif part.startswith("ctrl-") and len(part) == 6:
            ch = part[5].lower()
            if ch in _CTRL:
                keys.append(_CTRL[ch])
            elif "a" <= ch <= "z":
                keys.append(ord(ch) - ord("a") + 1)
            else:
                raise CLIError(f"Invalid detach keys ({spec}) provided", 1)
        else:
            raise CLIError(f"Invalid detach keys ({spec}) provided", 1)
    return bytes(keys)


@flags.command("attach")
@flags.option("--detach-keys", help="Override the key sequence for detaching a container")
@flags.option("--no-stdin", is_flag=True, help="Do not attach STDIN")
@flags.option(
    "--sig-proxy", is_flag=True, default=True, help="Proxy all received signals to the process"
)
@flags.argument("container")
@flags.pass_context
def attach(
    ctx: flags.Context, detach_keys: str | None, no_stdin: bool, sig_proxy: bool, container: str
) -> None:
    """Attach local standard input, output, and error streams to a running container."""
    from hafen.cli._stdio import (
        DETACH_SEQUENCE,
        AttachedSession,
        proxy_signals,
        raw_terminal,
        resize_on_sigwinch,
        stdin_is_tty,
    )

    client = get_client(ctx)
    keys = parse_detach_keys(detach_keys) if detach_keys else DETACH_SEQUENCE
    try:
        info = client.inspect_container(container)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    state = info.get("State") or {}
    if not state.get("Running"):
        raise CLIError("You cannot attach to a stopped container, start it first", 1)
    if state.get("Paused"):
        raise CLIError("You cannot attach to a paused container, unpause it first", 1)
    config = info.get("Config") or {}
    tty = bool(config.get("Tty"))
    stdin = bool(config.get("OpenStdin")) and not no_stdin
    if tty and stdin and not stdin_is_tty():
        raise CLIError("the input device is not a TTY", 1)
    cid = str(info.get("Id") or container)
    try:
        conn = client.attach(cid, stdin=stdin, stdout=True, stderr=True, detach_keys=detach_keys)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    with (
        raw_terminal(tty and stdin),
        resize_on_sigwinch(lambda h, w: client.resize(cid, h, w), tty),
        proxy_signals(lambda sig: client.kill(cid, sig), sig_proxy and not tty),
    ):
        detached = AttachedSession(conn, tty=tty, forward_stdin=stdin, detach_keys=keys).run()
    if detached:
        return
    try:
        code = client.wait(cid).status_code
    except HafenError:
        code = int((client.inspect_container(cid).get("State") or {}).get("ExitCode") or 0)
    ctx.exit(code)


@flags.command("port")
@flags.argument("container")
@flags.argument("private_port", required=False)
@flags.pass_context
def port(ctx: flags.Context, container: str, private_port: str | None) -> None:
    """List port mappings or a specific mapping for the container."""
    try:
        info = get_client(ctx).inspect_container(container)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    ports: dict[str, Any] = (info.get("NetworkSettings") or {}).get("Ports") or {}
    if private_port:
        number, _, proto = private_port.partition("/")
        key = f"{number}/{proto or 'tcp'}"
        bindings = ports.get(key) or []
        if not bindings:
            raise CLIError(f"Error: No public port '{key}' published for {container}", 1)
        for b in bindings:
            echo(f"{b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}")
        return

    def order(key: str) -> tuple[int, str]:
        number, _, proto = key.partition("/")
        return (int(number) if number.isdigit() else 0, proto)

    for key in sorted(ports, key=order):
        for b in ports[key] or []:
            echo(f"{key} -> {b.get('HostIp') or '0.0.0.0'}:{b.get('HostPort')}")
