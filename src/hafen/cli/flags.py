"""The ``hafen`` command line parser: commands, groups, flags and arguments as docker's
cobra/pflag read them, and docker's help and usage errors.

Owns the declarations the verbs use (``@command``, ``@option``, ``@argument``,
``@pass_context``, ``Group``, ``LazyGroup``), the per-invocation ``Context``, the parse,
and the usage errors ``main`` turns into docker's messages and exit codes.

Why not click: importing click and what it pulls in (``inspect``, ``uuid``,
``gettext``...) and building its objects for ``run``'s ~100 flags cost ~15 ms of every
``hafen`` call, and its rules are not pflag's: pflag takes ``--rm=false`` and
``-e=A``, names flags ``--x`` in its errors, and counts arguments in its own words
("requires at least 1 argument"). This module imports nothing beyond the builtins on the
parse path; help is formatted only when asked for.
"""

from __future__ import annotations

import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from typing import Any

# Go's strconv.ParseBool, which pflag uses for bool flags.
_TRUE = frozenset(("1", "t", "T", "TRUE", "true", "True"))
_FALSE = frozenset(("0", "f", "F", "FALSE", "false", "False"))


# ----------------------------------------------------------------------------- errors


class UsageError(Exception):
    """A command line that does not parse; ``ctx`` names the command it was meant for."""

    def __init__(self, message: str, ctx: Context | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.ctx = ctx

    def format_message(self) -> str:
        return self.message


class NoSuchOption(UsageError):
    """A flag the command does not have."""


class NoSuchCommand(UsageError):
    """A word where a group expected one of its commands."""

    def __init__(self, name: str, ctx: Context) -> None:
        super().__init__(f"No such command '{name}'.", ctx)
        self.name = name


class Exit(Exception):
    """End the command with ``exit_code`` (``ctx.exit``, ``--help``, ``--version``)."""

    def __init__(self, exit_code: int = 0) -> None:
        super().__init__(exit_code)
        self.exit_code = exit_code


class Abort(Exception):
    """The user gave up at a prompt (end of input or ^C)."""


# ----------------------------------------------------------------------------- values


class Choice:
    """A string flag limited to ``choices``."""

    def __init__(self, choices: Sequence[str]) -> None:
        self.choices = tuple(choices)

    def __call__(self, value: str) -> str:
        if value not in self.choices:
            raise ValueError(f"must be one of {', '.join(map(repr, self.choices))}")
        return value


def _convert(kind: Callable[[str], Any] | None, value: str, flag: str) -> Any:
    if kind is None or kind is str:
        return value
    try:
        return kind(value)
    except ValueError as exc:
        if kind is int:
            why = f'strconv.ParseInt: parsing "{value}": invalid syntax'
        elif kind is float:
            why = f'strconv.ParseFloat: parsing "{value}": invalid syntax'
        else:
            why = str(exc)
        raise UsageError(f'invalid argument "{value}" for "{flag}" flag: {why}') from None


def _next_value(args: list[str], at: int, missing: str, ctx: Context) -> tuple[str, int]:
    """A flag's value from the next word (pflag takes it whatever it looks like)."""
    if at >= len(args):
        raise UsageError(missing, ctx)
    return args[at], at + 1


def _parse_bool(value: str, flag: str) -> bool:
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise UsageError(
        f'invalid argument "{value}" for "{flag}" flag: '
        f'strconv.ParseBool: parsing "{value}": invalid syntax'
    )


# ----------------------------------------------------------------------------- parameters


class Option:
    """One flag: ``-s``/``--long`` spellings, the parameter it fills, and how."""

    __slots__ = (
        "callback",
        "default",
        "expose_value",
        "help",
        "is_eager",
        "is_flag",
        "longs",
        "metavar",
        "multiple",
        "name",
        "shorts",
        "type",
    )

    def __init__(
        self,
        decls: Sequence[str],
        *,
        is_flag: bool = False,
        multiple: bool = False,
        default: Any = None,
        type: Callable[[str], Any] | None = None,
        metavar: str | None = None,
        help: str = "",
        expose_value: bool = True,
        is_eager: bool = False,
        callback: Callable[[Context, Option, Any], Any] | None = None,
    ) -> None:
        self.longs = [d[2:] for d in decls if d.startswith("--")]
        self.shorts = [d[1:] for d in decls if d.startswith("-") and not d.startswith("--")]
        names = [d for d in decls if not d.startswith("-")]
        if names:
            self.name = names[0]
        elif self.longs:
            self.name = self.longs[0].replace("-", "_")
        else:
            self.name = self.shorts[0]
        self.is_flag = is_flag
        self.multiple = multiple
        self.default = default
        self.type = type
        self.metavar = metavar
        self.help = help
        self.expose_value = expose_value
        self.is_eager = is_eager
        self.callback = callback

    @property
    def flag(self) -> str:
        """How errors name it: the long spelling, as pflag does."""
        return "--" + self.longs[0] if self.longs else "-" + self.shorts[0]

    def empty(self) -> Any:
        """The value when the flag is not given."""
        if self.multiple:
            return tuple(self.default or ())
        if self.is_flag:
            return bool(self.default)
        return self.default


class Argument:
    """One positional parameter; ``nargs=-1`` takes all the rest (at least one if
    ``required``)."""

    __slots__ = ("default", "name", "nargs", "required")

    def __init__(
        self,
        name: str,
        *,
        nargs: int = 1,
        required: bool | None = None,
        default: Any = None,
    ) -> None:
        self.name = name
        self.nargs = nargs
        self.required = (nargs == 1 and default is None) if required is None else required
        self.default = default

    def usage(self) -> str:
        word = self.name.upper()
        if self.nargs == -1:
            word = f"{word}..."
        return word if self.required else f"[{word}]"


Param = Option | Argument


def option(*decls: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a flag of the command below (decorators apply bottom up)."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        _params_of(func).append(Option(decls, **kwargs))
        return func

    return decorate


def argument(name: str, **kwargs: Any) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Declare a positional parameter of the command below."""

    def decorate(func: Callable[..., Any]) -> Callable[..., Any]:
        _params_of(func).append(Argument(name, **kwargs))
        return func

    return decorate


def pass_context(func: Callable[..., Any]) -> Callable[..., Any]:
    """The command's callback takes the ``Context`` as its first argument."""
    func.__hafen_pass_context__ = True  # type: ignore[attr-defined]
    return func


def _params_of(func: Callable[..., Any]) -> list[Param]:
    params: list[Param] | None = getattr(func, "__hafen_params__", None)
    if params is None:
        params = []
        func.__hafen_params__ = params  # type: ignore[attr-defined]
    return params


# ----------------------------------------------------------------------------- context

_CURRENT: list[Context] = []


class Context:
    """One command's invocation: its parent, the parsed ``params``, and ``obj`` (set by
    the root's callback for the verbs below it)."""

    def __init__(
        self,
        command: Command,
        parent: Context | None = None,
        info_name: str | None = None,
        obj: Any = None,
    ) -> None:
        self.command = command
        self.parent = parent
        self.info_name = info_name or command.name
        self.obj: Any = obj if obj is not None or parent is None else parent.obj
        self.params: dict[str, Any] = {}

    @property
    def command_path(self) -> str:
        if self.parent is None:
            return self.info_name
        return f"{self.parent.command_path} {self.info_name}"

    def find_root(self) -> Context:
        ctx = self
        while ctx.parent is not None:
            ctx = ctx.parent
        return ctx

    def exit(self, code: int = 0) -> None:
        raise Exit(code)


def get_current_context() -> Context:
    """The context of the command now running."""
    if not _CURRENT:
        raise RuntimeError("no hafen command is running")
    return _CURRENT[-1]


# ----------------------------------------------------------------------------- commands


class Command:
    """A verb: its flags and arguments, the callback they are passed to, and its help."""

    def __init__(
        self,
        name: str,
        callback: Callable[..., Any] | None,
        params: Iterable[Param] = (),
        *,
        help: str | None = None,
        interspersed: bool = True,
    ) -> None:
        self.name = name
        self.callback = callback
        self.params = list(params)
        self.help = help or ""
        # False: flags end at the first argument (run's IMAGE; the rest is the command).
        self.interspersed = interspersed
        self._longs: dict[str, Option] = {}
        self._shorts: dict[str, Option] = {}
        for param in self.params:
            if isinstance(param, Option):
                for long in param.longs:
                    self._longs[long] = param
                for short in param.shorts:
                    self._shorts[short] = param
        self._arguments = [p for p in self.params if isinstance(p, Argument)]

    # -- running

    def main(self, args: Sequence[str], prog_name: str, obj: Any = None) -> Any:
        """Parse ``args`` and run; usage errors, ``Exit`` and ``Abort`` propagate."""
        ctx = Context(self, info_name=prog_name, obj=obj)
        return self.invoke(ctx, list(args))

    def invoke(self, ctx: Context, args: list[str]) -> Any:
        rest = self.parse_args(ctx, args)
        self._bind_arguments(ctx, rest)
        return self._call(ctx)

    def _call(self, ctx: Context) -> Any:
        if self.callback is None:
            return None
        _CURRENT.append(ctx)
        try:
            if getattr(self.callback, "__hafen_pass_context__", False):
                return self.callback(ctx, **ctx.params)
            return self.callback(**ctx.params)
        finally:
            _CURRENT.pop()

    # -- parsing

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        """Fill ``ctx.params`` from the flags in ``args``; returns the positionals."""
        given: dict[str, Any] = {}
        positionals: list[str] = []
        stop_at_first = not self.interspersed
        i, count = 0, len(args)
        while i < count:
            arg = args[i]
            i += 1
            if arg == "--":
                positionals.extend(args[i:])
                break
            if len(arg) < 2 or arg[0] != "-":
                positionals.append(arg)
                if stop_at_first:
                    positionals.extend(args[i:])
                    break
                continue
            if arg[1] == "-":
                name, eq, value = arg[2:].partition("=")
                opt = self._longs.get(name)
                if opt is None:
                    if name == "help":
                        self._show_help(ctx)
                    raise NoSuchOption(f"unknown flag: --{name}", ctx)
                if opt.is_flag:
                    self._store(given, opt, _parse_bool(value, opt.flag) if eq else True)
                    continue
                if not eq:
                    value, i = _next_value(args, i, f"flag needs an argument: --{name}", ctx)
                self._store(given, opt, _convert(opt.type, value, opt.flag))
                continue
            # a cluster of shorthands: -it, -p8080:80, -e=A
            j = 1
            while j < len(arg):
                letter = arg[j]
                opt = self._shorts.get(letter)
                if opt is None:
                    if letter == "h" and "help" not in self._longs:
                        self._show_help(ctx)
                    raise NoSuchOption(f"unknown shorthand flag: '{letter}' in {arg}", ctx)
                rest = arg[j + 1 :]
                if opt.is_flag:
                    if rest.startswith("="):
                        self._store(given, opt, _parse_bool(rest[1:], opt.flag))
                        break
                    self._store(given, opt, True)
                    j += 1
                    continue
                if rest.startswith("="):
                    rest = rest[1:]
                if not rest:
                    missing = f"flag needs an argument: '{letter}' in {arg}"
                    rest, i = _next_value(args, i, missing, ctx)
                self._store(given, opt, _convert(opt.type, rest, opt.flag))
                break
        self._finish_options(ctx, given)
        return positionals

    @staticmethod
    def _store(given: dict[str, Any], opt: Option, value: Any) -> None:
        if opt.multiple:
            given.setdefault(opt.name, []).append(value)
        else:
            given[opt.name] = value

    def _finish_options(self, ctx: Context, given: dict[str, Any]) -> None:
        options = [p for p in self.params if isinstance(p, Option)]
        # eager ones (--version) first, as click ran them
        options.sort(key=lambda o: not o.is_eager)
        for opt in options:
            if opt.name in given:
                value = given[opt.name]
                if opt.multiple:
                    value = tuple(value)
            else:
                value = opt.empty()
            if opt.callback is not None:
                value = opt.callback(ctx, opt, value)
            if opt.expose_value:
                ctx.params[opt.name] = value

    def _bind_arguments(self, ctx: Context, positionals: list[str]) -> None:
        arguments = self._arguments
        fixed = sum(1 for a in arguments if a.nargs != -1)
        variadic = any(a.nargs == -1 for a in arguments)
        least = sum(1 for a in arguments if a.required)
        if len(positionals) < least or (not variadic and len(positionals) > len(arguments)):
            raise UsageError(self._count_message(ctx, least, None if variadic else fixed), ctx)
        spare = len(positionals) - least
        at = 0
        for index, arg in enumerate(arguments):
            if arg.nargs == -1:
                after = sum(1 for a in arguments[index + 1 :] if a.nargs != -1)
                take = len(positionals) - at - after
                ctx.params[arg.name] = tuple(positionals[at : at + take])
                at += take
            elif arg.required:
                ctx.params[arg.name] = positionals[at]
                at += 1
            elif spare > 0 and at < len(positionals):
                ctx.params[arg.name] = positionals[at]
                at += 1
                spare -= 1
            else:
                ctx.params[arg.name] = arg.default

    @staticmethod
    def _count_message(ctx: Context, least: int, most: int | None) -> str:
        """cobra's argument-count errors (docker's cli/required.go)."""
        path = f"'{ctx.command_path}'"

        def noun(n: int) -> str:
            return "argument" if n == 1 else "arguments"

        if most == 0:
            return f"{path} accepts no arguments."
        if most is None:
            return f"{path} requires at least {least} {noun(least)}."
        if most == least:
            return f"{path} requires exactly {least} {noun(least)}."
        return f"{path} requires at least {least} and at most {most} {noun(most)}."

    # -- help

    def _show_help(self, ctx: Context) -> None:
        sys.stdout.write(self.get_help(ctx))
        sys.stdout.flush()
        raise Exit(0)

    def usage_words(self) -> str:
        words = ["[OPTIONS]"] if any(isinstance(p, Option) for p in self.params) else []
        return " ".join([*words, *self._usage_tail()])

    def _usage_tail(self) -> list[str]:
        return [a.usage() for a in self._arguments]

    def command_rows(self, ctx: Context) -> list[tuple[str, str]] | None:
        """(name, one line of help) for each subcommand; None: this is no group."""
        del ctx
        return None

    def get_help(self, ctx: Context) -> str:
        """docker's help layout: usage, description, commands, then the flags by name."""
        from hafen.cli.helptext import format_help

        return format_help(
            path=ctx.command_path,
            usage=self.usage_words(),
            description=self.help,
            options=[p for p in self.params if isinstance(p, Option)],
            commands=self.command_rows(ctx),
        )

    def short_help(self) -> str:
        return self.help.strip().split("\n", 1)[0].rstrip(".")


class Group(Command):
    """A command whose first argument names one of its ``commands``."""

    def __init__(
        self,
        name: str,
        callback: Callable[..., Any] | None,
        params: Iterable[Param] = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(name, callback, params, interspersed=False, **kwargs)
        self.commands: dict[str, Command] = {}

    def add_command(self, command: Command, name: str | None = None) -> None:
        self.commands[name or command.name] = command

    def command(
        self, name: str | None = None, **kwargs: Any
    ) -> Callable[[Callable[..., Any]], Command]:
        """Declare a command and add it to this group."""

        def decorate(func: Callable[..., Any]) -> Command:
            cmd = command(name, **kwargs)(func)
            self.add_command(cmd)
            return cmd

        return decorate

    def get_command(self, ctx: Context, name: str) -> Command | None:
        del ctx
        return self.commands.get(name)

    def list_commands(self, ctx: Context) -> list[str]:
        del ctx
        return sorted(self.commands)

    def command_rows(self, ctx: Context) -> list[tuple[str, str]] | None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.get_command(ctx, name)
            if cmd is not None:
                rows.append((name, cmd.short_help()))
        return rows

    def invoke(self, ctx: Context, args: list[str]) -> Any:
        rest = self.parse_args(ctx, args)
        if not rest:
            self._show_help(ctx)
        name, sub_args = rest[0], rest[1:]
        sub = self.get_command(ctx, name)
        if sub is None:
            raise NoSuchCommand(name, ctx)
        self._call(ctx)
        sub_ctx = Context(sub, parent=ctx, info_name=name)
        return sub.invoke(sub_ctx, sub_args)

    def _usage_tail(self) -> list[str]:
        return ["COMMAND"]


class LazyGroup(Group):
    """A group whose commands in ``lazy`` (name -> module, attribute, one-line help) are
    imported on first use. Help lists them in the table's order, then the others;
    ``sort_help`` lists them all by name instead."""

    def __init__(
        self,
        name: str,
        callback: Callable[..., Any] | None,
        params: Iterable[Param] = (),
        *,
        lazy: dict[str, tuple[str, str, str]],
        sort_help: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(name, callback, params, **kwargs)
        self.lazy = lazy
        self.sort_help = sort_help

    def list_commands(self, ctx: Context) -> list[str]:
        return list(self.lazy) + [n for n in super().list_commands(ctx) if n not in self.lazy]

    def get_command(self, ctx: Context, name: str) -> Command | None:
        if name in self.lazy:
            import importlib

            module, attr, _help = self.lazy[name]
            found = getattr(importlib.import_module(module), attr)
            if not isinstance(found, Command):
                raise TypeError(f"{module}.{attr} is not a hafen command")
            return found
        return super().get_command(ctx, name)

    def command_rows(self, ctx: Context) -> list[tuple[str, str]] | None:
        # from the table: listing the verbs imports none of them
        rows = [(name, self.lazy[name][2]) for name in self.lazy]
        rows += [
            (name, cmd.short_help()) for name, cmd in self.commands.items() if name not in self.lazy
        ]
        if self.sort_help:
            rows.sort()
        return rows


def _name_of(func: Callable[..., Any]) -> str:
    """``exec_`` -> exec, ``image_group`` -> image, ``image_inspect`` -> image-inspect."""
    name = func.__name__.lower().rstrip("_").removesuffix("_group")
    return name.replace("_", "-")


def command(
    name: str | None = None, *, cls: type[Command] = Command, **kwargs: Any
) -> Callable[[Callable[..., Any]], Command]:
    """Make the function below a command; its docstring is its help."""

    def decorate(func: Callable[..., Any]) -> Command:
        params = list(reversed(getattr(func, "__hafen_params__", [])))
        cmd_name = name or _name_of(func)
        return cls(cmd_name, func, params, help=func.__doc__, **kwargs)

    return decorate


def group(
    name: str | None = None, *, cls: type[Group] = Group, **kwargs: Any
) -> Callable[[Callable[..., Any]], Group]:
    """Make the function below a group of commands."""

    def decorate(func: Callable[..., Any]) -> Group:
        made = command(name, cls=cls, **kwargs)(func)
        assert isinstance(made, Group)
        return made

    return decorate
