"""Variable expansion in Dockerfile words, as Docker's shell lexer does it.

``$V``, ``${V}``, ``${V:-w}``, ``${V-w}``, ``${V:+w}``, ``${V+w}``, ``${V:?msg}``,
``${V?msg}``, ``${V#p}``, ``${V##p}``, ``${V%p}``, ``${V%%p}``, ``${V/p/r}``,
``${V//p/r}``; single quotes are literal, double quotes expand, the escape character
escapes (``\\$V`` is the literal ``$V``). Patterns are globs (``*``, ``?``; escaped
characters literal). Unset variables expand to nothing. The word's quotes are removed,
as the shell would: ``ENV a="x y"`` sets ``x y``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from hafen.errors import InvalidArgument

_SPECIAL = "@*#?-$!0"
_EOF = ""


class ExpansionError(InvalidArgument):
    pass


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0

    def peek(self) -> str:
        return self.text[self.pos] if self.pos < len(self.text) else _EOF

    def next(self) -> str:
        ch = self.peek()
        if ch:
            self.pos += 1
        return ch


class _Word:
    def __init__(self, text: str, env: Mapping[str, str], escape: str) -> None:
        self.s = _Scanner(text)
        self.env = env
        self.escape = escape
        # word splitting (process_words): the words seen so far
        self.words: list[str] = []
        self.current: list[str] = []
        self.in_word = False

    # -- word tracking, for process_words
    def _add_raw(self, text: str) -> None:
        self.current.append(text)
        self.in_word = True

    def _add_expanded(self, text: str) -> None:
        # unquoted expansions are split on whitespace, like the shell
        for ch in text:
            if ch in " \t\n":
                self._end_word()
            else:
                self.current.append(ch)
                self.in_word = True

    def _add_char(self, ch: str) -> None:
        if ch in " \t\n":
            self._end_word()
        else:
            self.current.append(ch)
            self.in_word = True

    def _end_word(self) -> None:
        if self.in_word:
            self.words.append("".join(self.current))
        self.current, self.in_word = [], False

    def process(self, stop: str = _EOF, raw_escapes: bool = False) -> str:
        out: list[str] = []
        while self.s.peek() != _EOF:
            ch = self.s.peek()
            if stop and ch == stop:
                self.s.next()
                return "".join(out)
            if ch == "'":
                part = self._single_quote()
                out.append(part)
                self._add_raw(part)
            elif ch == '"':
                part = self._double_quote()
                out.append(part)
                self._add_raw(part)
            elif ch == "$":
                part = self._dollar()
                out.append(part)
                self._add_expanded(part)
            else:
                ch = self.s.next()
                if ch == self.escape:
                    if raw_escapes:
                        out.append(ch)
                    ch = self.s.next()
                    if ch == _EOF:
                        break
                    self._add_raw(ch)
                else:
                    self._add_char(ch)
                out.append(ch)
        if stop:
            raise ExpansionError(f"unexpected end of statement while looking for matching {stop}")
        return "".join(out)

    def _single_quote(self) -> str:
        self.s.next()
        out: list[str] = []
        while True:
            ch = self.s.next()
            if ch == _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching single-quote"
                )
            if ch == "'":
                return "".join(out)
            out.append(ch)

    def _double_quote(self) -> str:
        self.s.next()
        out: list[str] = []
        while True:
            ch = self.s.peek()
            if ch == _EOF:
                raise ExpansionError(
                    "unexpected end of statement while looking for matching double-quote"
                )
            if ch == '"':
                self.s.next()
                return "".join(out)
            if ch == "$":
                out.append(self._dollar())
                continue
            ch = self.s.next()
            if ch == self.escape:
                nxt = self.s.peek()
                if nxt == _EOF:
                    continue
                if nxt in ('"', "$", self.escape):
                    ch = self.s.next()
            out.append(ch)

    def _name(self) -> str:
        name: list[str] = []
        while self.s.peek() != _EOF:
            ch = self.s.peek()
            if not name and ch.isdigit():
                while self.s.peek().isdigit():
                    name.append(self.s.next())
                return "".join(name)
            if not name and ch in _SPECIAL:
                return self.s.next()
            if not (ch.isalnum() or ch == "_"):
                break
            name.append(self.s.next())
        return "".join(name)

    def _lookup(self, name: str) -> tuple[str, bool]:
        if name in self.env:
            return self.env[name], True
        return "", False

    def _dollar(self) -> str:
        self.s.next()
        if self.s.peek() != "{":
            name = self._name()
            if not name:
                return "$"
            return self._lookup(name)[0]
        self.s.next()
        if self.s.peek() == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if self.s.peek() in "{}:":
            raise ExpansionError("syntax error: bad substitution")
        name = self._name()
        ch = self.s.next()
        value, is_set = self._lookup(name)
        if ch == "}":
            return value
        if ch == _EOF:
            raise ExpansionError("syntax error: missing '}'")
        if ch == ":":
            modifier = self.s.next()
            word = self._sub_word()
            if modifier == "-":
                return value if value else word
            if modifier == "+":
                return word if value else ""
            if modifier == "?":
                if not is_set:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
                if not value:
                    raise ExpansionError(f"{name}: {word or 'is not allowed to be empty'}")
                return value
            raise ExpansionError(f"unsupported modifier ({modifier}) in substitution")
        if ch == "-":
            word = self._sub_word()
            return value if is_set else word
        if ch == "+":
            word = self._sub_word()
            return word if is_set else ""
        if ch == "?":
            word = self._sub_word()
            if not is_set:
                raise ExpansionError(f"{name}: {word or 'is not allowed to be unset'}")
            return value
        if ch in "#%":
            longest = self.s.peek() == ch
            if longest:
                self.s.next()
            pattern = self._sub_word(raw_escapes=True)
            return _trim(value, pattern, prefix=ch == "#", longest=longest, escape=self.escape)
        if ch == "/":
            replace_all = self.s.peek() == "/"
            if replace_all:
                self.s.next()
            pattern = self._sub_word(stop="/", raw_escapes=True, also_stop="}")
            replacement = "" if self._stopped_on == "}" else self._sub_word()
            return _replace(value, pattern, replacement, replace_all, self.escape)
        raise ExpansionError(f"unsupported modifier ({ch}) in substitution")

    _stopped_on = ""

    def _sub_word(self, stop: str = "}", raw_escapes: bool = False, also_stop: str = "") -> str:
        """The word inside ``${...}`` up to ``stop`` (expanded, quotes removed)."""
        inner = _Word("", self.env, self.escape)
        inner.s = self.s
        out: list[str] = []
        while True:
            ch = self.s.peek()
            if ch == _EOF:
                raise ExpansionError("syntax error: missing '}'")
            if ch == stop or (also_stop and ch == also_stop):
                self.s.next()
                self._stopped_on = ch
                return "".join(out)
            if ch == "'":
                out.append(inner._single_quote())
            elif ch == '"':
                out.append(inner._double_quote())
            elif ch == "$":
                out.append(inner._dollar())
            else:
                ch = self.s.next()
                if ch == self.escape:
                    if raw_escapes:
                        out.append(ch)
                    ch = self.s.next()
                    if ch == _EOF:
                        raise ExpansionError("syntax error: missing '}'")
                out.append(ch)


def _glob_regex(pattern: str, escape: str, greedy: bool) -> str:
    out: list[str] = []
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == escape and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        if ch == "*":
            out.append(".*" if greedy else ".*?")
        elif ch == "?":
            out.append(".")
        else:
            out.append(re.escape(ch))
        i += 1
    return "".join(out)


def _trim(value: str, pattern: str, *, prefix: bool, longest: bool, escape: str) -> str:
    regex = _glob_regex(pattern, escape, greedy=True)
    if prefix:
        ends = [n for n in range(len(value) + 1) if re.fullmatch(regex, value[:n], re.S)]
        if not ends:
            return value
        return value[(max(ends) if longest else min(ends)) :]
    starts = [n for n in range(len(value) + 1) if re.fullmatch(regex, value[n:], re.S)]
    if not starts:
        return value
    return value[: (min(starts) if longest else max(starts))]


def _replace(value: str, pattern: str, replacement: str, replace_all: bool, escape: str) -> str:
    if not pattern:
        return value
    regex = re.compile(_glob_regex(pattern, escape, greedy=True), re.S)
    return regex.sub(lambda _: replacement, value, count=0 if replace_all else 1)


def process_word(word: str, env: Mapping[str, str], escape: str = "\\") -> str:
    """One word, expanded with quotes removed (``WORKDIR "$HOME/x"`` → ``/root/x``)."""
    return _Word(word, env, escape).process()


def process_words(text: str, env: Mapping[str, str], escape: str = "\\") -> list[str]:
    """Expand and split into words (unquoted expansions split on whitespace)."""
    w = _Word(text, env, escape)
    w.process()
    w._end_word()
    return w.words
