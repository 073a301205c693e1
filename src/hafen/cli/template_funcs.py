"""Go's value printing and the template functions for ``hafen.cli.template``.

Owns how values print under ``fmt.Sprint`` (``true``, ``<nil>``, ``<no value>``,
``map[a:1 b:2]``, ``[a b]``, integers without ``.0``), Go's truthiness, and the
function table: Go's builtins (and, or, not, eq, ne, lt, le, gt, ge, len, index,
slice, print, printf, println) and docker's (json, join, split, upper, lower, title,
pad, truncate).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from hafen.errors import InvalidArgument


class _Missing:
    """Go's "no value": a map lookup of a key that is not there."""

    def __repr__(self) -> str:
        return "<no value>"

    def __bool__(self) -> bool:
        return False


MISSING: Any = _Missing()


class TemplateError(InvalidArgument):
    """A template that does not parse or cannot be executed."""


# ----------------------------------------------------------------------------- printing


def go_str(value: Any) -> str:
    """Format ``value`` as Go's ``fmt.Sprint`` (``%v``) would."""
    if value is MISSING:
        return "<no value>"
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return _go_float(value)
    if isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if isinstance(value, Mapping):
        items = sorted(value.items(), key=lambda kv: sort_key(kv[0]))
        return "map[" + " ".join(f"{go_str(k)}:{go_str(v)}" for k, v in items) + "]"
    if isinstance(value, (list, tuple)):
        return "[" + " ".join(go_str(v) for v in value) + "]"
    return str(value)


def sort_key(key: Any) -> tuple[int, Any]:
    if isinstance(key, (int, float)) and not isinstance(key, bool):
        return (0, key)
    return (1, str(key))


def _go_float(value: float) -> str:
    # Go's %v for float64 is 'g' with the shortest representation and an exponent
    # only when it is < -4 or >= 21.
    if value != value:
        return "NaN"
    if value in (float("inf"), float("-inf")):
        return "+Inf" if value > 0 else "-Inf"
    if value.is_integer() and abs(value) < 1e21:
        return str(int(value))
    text = repr(value)
    if "e" in text:
        mantissa, exp = text.split("e")
        exp_num = int(exp)
        if -4 <= exp_num < 21:
            return format(value, "f").rstrip("0").rstrip(".")
        sign = "-" if exp_num < 0 else "+"
        return f"{mantissa}e{sign}{abs(exp_num):02d}"
    return text


def truth(value: Any) -> bool:
    if value is MISSING or value is None:
        return False
    if isinstance(value, (bool, int, float, str, bytes, list, tuple, dict)):
        return bool(value)
    if isinstance(value, Mapping):
        return len(value) > 0
    return True


def _to_jsonable(value: Any) -> Any:
    if value is MISSING:
        return None
    hook = getattr(value, "__template_json__", None)
    if hook is not None:
        return _to_jsonable(hook())
    if isinstance(value, Mapping):
        return {str(k): _to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_jsonable(v) for v in value]
    return value


def go_json(value: Any) -> str:
    """docker's ``json`` function: compact JSON, HTML characters left alone."""
    return json.dumps(_to_jsonable(value), separators=(",", ":"), ensure_ascii=False)


# ----------------------------------------------------------------------------- functions


def _fn_and(*args: Any) -> Any:
    if not args:
        raise TemplateError("wrong number of args for and: want at least 1 got 0")
    for arg in args:
        if not truth(arg):
            return arg
    return args[-1]


def _fn_or(*args: Any) -> Any:
    if not args:
        raise TemplateError("wrong number of args for or: want at least 1 got 0")
    for arg in args:
        if truth(arg):
            return arg
    return args[-1]


def _basic(value: Any) -> Any:
    if value is MISSING:
        return None
    return value


def _fn_eq(first: Any, *others: Any) -> bool:
    if not others:
        raise TemplateError("wrong number of args for eq: want at least 2 got 1")
    return any(_basic(first) == _basic(o) for o in others)


def _compare(name: str, op: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def fn(a: Any, b: Any) -> bool:
        try:
            return op(_basic(a), _basic(b))
        except TypeError:
            raise TemplateError(f"error calling {name}: incompatible types for comparison")

    return fn


def _fn_len(value: Any) -> int:
    try:
        return len(value)
    except TypeError:
        raise TemplateError(f"error calling len: len of type {type(value).__name__}")


def _fn_index(value: Any, *keys: Any) -> Any:
    for key in keys:
        if isinstance(value, Mapping):
            value = value.get(key, MISSING)
        elif isinstance(value, (list, tuple, str)):
            if not isinstance(key, int) or not -1 < key < len(value):
                raise TemplateError(f"error calling index: index out of range: {go_str(key)}")
            value = value[key]
        elif value is None or value is MISSING:
            raise TemplateError("error calling index: index of untyped nil")
        else:
            raise TemplateError(
                f"error calling index: can't index item of type {type(value).__name__}"
            )
    return value


def _fn_slice(value: Any, *bounds: int) -> Any:
    if len(bounds) > 2:
        raise TemplateError("error calling slice: too many slice indexes")
    start = bounds[0] if bounds else 0
    end = bounds[1] if len(bounds) > 1 else len(value)
    return value[start:end]


def _fn_print(*args: Any) -> str:
    # fmt.Sprint puts a space between operands when neither side is a string.
    out = ""
    for i, arg in enumerate(args):
        if i > 0 and not isinstance(arg, str) and not isinstance(args[i - 1], str):
            out += " "
        out += go_str(arg)
    return out


def _fn_println(*args: Any) -> str:
    return " ".join(go_str(a) for a in args) + "\n"


_PRINTF_VERB = re.compile(r"%([-+# 0]*)(\d+|\*)?(?:\.(\d+))?([vsdqtfgexXbo%])")


def _fn_printf(fmt: str, *args: Any) -> str:
    queue = list(args)

    def repl(match: re.Match[str]) -> str:
        flags, width, prec, verb = match.groups()
        if verb == "%":
            return "%"
        if not queue:
            return f"%!{verb}(MISSING)"
        arg = queue.pop(0)
        if verb in "vst":
            text = go_str(arg)
        elif verb == "q":
            text = json.dumps(go_str(arg), ensure_ascii=False)
        elif verb in "dxXbo" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
            text = format(int(arg), {"d": "d", "x": "x", "X": "X", "b": "b", "o": "o"}[verb])
        elif verb in "fge" and isinstance(arg, (int, float)) and not isinstance(arg, bool):
            text = format(float(arg), f".{prec or 6}{verb}")
        else:
            text = f"%!{verb}({go_str(arg)})"
        if width and width != "*":
            text = text.ljust(int(width)) if "-" in flags else text.rjust(int(width))
        return text

    return _PRINTF_VERB.sub(repl, fmt)


def _fn_join(items: Any, sep: str) -> str:
    if items is None or items is MISSING:
        return ""
    return sep.join(go_str(i) for i in items)


def _fn_split(text: str, sep: str) -> list[str]:
    return go_str(text).split(sep) if sep else list(go_str(text))


def _fn_title(text: Any) -> str:
    return re.sub(r"(^|\s)(\S)", lambda m: m.group(1) + m.group(2).upper(), go_str(text))


def _fn_pad(text: Any, before: int, after: int) -> str:
    return " " * before + go_str(text) + " " * after


def _fn_truncate(text: Any, length: int) -> str:
    return go_str(text)[:length]


FUNCS: dict[str, Callable[..., Any]] = {
    "and": _fn_and,
    "or": _fn_or,
    "not": lambda v: not truth(v),
    "eq": _fn_eq,
    "ne": lambda a, b: _basic(a) != _basic(b),
    "lt": _compare("lt", lambda a, b: a < b),
    "le": _compare("le", lambda a, b: a <= b),
    "gt": _compare("gt", lambda a, b: a > b),
    "ge": _compare("ge", lambda a, b: a >= b),
    "len": _fn_len,
    "index": _fn_index,
    "slice": _fn_slice,
    "print": _fn_print,
    "printf": _fn_printf,
    "println": _fn_println,
    "json": go_json,
    "join": _fn_join,
    "split": _fn_split,
    "upper": lambda s: go_str(s).upper(),
    "lower": lambda s: go_str(s).lower(),
    "title": _fn_title,
    "pad": _fn_pad,
    "truncate": _fn_truncate,
}
