"""The CLI's own parser: pflag's flag syntax, cobra's argument counts and wording, groups
and lazy verbs, help, and what it leaves off the import path."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import pytest

from hafen.cli import flags


def _run_like() -> flags.Command:
    """A command shaped like ``run``: flags end at the image, the rest is the command."""

    @flags.command("run", interspersed=False)
    @flags.option("--name", help="Assign a name")
    @flags.option("--rm", "auto_remove", is_flag=True, help="Remove when done")
    @flags.option("-i", "--interactive", is_flag=True, help="Keep STDIN open")
    @flags.option("-t", "--tty", is_flag=True, help="Allocate a pseudo-TTY")
    @flags.option("-e", "--env", multiple=True, help="Set environment variables")
    @flags.option("-p", "--publish", multiple=True, help="Publish ports")
    @flags.option("--cpus", type=float, help="Number of CPUs")
    @flags.option("--pids-limit", type=int, help="Pids limit")
    @flags.option("--sig-proxy", is_flag=True, default=True, help="Proxy signals")
    @flags.option("--pull", default="missing", help="Pull policy")
    @flags.argument("image")
    @flags.argument("command", nargs=-1)
    def run(**params: Any) -> dict[str, Any]:
        """Create and run a new container from an image."""
        return params

    return run


def parse(command: flags.Command, *args: str) -> dict[str, Any]:
    result: dict[str, Any] = command.main(list(args), prog_name="hafen")
    return result


def usage_error(command: flags.Command, *args: str) -> str:
    with pytest.raises(flags.UsageError) as caught:
        command.main(list(args), prog_name="hafen")
    return caught.value.format_message()


def test_unset_flags_take_their_defaults() -> None:
    params = parse(_run_like(), "busybox")
    assert params == {
        "name": None,
        "auto_remove": False,
        "interactive": False,
        "tty": False,
        "env": (),
        "publish": (),
        "cpus": None,
        "pids_limit": None,
        "sig_proxy": True,
        "pull": "missing",
        "image": "busybox",
        "command": (),
    }


def test_long_flags_take_their_value_after_a_space_or_an_equals_sign() -> None:
    params = parse(_run_like(), "--name", "web", "--pull=never", "busybox")
    assert (params["name"], params["pull"]) == ("web", "never")
    assert parse(_run_like(), "--name=", "busybox")["name"] == ""


def test_bool_flags_take_go_bools_after_an_equals_sign_as_pflag_does() -> None:
    params = parse(_run_like(), "--rm=true", "--sig-proxy=false", "-t=0", "busybox")
    assert (params["auto_remove"], params["sig_proxy"], params["tty"]) == (True, False, False)
    message = usage_error(_run_like(), "--rm=yes", "busybox")
    assert message == (
        'invalid argument "yes" for "--rm" flag: strconv.ParseBool: parsing "yes": invalid syntax'
    )


def test_shorthands_cluster_and_take_attached_values() -> None:
    params = parse(_run_like(), "-it", "-p8080:80", "-e=A=1", "-eB=2", "busybox")
    assert params["interactive"] and params["tty"]
    assert params["publish"] == ("8080:80",)
    assert params["env"] == ("A=1", "B=2")
    params = parse(_run_like(), "-ite", "C=3", "busybox")
    assert params["tty"] and params["env"] == ("C=3",)


def test_repeated_flags_keep_every_value_in_order_and_the_last_single_value_wins() -> None:
    params = parse(_run_like(), "-e", "A=1", "--env", "B=2", "--name", "a", "--name", "b", "x")
    assert params["env"] == ("A=1", "B=2")
    assert params["name"] == "b"


def test_flags_end_at_the_image_and_the_rest_is_the_command() -> None:
    params = parse(_run_like(), "--rm", "busybox", "sh", "-c", "--rm", "--name=x")
    assert params["image"] == "busybox"
    assert params["command"] == ("sh", "-c", "--rm", "--name=x")
    assert params["auto_remove"] and params["name"] is None


def test_a_double_dash_ends_the_flags() -> None:
    params = parse(_run_like(), "--", "-weird-image", "true")
    assert (params["image"], params["command"]) == ("-weird-image", ("true",))


def test_a_lone_dash_is_an_argument() -> None:
    assert parse(_run_like(), "-", "x")["image"] == "-"


def test_typed_values_are_converted_or_refused_in_go_s_words() -> None:
    params = parse(_run_like(), "--cpus", "0.5", "--pids-limit=-1", "busybox")
    assert (params["cpus"], params["pids_limit"]) == (0.5, -1)
    assert usage_error(_run_like(), "--pids-limit", "lots", "busybox") == (
        'invalid argument "lots" for "--pids-limit" flag: '
        'strconv.ParseInt: parsing "lots": invalid syntax'
    )
    assert "ParseFloat" in usage_error(_run_like(), "--cpus=half", "busybox")


def test_unknown_and_incomplete_flags_are_named_as_pflag_names_them() -> None:
    assert usage_error(_run_like(), "--bogus", "busybox") == "unknown flag: --bogus"
    assert usage_error(_run_like(), "-iz", "busybox") == "unknown shorthand flag: 'z' in -iz"
    assert usage_error(_run_like(), "--name") == "flag needs an argument: --name"
    assert usage_error(_run_like(), "-e") == "flag needs an argument: 'e' in -e"


def _counted(*arguments: flags.Argument) -> flags.Command:
    return flags.Command("tag", lambda **p: p, list(arguments))


@pytest.mark.parametrize(
    ("arguments", "given", "message"),
    [
        ((), ["x"], "'hafen' accepts no arguments."),
        (
            (flags.Argument("a"), flags.Argument("b")),
            ["x"],
            "'hafen' requires exactly 2 arguments.",
        ),
        ((flags.Argument("a"),), ["x", "y"], "'hafen' requires exactly 1 argument."),
        (
            (flags.Argument("names", nargs=-1, required=True),),
            [],
            "'hafen' requires at least 1 argument.",
        ),
        (
            (flags.Argument("a"), flags.Argument("b", required=False, default="")),
            ["x", "y", "z"],
            "'hafen' requires at least 1 and at most 2 arguments.",
        ),
    ],
)
def test_argument_counts_are_refused_in_cobra_s_words(
    arguments: tuple[flags.Argument, ...], given: list[str], message: str
) -> None:
    assert usage_error(_counted(*arguments), *given) == message


def test_optional_and_variadic_arguments_fill_in_order() -> None:
    command = _counted(
        flags.Argument("container"), flags.Argument("repository", required=False, default="")
    )
    assert parse(command, "c") == {"container": "c", "repository": ""}
    assert parse(command, "c", "r") == {"container": "c", "repository": "r"}
    command = _counted(flags.Argument("sources", nargs=-1), flags.Argument("dest"))
    assert parse(command, "a", "b", "c") == {"sources": ("a", "b"), "dest": "c"}


def test_choices_are_enforced() -> None:
    @flags.command()
    @flags.option("--progress", default="auto", type=flags.Choice(["auto", "plain"]))
    def build(progress: str) -> str:
        return progress

    assert build.main(["--progress=plain"], prog_name="hafen") == "plain"
    with pytest.raises(flags.UsageError, match=r"invalid argument \"fancy\" for \"--progress\""):
        build.main(["--progress", "fancy"], prog_name="hafen")


def test_help_prints_docker_s_layout_and_exits_zero(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(flags.Exit) as caught:
        _run_like().main(["--name", "x", "--help"], prog_name="hafen run")
    assert caught.value.exit_code == 0
    out = capsys.readouterr().out
    assert "Usage:  hafen run [OPTIONS] IMAGE [COMMAND...]" in out
    assert "Create and run a new container from an image." in out
    assert "  -e, --env list" in out
    assert "      --pids-limit int" in out
    assert "      --pull string" in out and '(default "missing")' in out
    assert "--sig-proxy" in out and "(default true)" in out
    # sorted by long name, as cobra lists them
    assert out.index("--cpus") < out.index("--env") < out.index("--tty")


def _tree(calls: list[str]) -> flags.Group:
    @flags.group("hafen")
    @flags.option("-H", "--host")
    @flags.pass_context
    def root(ctx: flags.Context, host: str | None) -> None:
        ctx.obj = {"host": host}
        calls.append("root")

    @root.command("ps")
    @flags.option("-a", "--all", "all_", is_flag=True)
    @flags.pass_context
    def ps(ctx: flags.Context, all_: bool) -> None:
        assert flags.get_current_context() is ctx
        calls.append(f"ps all={all_} host={ctx.find_root().obj['host']} path={ctx.command_path}")

    return root


def test_groups_run_their_own_flags_then_the_named_command() -> None:
    calls: list[str] = []
    _tree(calls).main(["-H", "unix:///x.sock", "ps", "-a"], prog_name="hafen")
    assert calls == ["root", "ps all=True host=unix:///x.sock path=hafen ps"]


def test_an_unknown_command_is_named_with_its_group() -> None:
    with pytest.raises(flags.NoSuchCommand) as caught:
        _tree([]).main(["pss"], prog_name="hafen")
    assert caught.value.name == "pss"
    assert caught.value.ctx is not None and caught.value.ctx.command_path == "hafen"


def test_a_group_without_a_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(flags.Exit):
        _tree([]).main([], prog_name="hafen")
    out = capsys.readouterr().out
    assert "Usage:  hafen [OPTIONS] COMMAND" in out and "  ps" in out


def test_usage_errors_carry_the_path_of_the_command_they_belong_to() -> None:
    with pytest.raises(flags.UsageError) as caught:
        _tree([]).main(["ps", "--bogus"], prog_name="hafen")
    assert caught.value.ctx is not None and caught.value.ctx.command_path == "hafen ps"


def test_run_path_imports_neither_click_nor_typing() -> None:
    # importing them cost ~15 ms (click) and ~3 ms (typing) of every `hafen run`
    code = (
        "import sys\n"
        "from hafen.cli.main import cli\n"
        "ctx = __import__('hafen.cli.flags', fromlist=['x']).Context(cli, info_name='hafen')\n"
        "run = cli.get_command(ctx, 'run')\n"
        "sub = type(ctx)(run, parent=ctx, info_name='run')\n"
        "run.parse_args(sub, ['--rm', '-it', '-e', 'A=1', 'busybox', 'true'])\n"
        "import hafen.cli.runopts, hafen.cli._stdio, hafen.client\n"
        "print(sorted(m for m in ('click', 'typing', 'dataclasses', 'datetime')"
        " if m in sys.modules))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout
    assert out.decode().splitlines()[-1] == "[]"


def test_every_verb_s_callback_takes_exactly_its_flags_and_arguments() -> None:
    # a misnamed flag would only fail when a user passes it
    import inspect

    from hafen.cli.main import cli

    seen: set[int] = set()
    problems: list[str] = []

    def walk(cmd: flags.Command, path: str) -> None:
        if id(cmd) in seen:
            return
        seen.add(id(cmd))
        ctx = flags.Context(cmd, info_name=path)
        if isinstance(cmd, flags.Group):
            for name in cmd.list_commands(ctx):
                sub = cmd.get_command(ctx, name)
                assert sub is not None, f"{path} {name}"
                walk(sub, f"{path} {name}")
        if cmd.callback is None:
            return
        signature = inspect.signature(cmd.callback)
        accepted = list(signature.parameters.values())
        if getattr(cmd.callback, "__hafen_pass_context__", False):
            accepted = accepted[1:]
        if any(p.kind is p.VAR_KEYWORD for p in accepted):
            return
        given = [
            p.name for p in cmd.params if not (isinstance(p, flags.Option) and not p.expose_value)
        ]
        if sorted(given) != sorted(p.name for p in accepted):
            problems.append(f"{path}: {sorted(given)} vs {sorted(p.name for p in accepted)}")

    walk(cli, "hafen")
    assert len(seen) > 60
    assert problems == []
