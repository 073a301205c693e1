"""``loads``/``dumps`` on the C accelerator ``_json`` alone, for the runtime's start path.

Importing the ``json`` package costs start-up time on every container start: it imports
``re`` (and through it ``enum``, ``functools``, ``collections``) for patterns the C
scanner and encoder never use. This module drives the same C scanner and encoder
directly, with ``json``'s defaults (strict strings, ``ensure_ascii``, ``allow_nan``).
Anything the fast path refuses — invalid input, NaN literals, objects it cannot encode,
``indent`` — is handed to the real ``json`` module, so results and error messages are
exactly ``json``'s.
"""

from __future__ import annotations

import _json

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


class _Context:
    """The attributes ``_json.make_scanner`` reads from a ``json.JSONDecoder``."""

    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> Any:
        raise ValueError(name)  # NaN/Infinity: let json itself decide


_scan = _json.make_scanner(_Context())  # type: ignore[arg-type]  # duck-typed: reads attributes
_WHITESPACE = " \t\n\r"


def loads(data: str | bytes | bytearray) -> Any:
    """``json.loads`` for UTF-8 input."""
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        start = len(text) - len(text.lstrip(_WHITESPACE))
        obj, end = _scan(text, start)
        if end != len(text.rstrip(_WHITESPACE)):
            raise ValueError("extra data")
        return obj
    except (StopIteration, ValueError, UnicodeDecodeError):
        import json

        return json.loads(data)


def _refuse(obj: object) -> object:
    raise TypeError(f"Object of type {type(obj).__name__} is not JSON serializable")


def dumps(
    obj: object, *, sort_keys: bool = False, separators: tuple[str, str] | None = None
) -> str:
    """``json.dumps`` with its defaults (``separators`` and ``sort_keys`` as there)."""
    item_sep, key_sep = separators or (", ", ": ")
    # (markers, default, encoder, indent, key_separator, item_separator, sort_keys,
    #  skipkeys, allow_nan), as json.dumps builds it; fresh markers for the cycle check
    encode = _json.make_encoder(
        {}, _refuse, _json.encode_basestring_ascii, None, key_sep, item_sep,
        sort_keys, False, True,
    )  # fmt: skip
    try:
        return "".join(encode(obj, 0))
    except (TypeError, ValueError):
        import json

        return json.dumps(obj, sort_keys=sort_keys, separators=separators)
