"""Errors of registry conversations, in hafen's hierarchy (``hafen.errors``).

A registry's own error body (``{"errors": [{"code", "message", "detail"}]}``) becomes
the message, in Docker's wording (``unauthorized: authentication required``).
"""

from __future__ import annotations

import json

from hafen.errors import Forbidden, HafenError, NotFound
from hafen.errors import Unauthorized as _Unauthorized


class RegistryError(HafenError):
    """The registry failed or answered something hafen cannot use."""

    status = 500


class Unauthorized(_Unauthorized):
    pass


class TransientError(RegistryError):
    """A failure worth retrying: a dropped connection, 5xx, 429."""


def registry_message(status: int, body: bytes) -> str:
    """Docker's text for a registry error body: ``code: message`` of each error."""
    try:
        doc = json.loads(body)
        items = doc.get("errors") if isinstance(doc, dict) else None
    except (ValueError, UnicodeDecodeError):
        items = None
    if items:
        parts = []
        for item in items:
            if isinstance(item, dict):
                code = str(item.get("code", "")).lower()
                message = str(item.get("message", ""))
                parts.append(f"{code}: {message}" if code else message)
        if parts:
            return ", ".join(parts)
    text = body.decode("utf-8", "replace").strip()[:200]
    return f"status {status}" + (f": {text}" if text else "")


def error_for(status: int, body: bytes, what: str) -> HafenError:
    message = registry_message(status, body)
    if status == 401:
        return Unauthorized(f"{what}: {message}" if what else message)
    if status == 403:
        return Forbidden(f"{what}: {message}" if what else message)
    if status == 404:
        return NotFound(f"{what}: {message}" if what else message)
    if status == 429 or status >= 500:
        return TransientError(f"{what}: {message}" if what else message)
    return RegistryError(f"{what}: {message}" if what else message)
