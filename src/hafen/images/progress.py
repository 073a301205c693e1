"""Progress of long image operations (pull, push, load), as events the API streams.

An event is what Docker's JSON progress message says — a status, the layer it is about,
bytes done of a total — without its JSON shape (that is the API's business).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class ProgressEvent:
    status: str
    id: str | None = None
    current: int | None = None
    total: int | None = None
    aux: dict[str, Any] | None = None


Emit = Callable[[ProgressEvent], None]
"""Receives events on the event loop; must not block."""


def short_digest(digest: str) -> str:
    return digest.removeprefix("sha256:")[:12]
