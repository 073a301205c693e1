"""Shared plumbing of the CLI verbs: the per-invocation state (which daemon), the
``CLIError`` that carries a message and docker's exit code, and docker's wording of
daemon errors. Imports nothing heavy.
"""

from __future__ import annotations

import os
import sys

from hafen.cli import flags
from hafen.records import record

TYPE_CHECKING = False
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


def get_state(ctx: flags.Context | None = None) -> CLIState:
    context = ctx or flags.get_current_context()
    root = context.find_root()
    if not isinstance(root.obj, CLIState):
        root.obj = CLIState()
    return root.obj


def get_client(ctx: flags.Context | None = None) -> APIClient:
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


def echo(message: object = "", nl: bool = True, err: bool = False) -> None:
    """Print a line (or ``message`` as it is, ``nl=False``) and flush, so streamed
    output (``events``, ``logs -f``) reaches a pipe as it comes."""
    stream = sys.stderr if err else sys.stdout
    stream.write(f"{message}\n" if nl else str(message))
    stream.flush()


def write_out(text: str) -> None:
    """Write to stdout as it is."""
    echo(text, nl=False)


def confirm(question: str) -> bool:
    """docker's ``PromptForConfirmation``: "<question> [y/N] "; only y or yes agree,
    and the end of input is a no."""
    sys.stdout.write(f"{question} [y/N] ")
    sys.stdout.flush()
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def prompt(label: str, hide_input: bool = False) -> str:
    """Ask for one line ("<label>: "); with ``hide_input`` the terminal does not echo it."""
    if hide_input:
        import getpass

        return getpass.getpass(f"{label}: ")
    sys.stdout.write(f"{label}: ")
    sys.stdout.flush()
    line = sys.stdin.readline()
    if not line:
        raise flags.Abort()
    return line.rstrip("\n")
