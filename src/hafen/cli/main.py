"""The ``hafen`` command: global flags, lazily loaded verbs, docker's errors and exit codes.

Owns the entry point ``main``. Verbs live in ``hafen.cli.commands.*`` and are imported
only when invoked (``hafen --help`` lists them from ``cli.verbs.VERBS`` without importing
any), so the CLI starts fast. Errors end here: daemon errors print as
``Error response from daemon: ...`` and exit 1, flag errors print docker's
"See 'hafen X --help'." and exit 125; ``run``/``create`` pick their own codes.
"""

from __future__ import annotations

import os
import sys

from hafen.cli import flags
from hafen.cli._common import CLIError, CLIState, daemon_error_text, echo
from hafen.cli.verbs import VERBS


def _version_callback(ctx: flags.Context, _param: flags.Option, value: bool) -> None:
    if not value:
        return
    from hafen import __version__

    echo(f"hafen version {__version__}")
    ctx.exit(0)


@flags.group("hafen", cls=flags.LazyGroup, lazy=VERBS)
@flags.option("-H", "--host", "host", metavar="HOST", help="Daemon socket to connect to")
@flags.option("-D", "--debug", is_flag=True, help="Enable debug mode")
@flags.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify")
@flags.option("--tlsverify", is_flag=True, help="Use TLS and verify the remote")
@flags.option("--tlscacert", metavar="FILE", help="Trust certs signed only by this CA")
@flags.option("--tlscert", metavar="FILE", help="Path to TLS certificate file")
@flags.option("--tlskey", metavar="FILE", help="Path to TLS key file")
@flags.option(
    "-v",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version_callback,
    help="Print version information and quit",
)
@flags.pass_context
def cli(
    ctx: flags.Context,
    host: str | None,
    debug: bool,
    tls: bool,
    tlsverify: bool,
    tlscacert: str | None,
    tlscert: str | None,
    tlskey: str | None,
) -> None:
    """A self-sufficient runtime for containers."""
    ctx.obj = CLIState(
        host=host,
        debug=debug,
        tls=tls,
        tls_verify=tlsverify,
        tls_ca=tlscacert,
        tls_cert=tlscert,
        tls_key=tlskey,
    )
    if debug:
        os.environ["HAFEN_CLI_DEBUG"] = "1"


def _usage_error_text(err: flags.UsageError, path: str) -> str:
    """docker's wording: run and create report through its reportError ("docker: ...")."""
    message = err.format_message()
    if path.split()[-1] in ("run", "create"):
        message = "hafen: " + message
    return message


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and exits with docker's status codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = 0
    try:
        cli.main(args, prog_name="hafen")
    except flags.Exit as exc:
        code = exc.exit_code
    except flags.NoSuchCommand as exc:
        # docker: "docker: 'x' is not a docker command." and exit status 1.
        parent = exc.ctx.command_path if exc.ctx else "hafen"
        sys.stderr.write(f"hafen: '{exc.name}' is not a hafen command.\nSee '{parent} --help'\n")
        code = 1
    except flags.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx else "hafen"
        sys.stderr.write(f"{_usage_error_text(exc, path)}\nSee '{path} --help'.\n")
        code = 125
    except flags.Abort:
        code = 130
    except CLIError as exc:
        if exc.message:
            sys.stderr.write(exc.message.rstrip("\n") + "\n")
        code = exc.code
    except KeyboardInterrupt:
        code = 130
    except BrokenPipeError:
        # Output piped into something that stopped reading (``hafen ps | head``).
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = 1
    except Exception as exc:
        from hafen.errors import HafenError

        if not isinstance(exc, HafenError):
            raise
        if os.environ.get("HAFEN_CLI_DEBUG"):
            import traceback

            traceback.print_exc()
        sys.stderr.write(daemon_error_text(exc) + "\n")
        code = 1
    sys.stdout.flush()
    sys.exit(code)


if __name__ == "__main__":
    main()
