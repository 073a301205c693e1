"""The Dockerfile parser: text → instruction nodes, with the reference's lexical rules.

What it owns, in the order it happens:

- parser directives (``# escape=``, ``# syntax=``, ``# check=``) at the very top, until
  the first comment, empty line or instruction;
- comment lines (first non-blank character ``#``) removed, even in continuations;
- line continuations with the escape character (``\\`` or ``\\```) at the end of a line,
  trailing whitespace allowed; empty lines inside a continuation are skipped;
- heredocs (``<<EOF``, ``<<-EOF``, ``<<"EOF"``) for RUN, COPY and ADD;
- per instruction: leading ``--flags``, then the argument syntax Docker uses for it
  (JSON-or-shell, JSON-or-whitespace list, key=value pairs, name[=value], one string,
  ONBUILD's sub-instruction, HEALTHCHECK's CMD/NONE).

Variable expansion is not done here (``expand.py``; the executor applies it only where
Docker does). Errors name the file and line: ``Dockerfile:3: unknown instruction: RUNN``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field

from hafen.errors import InvalidArgument

INSTRUCTIONS = (
    "add", "arg", "cmd", "copy", "entrypoint", "env", "expose", "from", "healthcheck",
    "label", "maintainer", "onbuild", "run", "shell", "stopsignal", "user", "volume", "workdir",
)  # fmt: skip
_HEREDOC_INSTRUCTIONS = ("run", "copy", "add")
_DIRECTIVE = re.compile(r"^#[ \t]*([a-zA-Z][a-zA-Z0-9]*)[ \t]*=[ \t]*(.+?)[ \t]*$")
_HEREDOC = re.compile(r"<<(-?)([\"']?)([a-zA-Z_][a-zA-Z0-9_]*)\2")


class DockerfileSyntaxError(InvalidArgument):
    """A Dockerfile that cannot be parsed; the message starts with ``file:line``."""


@dataclass
class Heredoc:
    name: str
    content: str  # every line, each ending with a newline
    expand: bool  # an unquoted delimiter: the builder expands variables (COPY/ADD)
    strip_tabs: bool


@dataclass
class Node:
    """One instruction as written: keyword, flags and arguments, and where it was."""

    keyword: str  # lower case
    args: list[str]
    flags: list[str] = field(default_factory=list)  # raw "--name=value" words
    json_form: bool = False  # exec (JSON) form of RUN/CMD/ENTRYPOINT/SHELL, or a JSON list
    original: str = ""  # the instruction's text, continuations joined
    start_line: int = 0
    end_line: int = 0
    heredocs: list[Heredoc] = field(default_factory=list)
    sub: Node | None = None  # ONBUILD's instruction


@dataclass
class Dockerfile:
    nodes: list[Node]
    directives: dict[str, str]
    escape: str = "\\"
    filename: str = "Dockerfile"


def _fail(filename: str, line: int, message: str) -> DockerfileSyntaxError:
    return DockerfileSyntaxError(f"{filename}:{line}: {message}")


def _read_directives(lines: list[str], filename: str) -> tuple[dict[str, str], int]:
    directives: dict[str, str] = {}
    index = 0
    while index < len(lines):
        m = _DIRECTIVE.match(lines[index].strip())
        if not m:
            break
        key, value = m.group(1).lower(), m.group(2)
        if key not in ("syntax", "escape", "check"):
            break  # an unknown directive is a comment, and ends the directives
        if key in directives:
            raise _fail(filename, index + 1, f"only one {key} parser directive can be used")
        directives[key] = value
        index += 1
    return directives, index


def parse(text: str, filename: str = "Dockerfile") -> Dockerfile:
    """Parse a whole Dockerfile (``filename`` only names it in errors)."""
    text = text.removeprefix("\ufeff")
    lines = text.splitlines()
    directives, _ = _read_directives(lines, filename)
    escape = directives.get("escape", "\\")
    if escape not in ("\\", "`"):
        raise _fail(filename, 1, f"invalid escape token '{escape}' does not match ` or \\")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    nodes: list[Node] = []
    index = 0
    directive_zone = True
    while index < len(lines):
        raw = lines[index]
        stripped = raw.strip()
        if directive_zone and _DIRECTIVE.match(stripped):
            m = _DIRECTIVE.match(stripped)
            assert m is not None
            if m.group(1).lower() in directives:
                index += 1
                continue
        directive_zone = False
        if not stripped or stripped.startswith("#"):
            index += 1
            continue
        start = index
        parts: list[str] = []
        line = raw.lstrip()
        while True:
            m = continuation.search(line)
            if not m:
                parts.append(line)
                break
            parts.append(line[: m.start()])
            index += 1
            # comment and empty lines inside a continuation are dropped
            while index < len(lines) and (
                not lines[index].strip() or lines[index].lstrip().startswith("#")
            ):
                index += 1
            if index >= len(lines):
                break
            line = lines[index]
        logical = "".join(parts)
        end = index
        index += 1
        node = _parse_line(logical, filename, start + 1, end + 1, escape)
        heredoc_node = node.sub if node.keyword == "onbuild" and node.sub else node
        if heredoc_node.keyword in _HEREDOC_INSTRUCTIONS and not heredoc_node.json_form:
            index = _read_heredocs(heredoc_node, lines, index, filename)
            node.end_line = max(node.end_line, index)
        nodes.append(node)
    return Dockerfile(nodes=nodes, directives=directives, escape=escape, filename=filename)


def _read_heredocs(node: Node, lines: list[str], index: int, filename: str) -> int:
    text = " ".join(node.args) if not node.json_form else ""
    for m in _HEREDOC.finditer(text):
        strip_tabs, quote, name = m.group(1) == "-", m.group(2), m.group(3)
        body: list[str] = []
        while True:
            if index >= len(lines):
                raise _fail(filename, node.start_line, f"unterminated heredoc {name}")
            line = lines[index]
            index += 1
            check = line.lstrip("\t") if strip_tabs else line
            if check == name:
                break
            body.append((line.lstrip("\t") if strip_tabs else line) + "\n")
        node.heredocs.append(Heredoc(name, "".join(body), expand=not quote, strip_tabs=strip_tabs))
    return index


# ---------------------------------------------------------------------- one instruction


def _split_flags(rest: str) -> tuple[list[str], str]:
    """Leading ``--name[=value]`` words (quotes allowed in values) and what follows."""
    flags: list[str] = []
    pos = 0
    while True:
        while pos < len(rest) and rest[pos] in " \t":
            pos += 1
        if not rest.startswith("--", pos):
            break
        end = pos
        quote = ""
        while end < len(rest):
            ch = rest[end]
            if quote:
                if ch == quote:
                    quote = ""
            elif ch in "\"'":
                quote = ch
            elif ch in " \t":
                break
            end += 1
        word = rest[pos:end]
        pos = end
        if word == "--":
            break
        flags.append(word)
    return flags, rest[pos:].strip(" \t")


def _parse_line(line: str, filename: str, start: int, end: int, escape: str) -> Node:
    m = re.match(r"(\S+)[ \t]*(.*)$", line.strip(), re.S)
    keyword, rest = (m.group(1), m.group(2)) if m else ("", "")
    kw = keyword.lower()
    if kw not in INSTRUCTIONS:
        raise _fail(filename, start, f"unknown instruction: {keyword}")
    flags, rest = _split_flags(rest)
    node = Node(keyword=kw, args=[], flags=flags, original=line.strip(), start_line=start,
                end_line=end)  # fmt: skip
    try:
        _parse_args(node, rest, filename, escape)
    except DockerfileSyntaxError:
        raise
    except InvalidArgument as e:
        raise _fail(filename, start, e.message) from None
    return node


def _parse_args(node: Node, rest: str, filename: str, escape: str) -> None:
    kw = node.keyword
    if kw in ("run", "cmd", "entrypoint", "shell"):
        node.args, node.json_form = _maybe_json(rest)
        if kw == "run" and not rest and not node.heredocs:
            raise InvalidArgument("RUN requires at least one argument")
    elif kw in ("copy", "add", "volume"):
        as_json, is_json = _maybe_json(rest)
        node.args, node.json_form = (as_json, True) if is_json else (rest.split(), False)
        if kw in ("copy", "add") and len(node.args) < 2 and not _HEREDOC.search(rest):
            raise InvalidArgument(f"{kw.upper()} requires at least two arguments")
        if kw == "volume" and not node.args:
            raise InvalidArgument("VOLUME requires at least one argument")
    elif kw in ("env", "label"):
        node.args = _parse_name_values(rest, kw, escape)
    elif kw == "arg":
        words = _split_words(rest, escape)
        if not words:
            raise InvalidArgument("ARG requires at least one argument")
        node.args = words
    elif kw in ("from", "expose"):
        node.args = rest.split()
        if not node.args:
            raise InvalidArgument(f"{kw.upper()} requires at least one argument")
    elif kw == "onbuild":
        if not rest:
            raise InvalidArgument("ONBUILD requires at least one argument")
        sub = _parse_line(rest, filename, node.start_line, node.end_line, escape)
        if sub.keyword in ("onbuild", "from", "maintainer"):
            raise InvalidArgument(
                f"{sub.keyword.upper()} isn't allowed as an ONBUILD trigger"
                if sub.keyword != "onbuild"
                else "Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"
            )
        node.sub = sub
        node.args = [rest]
    elif kw == "healthcheck":
        word, _, cmd = rest.partition(" ")
        typ = word.upper()
        if typ == "NONE":
            if cmd.strip():
                raise InvalidArgument("HEALTHCHECK NONE takes no arguments")
            node.args = ["NONE"]
        elif typ == "CMD":
            args, node.json_form = _maybe_json(cmd.strip())
            if not args or not args[0]:
                raise InvalidArgument("Missing command after HEALTHCHECK CMD")
            node.args = ["CMD", *args]
        else:
            raise InvalidArgument(f"Unknown type {word!r} in HEALTHCHECK (try CMD)")
    else:  # maintainer, stopsignal, user, workdir: one string
        if not rest:
            raise InvalidArgument(f"{kw.upper()} requires exactly one argument")
        node.args = [rest]


def _maybe_json(rest: str) -> tuple[list[str], bool]:
    """A JSON array of strings is the exec form; anything else (even ``[x``) is shell form."""
    if rest.startswith("[") and rest.rstrip().endswith("]"):
        try:
            value = json.loads(rest)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value, True
    return ([rest] if rest else []), False


def _split_words(rest: str, escape: str) -> list[str]:
    """Whitespace-separated words; quotes and escapes keep a word together (and are kept)."""
    words: list[str] = []
    current: list[str] = []
    quote = ""
    i = 0
    in_word = False
    while i < len(rest):
        ch = rest[i]
        if ch == escape and i + 1 < len(rest) and quote != "'":
            current.append(ch + rest[i + 1])
            in_word = True
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = ""
            current.append(ch)
        elif ch in "\"'":
            quote = ch
            current.append(ch)
            in_word = True
        elif ch in " \t":
            if in_word:
                words.append("".join(current))
                current, in_word = [], False
        else:
            current.append(ch)
            in_word = True
        i += 1
    if quote:
        raise InvalidArgument(f"unmatched quote in {rest!r}")
    if in_word:
        words.append("".join(current))
    return words


def _parse_name_values(rest: str, kw: str, escape: str) -> list[str]:
    """``k=v k2="v 2"`` pairs, or the legacy ``KEY value with spaces`` form; as ``k=v`` words."""
    words = _split_words(rest, escape)
    if not words:
        raise InvalidArgument(f"{kw.upper()} requires at least one argument")
    if "=" not in words[0]:
        if kw == "label":
            raise InvalidArgument(
                f"Syntax error - can't find = in {words[0]!r}. Must be of the form: name=value"
            )
        key, _, value = rest.strip().partition(" ")
        value = value.strip(" \t")
        if not value:
            raise InvalidArgument(f"{kw.upper()} must have two arguments")
        return [f"{key}={value}"]
    out: list[str] = []
    for word in words:
        key, sep, _ = word.partition("=")
        if not sep:
            raise InvalidArgument(
                f"Syntax error - can't find = in {word!r}. Must be of the form: name=value"
            )
        if not key:
            raise InvalidArgument(f"{kw.upper()} names can not be blank")
        out.append(word)
    return out
