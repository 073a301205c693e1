"""Human-readable values exactly as Docker's CLI prints them.

This module owns the small text conversions the docker CLI borrows from go-units
and its formatter package: durations ("5 seconds", "About an hour"), decimal sizes
("4.26MB"), memory sizes with binary units ("512m" -> 536870912), Go-style duration
parsing ("1h30m"), ID truncation, the ``Ellipsis`` used for COMMAND columns, and the
elastic tab layout of ``text/tabwriter`` that docker uses for every table.
"""

from __future__ import annotations

import re
import time

from hafen.errors import InvalidArgument

_DECIMAL_UNITS = ("B", "kB", "MB", "GB", "TB", "PB", "EB", "ZB", "YB")
_BINARY_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB", "ZiB", "YiB")


def human_duration(seconds: float) -> str:
    """go-units ``HumanDuration``: "Less than a second", "3 seconds", "About an hour"..."""
    secs = int(seconds)
    if secs < 1:
        return "Less than a second"
    if secs == 1:
        return "1 second"
    if secs < 60:
        return f"{secs} seconds"
    minutes = int(seconds / 60)
    if minutes == 1:
        return "About a minute"
    if minutes < 60:
        return f"{minutes} minutes"
    # go-units rounds hours to the nearest one, and derives days/weeks/months from that.
    hours = int(seconds / 3600 + 0.5)
    if hours == 1:
        return "About an hour"
    if hours < 48:
        return f"{hours} hours"
    if hours < 24 * 7 * 2:
        return f"{hours // 24} days"
    if hours < 24 * 30 * 2:
        return f"{hours // 24 // 7} weeks"
    if hours < 24 * 365 * 2:
        return f"{hours // 24 // 30} months"
    return f"{int(seconds / 3600) // 24 // 365} years"


def time_ago(unix_seconds: float, now: float | None = None) -> str:
    """Docker's CREATED column: ``HumanDuration(now - t) + " ago"``."""
    current = time.time() if now is None else now
    return human_duration(max(0.0, current - unix_seconds)) + " ago"


def _go_g(value: float, precision: int) -> str:
    # Go's %.Ng and C's agree on all values we format (both drop trailing zeros).
    return f"{value:.{precision}g}"


def human_size(size: float, precision: int = 3) -> str:
    """go-units ``HumanSizeWithPrecision`` with decimal units: 4260000 -> "4.26MB".

    Docker's ``images`` and ``ps -s`` use three significant digits, the default here.
    """
    value = float(size)
    i = 0
    while value >= 1000.0 and i < len(_DECIMAL_UNITS) - 1:
        value /= 1000.0
        i += 1
    return _go_g(value, precision) + _DECIMAL_UNITS[i]


def bytes_size(size: float) -> str:
    """go-units ``BytesSize``: binary units with 4 significant digits ("1.5GiB")."""
    value = float(size)
    i = 0
    while value >= 1024.0 and i < len(_BINARY_UNITS) - 1:
        value /= 1024.0
        i += 1
    return _go_g(value, 4) + _BINARY_UNITS[i]


_RAM_RE = re.compile(r"^(\d+(?:\.\d+)?)\s*([kmgtp]?)(?:i?b)?$", re.IGNORECASE)
_RAM_MULT = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40, "p": 1 << 50}


def ram_in_bytes(text: str) -> int:
    """go-units ``RAMInBytes``: "512m", "1g", "100" -> bytes (binary multiples)."""
    match = _RAM_RE.match(text.strip())
    if not match:
        raise InvalidArgument(f"invalid size: '{text}'")
    return int(float(match.group(1)) * _RAM_MULT[match.group(2).lower()])


_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)")
_DURATION_UNITS = {
    "ns": 1e-9,
    "us": 1e-6,
    "µs": 1e-6,
    "ms": 1e-3,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
}


def parse_go_duration(text: str) -> float:
    """Go ``time.ParseDuration`` ("1h30m", "10s", "1.5h") -> seconds."""
    s = text.strip()
    sign = 1.0
    if s[:1] in "+-" and s:
        sign = -1.0 if s[0] == "-" else 1.0
        s = s[1:]
    if s == "0":
        return 0.0
    pos = 0
    total = 0.0
    for match in _DURATION_PART.finditer(s):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(s) or not s:
        raise InvalidArgument(f'time: invalid duration "{text}"')
    return sign * total


def parse_timestamp(value: str, now: float | None = None) -> str:
    """Docker's ``GetTimestamp`` for --since/--until: a Go duration is relative to now,
    an RFC 3339 date or a date-time is absolute, a plain number passes through.

    Returns the API's string form: seconds since the epoch, optionally ``.nanoseconds``.
    """
    current = time.time() if now is None else now
    text = value.strip()
    if re.fullmatch(r"\d+(\.\d+)?", text):
        return text
    try:
        delta = parse_go_duration(text)
    except InvalidArgument:
        pass
    else:
        return _epoch_str(current - delta)
    from datetime import datetime  # only for absolute times: not on every command's path

    candidate = text.replace("Z", "+00:00")
    for fmt in (None, "%Y-%m-%d"):
        try:
            if fmt is None:
                parsed = datetime.fromisoformat(candidate)
            else:
                parsed = datetime.strptime(candidate, fmt)
        except ValueError:
            continue
        if parsed.tzinfo is None:
            # Docker reads zone-less times as local time.
            parsed = parsed.astimezone()
        return _epoch_str(parsed.timestamp())
    raise InvalidArgument(f"invalid value for timestamp: '{value}'")


def _epoch_str(seconds: float) -> str:
    whole = int(seconds)
    nanos = round((seconds - whole) * 1e9)
    if nanos >= 1_000_000_000:
        whole, nanos = whole + 1, 0
    return f"{whole}.{nanos:09d}"


def go_time_string(unix_seconds: float) -> str:
    """Go's ``time.Unix(t, 0).String()`` in local time: "2024-01-02 15:04:05 +0000 UTC"."""
    from datetime import UTC, datetime

    moment = datetime.fromtimestamp(unix_seconds, tz=UTC).astimezone()
    zone = moment.strftime("%Z") or moment.strftime("%z")
    return moment.strftime("%Y-%m-%d %H:%M:%S %z ") + zone


def truncate_id(ident: str) -> str:
    """``stringid.TruncateID``: drop any "algo:" prefix and keep 12 characters."""
    if ":" in ident:
        ident = ident.split(":", 1)[1]
    return ident[:12]


def ellipsis(text: str, max_width: int) -> str:
    """docker's formatter ``Ellipsis``: cut to ``max_width`` runes, the last one "…"."""
    if max_width <= 0:
        return ""
    if len(text) <= max_width:
        return text
    if max_width == 1:
        return text[:1]
    return text[: max_width - 1] + "…"


def tabwrite(lines: list[str], minwidth: int = 10, padding: int = 3, padchar: str = " ") -> str:
    """Lay out tab-separated cells like Go's ``tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)``.

    Every cell that is followed by a tab is padded to its column's width (the widest
    cell of the column block plus ``padding``, at least ``minwidth``); the last cell of
    a line is written as it is. A column block is a run of consecutive lines that have
    a cell in that column, as in the Go package.
    """
    rows = [line.split("\t") for line in lines]
    widths: list[list[int]] = [[0] * max(len(r) - 1, 0) for r in rows]
    max_cols = max((len(r) - 1 for r in rows), default=0)
    for col in range(max_cols):
        start = 0
        while start < len(rows):
            if len(rows[start]) - 1 <= col:
                start += 1
                continue
            end = start
            width = 0
            while end < len(rows) and len(rows[end]) - 1 > col:
                width = max(width, len(rows[end][col]) + padding)
                end += 1
            width = max(width, minwidth)
            for k in range(start, end):
                widths[k][col] = width
            start = end
    out = []
    for row, row_widths in zip(rows, widths, strict=True):
        cells = [cell.ljust(w, padchar) for cell, w in zip(row[:-1], row_widths, strict=True)]
        out.append("".join(cells) + row[-1])
    return "\n".join(out)
