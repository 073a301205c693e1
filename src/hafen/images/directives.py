"""``--change`` directives of ``commit`` and ``import``: Dockerfile instructions applied
to an image config (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER,
VOLUME, WORKDIR — the set dockerd accepts there)."""

from __future__ import annotations

import json
import shlex
from typing import Any

from hafen.errors import InvalidArgument

ALLOWED = ("CMD", "ENTRYPOINT", "ENV", "EXPOSE", "LABEL", "ONBUILD", "STOPSIGNAL", "USER",
           "VOLUME", "WORKDIR")  # fmt: skip


def _exec_form(args: str) -> list[str]:
    text = args.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(v, str) for v in value):
            return value
    return ["/bin/sh", "-c", text]


def _pairs(args: str, instruction: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if not words:
        raise InvalidArgument(f"{instruction} requires at least one argument")
    if "=" not in words[0]:
        if len(words) < 2 and instruction == "ENV":
            raise InvalidArgument(f"{instruction} must have two arguments")
        return [(words[0], args.strip()[len(words[0]) :].strip())]
    out = []
    for word in words:
        key, sep, value = word.partition("=")
        if not sep or not key:
            raise InvalidArgument(f"{instruction}: {word!r} is not key=value")
        out.append((key, value))
    return out


def apply_changes(config: dict[str, Any], changes: list[str]) -> dict[str, Any]:
    """Return ``config`` (Docker's ``config`` object of an image) with the directives applied."""
    out = dict(config)
    for change in changes:
        text = change.strip()
        if not text:
            continue
        instruction, _, args = text.partition(" ")
        instruction = instruction.upper()
        if instruction not in ALLOWED:
            raise InvalidArgument(
                f"{instruction} is not a valid change command (allowed: {', '.join(ALLOWED)})"
            )
        args = args.strip()
        if instruction == "CMD":
            out["Cmd"] = _exec_form(args)
        elif instruction == "ENTRYPOINT":
            out["Entrypoint"] = _exec_form(args)
        elif instruction == "ENV":
            env = [e for e in out.get("Env") or []]
            for key, value in _pairs(args, "ENV"):
                env = [e for e in env if e.partition("=")[0] != key] + [f"{key}={value}"]
            out["Env"] = env
        elif instruction == "LABEL":
            labels = dict(out.get("Labels") or {})
            labels.update(_pairs(args, "LABEL"))
            out["Labels"] = labels
        elif instruction == "EXPOSE":
            ports = dict(out.get("ExposedPorts") or {})
            for port in args.split():
                number, _, proto = port.partition("/")
                if not number.isdigit():
                    raise InvalidArgument(f"EXPOSE: invalid port {port!r}")
                ports[f"{number}/{proto or 'tcp'}"] = {}
            out["ExposedPorts"] = ports
        elif instruction == "VOLUME":
            volumes = dict(out.get("Volumes") or {})
            for path in _exec_form(args) if args.startswith("[") else args.split():
                volumes[path] = {}
            out["Volumes"] = volumes
        elif instruction == "ONBUILD":
            out["OnBuild"] = [*(out.get("OnBuild") or []), args]
        elif instruction == "STOPSIGNAL":
            out["StopSignal"] = args
        elif instruction == "USER":
            out["User"] = args
        elif instruction == "WORKDIR":
            out["WorkingDir"] = args
    return out
