"""Image records: the image config (kept whole, as its JSON) and what hafen knows of it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from hafen.errors import InvalidArgument


@dataclass
class ImageConfig:
    """An OCI/Docker image config; ``raw`` keeps every field, known or not."""

    raw: dict[str, Any]

    @classmethod
    def from_json(cls, data: bytes) -> ImageConfig:
        try:
            raw = json.loads(data)
        except (ValueError, UnicodeDecodeError) as e:
            raise InvalidArgument(f"invalid image config JSON: {e}")
        if not isinstance(raw, dict):
            raise InvalidArgument("invalid image config: expected a JSON object")
        rootfs = raw.get("rootfs")
        if not isinstance(rootfs, dict) or not isinstance(rootfs.get("diff_ids", []), list):
            raise InvalidArgument("invalid image config: rootfs.diff_ids is missing")
        return cls(raw)

    def to_json(self) -> bytes:
        return json.dumps(self.raw, separators=(",", ":")).encode()

    @property
    def diff_ids(self) -> list[str]:
        return list(self.raw.get("rootfs", {}).get("diff_ids") or [])

    @property
    def created(self) -> str:
        return str(self.raw.get("created") or "")

    @property
    def runtime(self) -> dict[str, Any]:
        """The ``config`` object: Env, Cmd, Entrypoint, WorkingDir, User, Labels, …"""
        inner = self.raw.get("config") or {}
        return inner if isinstance(inner, dict) else {}


@dataclass
class Image:
    id: str  # sha256 of the config JSON
    config: ImageConfig
    repo_tags: list[str] = field(default_factory=list)  # familiar: busybox:latest
    repo_digests: list[str] = field(default_factory=list)  # familiar: busybox@sha256:…
    created: str = ""
    size: int = 0
    chain_id: str | None = None  # top layer's ChainID; None for an image without layers
    manifest_digest: str | None = None

    @property
    def diff_ids(self) -> list[str]:
        return self.config.diff_ids

    @property
    def short_id(self) -> str:
        return self.id.removeprefix("sha256:")[:12]
