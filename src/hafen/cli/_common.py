"""Shared plumbing of the CLI verbs: the per-invocation state (which daemon), the
``CLIError`` that carries a message and docker's exit code, and docker's wording of
daemon errors. Imports nothing heavy.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import click

from hafen.records import record

if TYPE_CHECKING:
    from hafen.client import APIClient
    from hafen.client._tls import TLSOptions


class CLIError(Exception):
    """Stop the command: print ``message`` (if any) to stderr and exit with ``code``."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


@record
class CLIState:
    """What the global flags chose; the API client is created on first use."""

    host: str | None = None
    debug: bool = False
    tls: bool = False
    tls_verify: bool = False
    tls_ca: str | None = None
    tls_cert: str | None = None
    tls_key: str | None = None
    _client: APIClient | None = None

    @property
    def client(self) -> APIClient:
        if self._client is None:
            from hafen.client import APIClient
            from hafen.errors import HafenError

            try:
                self._client = APIClient(self.host, tls=self._tls())
            except HafenError as e:  # a certificate that cannot be used: this side's error
                raise local_error(e) from e
        return self._client

    def _tls(self) -> TLSOptions | None:
        """TLS from the global flags and the environment, as the docker CLI reads them."""
        wanted = self.tls or self.tls_verify or self.tls_ca or self.tls_cert or self.tls_key
        if not wanted and not any(
            os.environ.get(f"{prefix}_{name}")
            for prefix in ("HAFEN", "DOCKER")
            for name in ("TLS", "TLS_VERIFY")
        ):
            return None  # the common case: ssl is not even imported
        from hafen.client._tls import tls_options

        return tls_options(
            tls=self.tls,
            verify=self.tls_verify,
            ca=self.tls_ca,
            cert=self.tls_cert,
            key=self.tls_key,
        )


def get_state(ctx: click.Context | None = None) -> CLIState:
    context = ctx or click.get_current_context()
    root = context.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj


def get_client(ctx: click.Context | None = None) -> APIClient:
    return get_state(ctx).client


def daemon_error_text(err: Exception) -> str:
    """docker's wording: errors from the daemon are "Error response from daemon: ...";
    a daemon that cannot be reached is reported as it is."""
    from hafen.client import DaemonUnreachable
    from hafen.errors import HafenError

    if isinstance(err, DaemonUnreachable):
        return str(err)
    if isinstance(err, HafenError) and getattr(err, "local", False):
        return str(err)
    return f"Error response from daemon: {err}"


def local_error(err: Exception) -> Exception:
    """Mark an error raised on this side (bad flag values) so it is not blamed on the daemon."""
    err.local = True  # type: ignore[attr-defined]
    return err


def write_out(text: str) -> None:
    """Write to stdout without click's newline handling."""
    click.echo(text, nl=False)


class LazyGroup(click.Group):
    """A click group whose subcommands in ``lazy`` (name -> module, attribute, one-line
    help) are imported on first use. ``--help`` lists them in the table's order, then the
    others; ``sort_help`` lists them all by name instead."""

    def __init__(
        self,
        *args: Any,
        lazy: dict[str, tuple[str, str, str]],
        sort_help: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.lazy = lazy
        self.sort_help = sort_help

    def list_commands(self, ctx: click.Context) -> list[str]:
        return list(self.lazy) + [n for n in super().list_commands(ctx) if n not in self.lazy]

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name in self.lazy:
            import importlib

            module, attr, _help = self.lazy[cmd_name]
            command = getattr(importlib.import_module(module), attr)
            assert isinstance(command, click.Command)
            return command
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = [(name, self.lazy[name][2]) for name in self.lazy]
        rows += [
            (name, cmd.get_short_help_str())
            for name, cmd in self.commands.items()
            if name not in self.lazy
        ]
        if self.sort_help:
            rows.sort()
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)
