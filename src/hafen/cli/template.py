"""A real subset of Go's ``text/template``, with docker's template functions.

This module owns ``--format`` for every command: parsing a template into a small
tree, executing it against parsed JSON (dicts/lists) or row objects, and printing
values the way Go's ``fmt`` prints them (``true``, ``<nil>``, ``map[a:1 b:2]``,
``[a b]``, integers without ``.0``).

Supported: text and ``{{ }}`` actions with ``{{-``/``-}}`` trim markers, comments,
fields (``.A.B``), ``.``, ``$``, variables (``$x := ...``, ``$x = ...``,
``{{range $k, $v := ...}}``), literals (strings, raw strings, numbers, true, false,
nil), parenthesised pipelines followed by fields (``(index .X 0).Y``), pipes, method
calls on row objects with arguments (``{{.Label "k"}}``), ``if``/``else if``/``else``,
``range`` (with ``else``), ``with`` (with ``else``) and ``end``.

Functions: Go's builtins (and, or, not, eq, ne, lt, le, gt, ge, len, index, slice,
print, printf, println) and docker's (json, join, split, upper, lower, title, pad,
truncate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from hafen.cli.template_funcs import (
    FUNCS,
    MISSING,
    TemplateError,
    go_json,
    go_str,
    sort_key,
    truth,
)

# ----------------------------------------------------------------------------- lexing


@dataclass
class _Tok:
    kind: str  # str, num, bool, nil, field, var, ident, pipe, lparen, rparen, decl, assign, comma
    value: Any
    fields: tuple[str, ...] = ()


_TOKEN_RE = re.compile(
    r"""
    (?P<ws>\s+)
  | (?P<str>"(?:[^"\\\n]|\\.)*")
  | (?P<raw>`[^`]*`)
  | (?P<char>'(?:[^'\\\n]|\\.)+')
  | (?P<decl>:=)
  | (?P<assign>=)
  | (?P<pipe>\|)
  | (?P<lparen>\()
  | (?P<rparen>\))
  | (?P<comma>,)
  | (?P<num>[-+]?(?:0[xX][0-9a-fA-F_]+|(?:\d[\d_]*)?\.?\d+(?:[eE][-+]?\d+)?))
  | (?P<var>\$[A-Za-z0-9_]*(?:\.[A-Za-z0-9_]+)*)
  | (?P<field>(?:\.[A-Za-z0-9_]+)+|\.)
  | (?P<ident>[A-Za-z_][A-Za-z0-9_]*)
    """,
    re.VERBOSE,
)


def _unquote(text: str) -> str:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        # Go escapes JSON does not know (\a, \v, \x41, \'), handled by Python's codec.
        value = text[1:-1].encode("latin-1", "backslashreplace").decode("unicode_escape")
    return str(value)


def _lex_action(text: str) -> list[_Tok]:
    tokens: list[_Tok] = []
    pos = 0
    after_term = False  # a field right after ')' chains onto it
    while pos < len(text):
        match = _TOKEN_RE.match(text, pos)
        if not match:
            raise TemplateError(f"template: unexpected {text[pos : pos + 10]!r} in command")
        kind = match.lastgroup or ""
        raw = match.group()
        pos = match.end()
        if kind == "ws":
            after_term = False
            continue
        if kind == "field" and after_term and raw != ".":
            tokens[-1].fields = tokens[-1].fields + tuple(raw[1:].split("."))
            continue
        if kind == "str":
            tokens.append(_Tok("str", _unquote(raw)))
        elif kind == "raw":
            tokens.append(_Tok("str", raw[1:-1]))
        elif kind == "char":
            tokens.append(_Tok("num", ord(_unquote('"' + raw[1:-1] + '"'))))
        elif kind == "num":
            clean = raw.replace("_", "")
            number: int | float
            try:
                number = int(clean, 0)
            except ValueError:
                number = float(clean)
            tokens.append(_Tok("num", number))
        elif kind == "var":
            name, *rest = raw.split(".")
            tokens.append(_Tok("var", name, tuple(rest)))
        elif kind == "field":
            tokens.append(_Tok("field", None, tuple(raw[1:].split(".")) if raw != "." else ()))
        elif kind == "ident":
            if raw in ("true", "false"):
                tokens.append(_Tok("bool", raw == "true"))
            elif raw == "nil":
                tokens.append(_Tok("nil", None))
            else:
                tokens.append(_Tok("ident", raw))
        else:
            tokens.append(_Tok(kind, raw))
        after_term = kind == "rparen"
    return tokens


# ----------------------------------------------------------------------------- tree


@dataclass
class _Command:
    args: list[Any]  # _Tok or _Pipeline (parenthesised), with trailing fields on _Pipeline


@dataclass
class _Pipeline:
    decl: list[str]
    assign: bool
    commands: list[_Command]
    fields: tuple[str, ...] = ()


@dataclass
class _Text:
    text: str


@dataclass
class _Action:
    pipe: _Pipeline


@dataclass
class _Block:
    kind: str  # if, range, with
    pipe: _Pipeline
    body: list[Any] = field(default_factory=list)
    else_body: list[Any] = field(default_factory=list)


class _Parser:
    def __init__(self, tokens: list[_Tok]) -> None:
        self.tokens = tokens
        self.pos = 0

    def peek(self) -> _Tok | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def pipeline(self, stop: str | None = None) -> _Pipeline:
        decl: list[str] = []
        assign = False
        # Look ahead for "$x :=", "$x =", or "$k, $v :=".
        save = self.pos
        names: list[str] = []
        while (tok := self.peek()) is not None and tok.kind == "var" and not tok.fields:
            names.append(tok.value)
            self.pos += 1
            nxt = self.peek()
            if nxt is not None and nxt.kind == "comma":
                self.pos += 1
                continue
            if nxt is not None and nxt.kind in ("decl", "assign"):
                self.pos += 1
                decl = names
                assign = nxt.kind == "assign"
            break
        if not decl:
            self.pos = save
        commands: list[_Command] = []
        current: list[Any] = []
        while (tok := self.peek()) is not None:
            if tok.kind == "rparen":
                if stop == "rparen":
                    break
                raise TemplateError("template: unexpected right paren")
            self.pos += 1
            if tok.kind == "pipe":
                if not current:
                    raise TemplateError("template: missing command before '|'")
                commands.append(_Command(current))
                current = []
            elif tok.kind == "lparen":
                inner = self.pipeline(stop="rparen")
                close = self.peek()
                if close is None or close.kind != "rparen":
                    raise TemplateError("template: unclosed left paren")
                self.pos += 1
                inner.fields = close.fields
                current.append(inner)
            elif tok.kind in ("decl", "assign", "comma"):
                raise TemplateError(f"template: unexpected {tok.value!r} in command")
            else:
                current.append(tok)
        if current:
            commands.append(_Command(current))
        if not commands:
            raise TemplateError("template: missing value for command")
        return _Pipeline(decl, assign, commands)


def _split_actions(source: str) -> Iterator[tuple[str, str]]:
    """Yield ("text", s) and ("action", s) pieces, applying trim markers."""
    pos = 0
    pending_trim = False
    while True:
        start = source.find("{{", pos)
        if start < 0:
            text = source[pos:]
            yield "text", text.lstrip() if pending_trim else text
            return
        text = source[pos:start]
        if pending_trim:
            text = text.lstrip()
        inner_start = start + 2
        if source.startswith("-", inner_start) and source[inner_start + 1 : inner_start + 2] in (
            " ",
            "\t",
            "\n",
            "\r",
        ):
            text = text.rstrip()
            inner_start += 2
        yield "text", text
        end = _find_close(source, inner_start)
        inner = source[inner_start:end]
        pending_trim = False
        if len(inner) >= 2 and inner[-1] == "-" and inner[-2] in " \t\n\r":
            inner = inner[:-2]
            pending_trim = True
        yield "action", inner
        pos = end + 2


def _find_close(source: str, pos: int) -> int:
    quote = ""
    i = pos
    while i < len(source):
        ch = source[i]
        if quote:
            if ch == "\\" and quote == '"':
                i += 2
                continue
            if ch == quote:
                quote = ""
        elif ch in "\"`'":
            quote = ch
        elif source.startswith("}}", i):
            return i
        i += 1
    raise TemplateError("template: unclosed action")


def parse(source: str) -> list[Any]:
    """Parse a template into its node list; raises TemplateError on bad syntax."""
    root: list[Any] = []
    # Open blocks: (block, the list to return to at {{end}}, whether it is an "else if"
    # block whose {{end}} also closes the block it hangs from).
    stack: list[tuple[_Block, list[Any], bool]] = []
    current = root
    for kind, piece in _split_actions(source):
        if kind == "text":
            if piece:
                current.append(_Text(piece))
            continue
        stripped = piece.strip()
        if stripped.startswith("/*"):
            if not stripped.endswith("*/"):
                raise TemplateError("template: unclosed comment")
            continue
        tokens = _lex_action(stripped)
        if not tokens:
            raise TemplateError("template: missing value for command")
        head = tokens[0]
        word = head.value if head.kind == "ident" else None
        if word in ("if", "range", "with"):
            block = _Block(word, _Parser(tokens[1:]).pipeline())
            current.append(block)
            stack.append((block, current, False))
            current = block.body
        elif word == "else":
            if not stack:
                raise TemplateError("template: unexpected {{else}}")
            block = stack[-1][0]
            if current is block.else_body:
                raise TemplateError("template: expected end; found {{else}}")
            current = block.else_body
            rest = tokens[1:]
            if rest:
                sub = rest[0].value if rest[0].kind == "ident" else None
                if sub not in ("if", "with"):
                    raise TemplateError("template: unexpected token after else")
                nested = _Block(sub, _Parser(rest[1:]).pipeline())
                current.append(nested)
                stack.append((nested, current, True))
                current = nested.body
        elif word == "end":
            if not stack:
                raise TemplateError("template: unexpected {{end}}")
            if len(tokens) != 1:
                raise TemplateError("template: unexpected token after end")
            _block, parent, chained = stack.pop()
            while chained:
                _block, parent, chained = stack.pop()
            current = parent
        elif word in ("define", "template", "block"):
            raise TemplateError(f"template: {{{{{word}}}}} is not supported")
        else:
            current.append(_Action(_Parser(tokens).pipeline()))
    if stack:
        raise TemplateError(f"template: unexpected EOF (unclosed {{{{{stack[-1][0].kind}}}}})")
    return root


# ----------------------------------------------------------------------------- execution


def _field(value: Any, name: str, args: Sequence[Any] = ()) -> Any:
    if value is MISSING or value is None:
        return MISSING
    if isinstance(value, Mapping):
        return value.get(name, MISSING)
    attr = getattr(value, name, MISSING)
    if attr is MISSING or name.startswith("_"):
        raise TemplateError(f"template: can't evaluate field {name} in type {type(value).__name__}")
    if callable(attr):
        return attr(*args)
    return attr


class _Exec:
    def __init__(self, root: Any) -> None:
        self.scopes: list[dict[str, Any]] = [{"$": root}]
        self.out: list[str] = []

    def lookup(self, name: str) -> Any:
        for scope in reversed(self.scopes):
            if name in scope:
                return scope[name]
        raise TemplateError(f"template: undefined variable: {name}")

    def setvar(self, name: str, value: Any) -> None:
        for scope in reversed(self.scopes):
            if name in scope:
                scope[name] = value
                return
        raise TemplateError(f"template: undefined variable: {name}")

    def run(self, nodes: list[Any], dot: Any) -> None:
        for node in nodes:
            if isinstance(node, _Text):
                self.out.append(node.text)
            elif isinstance(node, _Action):
                value = self.pipe(node.pipe, dot)
                if not node.pipe.decl:
                    self.out.append(go_str(value))
            else:
                self.block(node, dot)

    def block(self, node: _Block, dot: Any) -> None:
        self.scopes.append({})
        try:
            if node.kind == "range":
                self.range(node, dot)
                return
            value = self.pipe(node.pipe, dot)
            if truth(value):
                self.run(node.body, value if node.kind == "with" else dot)
            else:
                self.run(node.else_body, dot)
        finally:
            self.scopes.pop()

    def range(self, node: _Block, dot: Any) -> None:
        pipe = node.pipe
        value = self.pipe(_Pipeline([], False, pipe.commands), dot)
        if isinstance(value, Mapping):
            pairs: list[tuple[Any, Any]] = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        elif isinstance(value, (list, tuple)):
            pairs = list(enumerate(value))
        elif isinstance(value, int) and not isinstance(value, bool):
            pairs = [(i, i) for i in range(value)]
        elif value is None or value is MISSING:
            pairs = []
        else:
            raise TemplateError(f"template: range can't iterate over {go_str(value)}")
        if not pairs:
            self.run(node.else_body, dot)
            return
        for key, item in pairs:
            scope = self.scopes[-1]
            if len(pipe.decl) == 1:
                scope[pipe.decl[0]] = item
            elif len(pipe.decl) == 2:
                scope[pipe.decl[0]] = key
                scope[pipe.decl[1]] = item
            self.run(node.body, item)

    def pipe(self, pipe: _Pipeline, dot: Any) -> Any:
        value: Any = MISSING
        for i, cmd in enumerate(pipe.commands):
            value = self.command(cmd, dot, value if i > 0 else MISSING, piped=i > 0)
        for name in pipe.fields:
            value = _field(value, name)
        if pipe.decl:
            if pipe.assign:
                self.setvar(pipe.decl[0], value)
            else:
                self.scopes[-1][pipe.decl[-1]] = value
        return value

    def command(self, cmd: _Command, dot: Any, prev: Any, piped: bool) -> Any:
        first, rest = cmd.args[0], cmd.args[1:]
        if isinstance(first, _Tok) and first.kind == "ident":
            fn = FUNCS.get(first.value)
            if fn is None:
                raise TemplateError(f'template: function "{first.value}" not defined')
            args = [self.arg(a, dot) for a in rest]
            if piped:
                args.append(prev)
            try:
                return fn(*args)
            except TemplateError:
                raise
            except (TypeError, ValueError, AttributeError) as exc:
                raise TemplateError(f"template: error calling {first.value}: {exc}")
        args = [self.arg(a, dot) for a in rest]
        if piped:
            args.append(prev)
        if isinstance(first, _Tok) and first.kind in ("field", "var") and first.fields and args:
            # A method call with arguments: {{.Label "com.example"}}.
            base = dot if first.kind == "field" else self.lookup(first.value)
            for name in first.fields[:-1]:
                base = _field(base, name)
            return _field(base, first.fields[-1], args)
        if args:
            raise TemplateError("template: can't give argument to non-function")
        return self.arg(first, dot)

    def arg(self, node: Any, dot: Any) -> Any:
        if isinstance(node, _Pipeline):
            self.scopes.append({})
            try:
                return self.pipe(node, dot)
            finally:
                self.scopes.pop()
        tok: _Tok = node
        if tok.kind in ("str", "num", "bool", "nil"):
            value = tok.value
        elif tok.kind == "field":
            value = dot
        elif tok.kind == "var":
            value = self.lookup(tok.value)
        elif tok.kind == "ident":
            fn = FUNCS.get(tok.value)
            if fn is None:
                raise TemplateError(f'template: function "{tok.value}" not defined')
            value = fn()
        else:
            raise TemplateError(f"template: unexpected {tok.value!r}")
        for name in tok.fields:
            value = _field(value, name)
        return value


class Template:
    """A parsed template: ``Template(src).render(data)``."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.nodes = parse(source)

    def render(self, data: Any) -> str:
        ex = _Exec(data)
        ex.run(self.nodes, data)
        return "".join(ex.out)


def render(source: str, data: Any) -> str:
    """Parse and execute ``source`` against ``data`` in one step."""
    return Template(source).render(data)


def preprocess(fmt: str) -> tuple[bool, str]:
    """Docker's format preprocessing: returns (is_table, template).

    ``table TEMPLATE`` becomes a table; ``json`` means ``{{json .}}``; escaped ``\\t``
    and ``\\n`` typed on a shell become real tabs and newlines.
    """
    is_table = False
    text = fmt
    if text == "table" or text.startswith("table ") or text.startswith("table\t"):
        is_table = True
        text = text[5:].lstrip(" ")
    elif text == "json":
        text = "{{json .}}"
    text = text.replace("\\t", "\t").replace("\\n", "\n")
    return is_table, text


def render_rows(
    fmt: str,
    rows: Sequence[Any],
    header: Mapping[str, str] | None = None,
) -> str:
    """Render ``rows`` with a docker ``--format`` value, as ps/images do.

    For ``table`` formats the header is the template executed against ``header``
    (field name -> column title) and the lines are laid out with tabwriter. The
    result has one trailing newline per row (none when there is nothing to print).
    """
    from hafen.cli.format import tabwrite

    is_table, text = preprocess(fmt)
    if is_table and not text:
        return ""
    tmpl = Template(text)
    lines: list[str] = []
    if is_table and header is not None:
        lines.append(tmpl.render(_Header(header)))
    lines.extend(tmpl.render(row) for row in rows)
    if not lines:
        return ""
    body = "\n".join(lines)
    if is_table:
        body = tabwrite(body.split("\n"))
    return body + "\n"


class _Header:
    """Stands in for a row when docker renders a table's header line."""

    def __init__(self, names: Mapping[str, str]) -> None:
        self._names = names

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        title = self._names.get(name)
        if title is None:
            # Docker leaves unknown columns' headers empty.
            title = ""
        return _HeaderValue(title)

    def __template_json__(self) -> Any:
        return dict(self._names)


class _HeaderValue(str):
    """A header title that ignores the arguments of method-style fields."""

    def __call__(self, *args: Any) -> str:
        return str(self)


__all__ = [
    "FUNCS",
    "MISSING",
    "Template",
    "TemplateError",
    "go_json",
    "go_str",
    "parse",
    "preprocess",
    "render",
    "render_rows",
]
