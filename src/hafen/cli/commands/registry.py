"""Registry verbs: pull, push, login, logout — and Docker's progress display for them.

Credentials live on the client side, as with Docker: ``login`` asks the daemon to check
them (``POST /auth``) and then keeps them in config.json (or its credential helper);
``pull``/``push`` send the registry's credentials in ``X-Registry-Auth``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, echo, get_client, prompt


class ProgressDisplay:
    """Docker's jsonmessage rendering: one line per layer id, rewritten in place on a
    terminal; elsewhere status lines only (no progress bars)."""

    def __init__(self, out: Any = None, tty: bool | None = None) -> None:
        self.out = out or sys.stdout
        self.tty = self.out.isatty() if tty is None else tty
        self.lines: dict[str, int] = {}
        self.count = 0

    def show(self, message: dict[str, Any]) -> None:
        status = message.get("status")
        if status is None or message.get("aux") is not None:
            return
        ident = message.get("id")
        text = str(status)
        progress = message.get("progress")
        if progress and self.tty:
            text += " " + str(progress)
        if ident:
            text = f"{ident}: {text}"
        if not self.tty:
            if message.get("progressDetail", {}).get("current") is None or not ident:
                self.out.write(text + "\n")
            self.out.flush()
            return
        if ident and ident in self.lines:
            up = self.count - self.lines[ident]
            self.out.write(f"\x1b[{up}A\r\x1b[2K{text}\r\x1b[{up}B")
        else:
            if ident:
                self.lines[ident] = self.count
            self.out.write(f"\x1b[2K{text}\n")
            self.count += 1
        self.out.flush()


def render_stream(messages: Iterable[dict[str, Any]], quiet: bool = False) -> dict[str, Any]:
    """Show a progress stream; raise its error message; return the last ``aux``."""
    display = ProgressDisplay()
    aux: dict[str, Any] = {}
    for message in messages:
        if message.get("error") or message.get("errorDetail"):
            detail = message.get("errorDetail") or {}
            raise CLIError(str(detail.get("message") or message.get("error")), 1)
        if isinstance(message.get("aux"), dict):
            aux = message["aux"]
            continue
        if not quiet:
            display.show(message)
    return aux


def _auth_header(domain: str) -> dict[str, str]:
    from hafen.distribution.credentials import CredentialStore, encode_auth_header, registry_key

    credentials = CredentialStore().get(domain)
    if credentials.empty:
        return {}
    return {"X-Registry-Auth": encode_auth_header(credentials, registry_key(domain))}


def _parse(name: str) -> Any:
    from hafen.errors import InvalidReference
    from hafen.images.reference import parse_reference

    try:
        return parse_reference(name)
    except InvalidReference as e:
        raise CLIError(f"invalid reference format: {e}", 1)


@flags.command()
@flags.option("--platform", default="", help="Set platform if server is multi-platform capable")
@flags.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@flags.option("-a", "--all-tags", is_flag=True, help="Download all tagged images in the repository")
@flags.argument("name")
@flags.pass_context
def pull(ctx: flags.Context, platform: str, quiet: bool, all_tags: bool, name: str) -> None:
    """Download an image from a registry."""
    reference = _parse(name)
    params: dict[str, Any] = {"fromImage": reference.name}
    if all_tags:
        # as docker: no tag at all asks the daemon for every tag of the repository
        if reference.digest or ":" in name.rsplit("/", 1)[-1]:
            raise CLIError("tag can't be used with --all-tags/-a", 1)
    elif reference.digest:
        params["tag"] = reference.digest
    else:
        params["tag"] = reference.tag
        if not quiet and "@" not in name and ":" not in name.rsplit("/", 1)[-1]:
            echo("Using default tag: latest")
    if platform:
        params["platform"] = platform
    messages = get_client(ctx).post_stream(
        "/images/create", params, headers=_auth_header(reference.domain)
    )
    render_stream(messages, quiet)
    echo(reference.name if all_tags else str(reference))


@flags.command()
@flags.option("-q", "--quiet", is_flag=True, help="Suppress verbose output")
@flags.option("-a", "--all-tags", is_flag=True, help="Push all tags of an image to the repository")
@flags.argument("name")
@flags.pass_context
def push(ctx: flags.Context, quiet: bool, all_tags: bool, name: str) -> None:
    """Upload an image to a registry."""
    from hafen.errors import InvalidReference
    from hafen.images.reference import parse_reference

    try:
        reference = parse_reference(name, default_tag=not all_tags)
    except InvalidReference as e:
        raise CLIError(f"invalid reference format: {e}", 1)
    if reference.digest:
        raise CLIError("cannot push a digest reference", 1)
    if not quiet and not all_tags and ":" not in name.rsplit("/", 1)[-1]:
        echo("Using default tag: latest")
    messages = get_client(ctx).post_stream(
        f"/images/{reference.name}/push",
        {"tag": reference.tag or ""},
        headers=_auth_header(reference.domain),
    )
    render_stream(messages, quiet)
    if quiet:
        echo(str(reference))


@flags.command()
@flags.option("-u", "--username", default="", help="Username")
@flags.option("-p", "--password", default="", help="Password")
@flags.option("--password-stdin", is_flag=True, help="Take the password from stdin")
@flags.argument("server", required=False, default="")
@flags.pass_context
def login(
    ctx: flags.Context, username: str, password: str, password_stdin: bool, server: str
) -> None:
    """Log in to a registry (Docker Hub when no server is given)."""
    from hafen.distribution.credentials import Credentials, CredentialStore, registry_key

    if password and password_stdin:
        raise CLIError("--password and --password-stdin are mutually exclusive", 1)
    if password_stdin:
        if not username:
            raise CLIError("Must provide --username with --password-stdin", 1)
        password = sys.stdin.read().rstrip("\r\n")
    elif password:
        echo("WARNING! Using --password via the CLI is insecure. Use --password-stdin.", err=True)
    key = registry_key(server or "docker.io")
    if not username:
        username = prompt("Username")
    if not password:
        password = prompt("Password", hide_input=True)
    if not username or not password:
        raise CLIError(
            "Error: Cannot perform an interactive login without a username and password", 1
        )
    get_client(ctx).login(username, password, key)
    store = CredentialStore()
    store.store(key, Credentials(username, password))
    echo("Login Succeeded")


@flags.command()
@flags.argument("server", required=False, default="")
def logout(server: str) -> None:
    """Log out from a registry (Docker Hub when no server is given)."""
    from hafen.distribution.credentials import CredentialStore, registry_key

    key = registry_key(server or "docker.io")
    if CredentialStore().erase(key):
        echo(f"Removing login credentials for {key}")
    else:
        echo(f"Not logged in to {key}")


__all__ = ["ProgressDisplay", "login", "logout", "pull", "push", "render_stream"]
