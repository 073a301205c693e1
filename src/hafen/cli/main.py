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

import click

from hafen.cli._common import CLIError, CLIState, LazyGroup, daemon_error_text
from hafen.cli.verbs import VERBS

CONTEXT_SETTINGS = {"help_option_names": ["--help"], "max_content_width": 120}


def _version_callback(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as pkg_version

    try:
        ver = pkg_version("hafen")
    except PackageNotFoundError:
        ver = "dev"
    click.echo(f"hafen version {ver}")
    ctx.exit(0)


@click.group(
    cls=LazyGroup,
    lazy=VERBS,
    context_settings=CONTEXT_SETTINGS,
    invoke_without_command=False,
)
@click.option("-H", "--host", "host", metavar="HOST", help="Daemon socket to connect to")
@click.option("-D", "--debug", is_flag=True, help="Enable debug mode")
@click.option("--tls", is_flag=True, help="Use TLS; implied by --tlsverify")
@click.option("--tlsverify", is_flag=True, help="Use TLS and verify the remote")
@click.option("--tlscacert", metavar="FILE", help="Trust certs signed only by this CA")
@click.option("--tlscert", metavar="FILE", help="Path to TLS certificate file")
@click.option("--tlskey", metavar="FILE", help="Path to TLS key file")
@click.option(
    "-v",
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_version_callback,
    help="Print version information and quit",
)
@click.pass_context
def cli(
    ctx: click.Context,
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


def _command_path(argv: list[str]) -> str:
    """The verb(s) for "See 'hafen X --help'." (global flags skipped)."""
    words: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
            continue
        if arg in ("-H", "--host", "--tlscacert", "--tlscert", "--tlskey"):
            skip = True
            continue
        if arg.startswith("-"):
            if words:
                break
            continue
        words.append(arg)
        if len(words) == 2 or arg not in ("container", "image", "volume", "network"):
            break
    return " ".join(["hafen", *words])


def _usage_error_text(err: click.UsageError, path: str) -> str:
    """docker's (cobra's) wording for a usage error."""
    message = err.format_message()
    if isinstance(err, click.NoSuchOption):
        message = f"unknown flag: {err.option_name}"
    elif isinstance(err, click.MissingParameter) and isinstance(err.param, click.Argument):
        wanted = 2 if path.endswith(" tag") else 1
        noun = "argument" if wanted == 1 else "arguments"
        qualifier = "exactly" if wanted == 2 else "at least"
        message = f"'{path}' requires {qualifier} {wanted} {noun}."
    # run and create report through docker's reportError, with its "docker: " prefix.
    if path.split()[-1] in ("run", "create"):
        message = "hafen: " + message
    return message


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: runs the CLI and exits with docker's status codes."""
    args = list(sys.argv[1:] if argv is None else argv)
    code = 0
    try:
        result = cli.main(args=args, prog_name="hafen", standalone_mode=False)
        # Without standalone mode click returns the code of ctx.exit(code).
        if isinstance(result, int):
            code = result
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.UsageError as exc:
        path = _command_path(args)
        if exc.format_message().startswith("No such command"):
            # docker: "docker: 'x' is not a docker command." and exit status 1.
            name = exc.format_message().split("'")[1]
            parent = path.rsplit(" ", 1)[0]
            sys.stderr.write(f"hafen: '{name}' is not a hafen command.\nSee '{parent} --help'\n")
            sys.exit(1)
        sys.stderr.write(f"{_usage_error_text(exc, path)}\nSee '{path} --help'.\n")
        code = 125
    except click.Abort:
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
