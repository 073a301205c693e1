"""``.dockerignore`` rules, as Docker's pattern matcher applies them.

One pattern per line; ``#`` lines and blank lines are skipped; each pattern is cleaned
(``./a/../b`` → ``b``, a leading ``/`` dropped). ``*`` matches within one path segment,
``?`` one character, ``[...]`` a class, ``**`` any number of segments, ``\\`` escapes.
A path is excluded when the *last* pattern that matches it (or one of its parent
directories) is not a ``!`` exception, so order matters.
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass

from hafen.errors import InvalidArgument


@dataclass(frozen=True)
class _Pattern:
    text: str
    regex: re.Pattern[str]
    exclusion: bool  # a "!" line: re-includes what it matches


def _compile(pattern: str) -> re.Pattern[str]:
    out = ["^"]
    i = 0
    n = len(pattern)
    while i < n:
        ch = pattern[i]
        if ch == "*":
            if i + 1 < n and pattern[i + 1] == "*":
                i += 2
                if i < n and pattern[i] == "/":
                    i += 1
                    out.append("(.*/)?" if i < n else ".*")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif ch == "?":
            out.append("[^/]")
        elif ch == "\\":
            i += 1
            if i >= n:
                raise InvalidArgument(f"invalid .dockerignore pattern {pattern!r}: trailing escape")
            out.append(re.escape(pattern[i]))
        elif ch == "[":
            end = pattern.find("]", i + 1)
            if end < 0:
                raise InvalidArgument(f"invalid .dockerignore pattern {pattern!r}: unclosed [")
            body = pattern[i + 1 : end]
            if body.startswith("^") or body.startswith("!"):
                body = "^" + body[1:]
            out.append(f"[{body}]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return re.compile("".join(out), re.S)


class IgnoreRules:
    def __init__(self, lines: list[str]) -> None:
        self.patterns: list[_Pattern] = []
        for raw in lines:
            line = raw.strip()
            if not line or line.startswith("#"):
                continue
            exclusion = line.startswith("!")
            if exclusion:
                line = line[1:].strip()
            if not line:
                raise InvalidArgument('illegal exclusion pattern in .dockerignore: "!"')
            cleaned = posixpath.normpath(line).lstrip("/")
            if cleaned in ("", "."):
                cleaned = "."
            self.patterns.append(_Pattern(cleaned, _compile(cleaned), exclusion))

    @classmethod
    def from_text(cls, text: str) -> IgnoreRules:
        return cls(text.splitlines())

    def __bool__(self) -> bool:
        return bool(self.patterns)

    def excluded(self, rel: str) -> bool:
        """Whether the context path ``rel`` (slash-separated, relative) is left out."""
        rel = rel.strip("/")
        parents = []
        head = rel
        while "/" in head:
            head = head.rpartition("/")[0]
            parents.append(head)
        result = False
        for pattern in self.patterns:
            if pattern.exclusion == (not result):
                continue  # cannot change the outcome
            if pattern.regex.match(rel) or any(pattern.regex.match(p) for p in parents):
                result = not pattern.exclusion
        return result

    def may_include_below(self, rel: str) -> bool:
        """Whether an excluded directory may still hold re-included paths (a ``!`` below it)."""
        prefix = rel.strip("/") + "/"
        return any(
            p.exclusion and (p.text.startswith(prefix) or "*" in p.text) for p in self.patterns
        )
