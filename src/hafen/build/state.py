"""A build stage's image as it grows: config, layers, history; and the config JSON it commits.

The image config is kept in Docker's own JSON shape (it *is* the stored image config,
so no translation is needed): ``config`` holds Env, Cmd, Entrypoint, WorkingDir, User,
Labels, ExposedPorts, Volumes, Healthcheck, OnBuild, StopSignal, Shell; ``history``
gets one entry per instruction, ``empty_layer`` for those that add no layer, with the
``created_by`` text Docker's classic builder writes.
"""

from __future__ import annotations

import copy
import json
import platform
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from hafen.images.model import Image
from hafen.images.service import LayerBlob

DEFAULT_SHELL = ["/bin/sh", "-c"]
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def now_rfc3339() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond:06d}000Z"


def _arch() -> str:
    machine = platform.machine()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


@dataclass
class ImageState:
    """Where a stage stands: the image it has committed so far and what it is made of."""

    image_id: str | None  # None: scratch with nothing committed yet
    raw: dict[str, Any]  # the full image config
    layers: list[LayerBlob] = field(default_factory=list)
    chain_id: str | None = None

    @classmethod
    def scratch(cls) -> ImageState:
        raw = {
            "architecture": _arch(),
            "os": "linux",
            "config": {"Env": [f"PATH={DEFAULT_PATH}"]},
            "rootfs": {"type": "layers", "diff_ids": []},
            "history": [],
        }
        return cls(image_id=None, raw=raw)

    @classmethod
    def from_image(cls, image: Image, layers: list[LayerBlob]) -> ImageState:
        raw = copy.deepcopy(image.config.raw)
        raw.setdefault("config", {})
        raw.setdefault("history", [])
        raw.setdefault("rootfs", {"type": "layers", "diff_ids": []})
        return cls(image_id=image.id, raw=raw, layers=layers, chain_id=image.chain_id)

    @property
    def config(self) -> dict[str, Any]:
        cfg: dict[str, Any] = self.raw.setdefault("config", {})
        return cfg

    @property
    def diff_ids(self) -> list[str]:
        return list(self.raw["rootfs"]["diff_ids"])

    # -- config accessors with Docker's defaults
    @property
    def env(self) -> list[str]:
        return list(self.config.get("Env") or [])

    def env_map(self) -> dict[str, str]:
        out: dict[str, str] = {}
        for item in self.env:
            key, _, value = item.partition("=")
            out[key] = value
        return out

    def set_env(self, key: str, value: str) -> None:
        """Set one variable; a key set again keeps its place (as Docker does)."""
        env = self.env
        for index, item in enumerate(env):
            if item.partition("=")[0] == key:
                env[index] = f"{key}={value}"
                break
        else:
            env.append(f"{key}={value}")
        self.config["Env"] = env

    @property
    def shell(self) -> list[str]:
        return list(self.config.get("Shell") or DEFAULT_SHELL)

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "")

    @property
    def user(self) -> str:
        return str(self.config.get("User") or "")

    def config_bytes(self, created_by: str, empty_layer: bool, comment: str = "") -> bytes:
        """Append the history entry for a step and give the config JSON to commit."""
        created = now_rfc3339()
        entry: dict[str, Any] = {"created": created, "created_by": created_by}
        if comment:
            entry["comment"] = comment
        if empty_layer:
            entry["empty_layer"] = True
        self.raw["history"] = [*self.raw.get("history", []), entry]
        self.raw["created"] = created
        return json.dumps(self.raw, separators=(",", ":"), sort_keys=True).encode()
