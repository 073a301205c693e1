"""``--help`` output in docker's layout: usage line, description, commands, flags.

Imported only when help is asked for, so the parse path never pays for it.
"""

from __future__ import annotations

import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hafen.cli.flags import Option

_TYPE_WORDS: dict[object, str] = {int: "int", float: "decimal", str: "string", None: "string"}


def _value_word(opt: Option) -> str:
    """pflag's type name after the flag: ``list``, ``string``, ``int``... (none for bools)."""
    if opt.is_flag:
        return ""
    if opt.metavar:
        return opt.metavar
    if opt.multiple:
        return "list"
    return _TYPE_WORDS.get(opt.type, "string")


def _default_note(opt: Option) -> str:
    if opt.multiple:
        return ""
    value = opt.default
    if value is None or value is False or value == "" or value == 0:
        return ""
    if value is True:
        return " (default true)"
    if isinstance(value, str):
        return f' (default "{value}")'
    return f" (default {value})"


def option_rows(options: Sequence[Option]) -> list[tuple[str, str]]:
    """(spelling, help) for each flag, sorted by long name as cobra lists them."""
    rows = []
    for opt in sorted(options, key=lambda o: (o.longs or o.shorts)[0]):
        short = f"-{opt.shorts[0]}, " if opt.shorts else "    "
        long = f"--{opt.longs[0]}" if opt.longs else ""
        if not long:
            short = short.rstrip(", ")
        word = _value_word(opt)
        spelling = f"{short}{long}" + (f" {word}" if word else "")
        rows.append((spelling, opt.help + _default_note(opt)))
    return rows


def _table(rows: Sequence[tuple[str, str]], indent: str = "  ") -> list[str]:
    width = max((len(left) for left, _right in rows), default=0)
    return [f"{indent}{left.ljust(width)}   {right}".rstrip() for left, right in rows]


def format_help(
    *,
    path: str,
    usage: str,
    description: str,
    options: Sequence[Option],
    commands: Sequence[tuple[str, str]] | None,
) -> str:
    """The whole help text for one command (or group, when ``commands`` is given)."""
    lines = ["", f"Usage:  {path} {usage}".rstrip(), ""]
    # a docstring: its first line is not indented, the rest are
    first, _, rest = description.strip().partition("\n")
    text = (first + "\n" + textwrap.dedent(rest)).strip()
    if text:
        lines += [text, ""]
    if commands:
        lines += ["Commands:", *_table(commands), ""]
    if options:
        lines += ["Options:", *_table(option_rows(options)), ""]
    if commands:
        lines += [f"Run '{path} COMMAND --help' for more information on a command.", ""]
    return "\n".join(lines)
