"""``hafen events``: follow (or replay) the daemon's events, docker's output and flags."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from hafen.cli import flags
from hafen.cli._common import CLIError, daemon_error_text, echo, get_client
from hafen.errors import HafenError


def event_line(event: dict[str, Any]) -> str:
    """docker's default: ``<time, 9 digits> <type> <action> <id> (k=v, ...)``."""
    nano = int(event.get("timeNano") or int(event.get("time", 0)) * 1_000_000_000)
    secs, frac = divmod(nano, 1_000_000_000)
    moment = datetime.fromtimestamp(secs, tz=UTC).astimezone()
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S") + f".{frac:09d}"
    offset = moment.strftime("%z")
    stamp += "Z" if offset in ("+0000", "") else f"{offset[:3]}:{offset[3:]}"
    actor = event.get("Actor") or {}
    attrs = actor.get("Attributes") or {}
    text = f"{stamp} {event.get('Type', '')} {event.get('Action', '')} {actor.get('ID', '')}"
    if attrs:
        text += " (" + ", ".join(f"{k}={attrs[k]}" for k in sorted(attrs)) + ")"
    return text


@flags.command("events")
@flags.option("-f", "--filter", "filters", multiple=True, help="Filter output based on conditions")
@flags.option("--format", "fmt", help="Format the output using the given Go template")
@flags.option("--since", help="Show all events created since timestamp")
@flags.option("--until", help="Stream events until this timestamp")
@flags.pass_context
def events(
    ctx: flags.Context,
    filters: tuple[str, ...],
    fmt: str | None,
    since: str | None,
    until: str | None,
) -> None:
    """Get real time events from the server."""
    from hafen.cli.format import parse_timestamp
    from hafen.cli.template import Template, TemplateError, preprocess

    parsed: dict[str, list[str]] = {}
    for value in filters:
        key, sep, val = value.partition("=")
        if not sep or not key:
            raise CLIError(f"bad format of filter (expected name=value): {value}", 125)
        parsed.setdefault(key.strip().lower(), []).append(val)
    template = None
    if fmt:
        _table, text = preprocess(fmt)
        try:
            template = Template(text)
        except TemplateError as exc:
            raise CLIError(f"template parsing error: {exc}", 64)
    try:
        params = {
            "since": parse_timestamp(since) if since else None,
            "until": parse_timestamp(until) if until else None,
            "filters": json.dumps(parsed) if parsed else None,
        }
        stream = get_client(ctx).events(**params)
    except HafenError as exc:
        raise CLIError(daemon_error_text(exc), 1)
    buffer = b""
    with stream:
        for chunk in stream:
            buffer += chunk
            *lines, buffer = buffer.split(b"\n")
            for line in lines:
                if not line.strip():
                    continue
                event = json.loads(line)
                if template is not None:
                    try:
                        echo(template.render(event))
                    except TemplateError as exc:
                        raise CLIError(str(exc), 1)
                else:
                    echo(event_line(event))
