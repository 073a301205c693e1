"""Seccomp profiles in Docker's format, turned into config.json's ``linux.seccomp``.

Owns Docker's rules for a profile (moby's profiles/seccomp): the default profile
(``seccomp_default.json``, a copy of the one in the OCI/Docker specs), ``archMap`` to the
native architecture and its sub-architectures, and the ``includes``/``excludes`` filters
on the container's bounding capabilities, the machine's architecture and the running
kernel's version. A custom profile goes through the same filters.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from typing import Any

from hafen.errors import InvalidArgument

_GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "386", "armv7l": "arm"}
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "386": "SCMP_ARCH_X86"}


@lru_cache(maxsize=1)
def default_profile() -> dict[str, Any]:
    """Docker's default profile, as shipped with hafen."""
    path = os.path.join(os.path.dirname(__file__), "seccomp_default.json")
    with open(path) as f:
        data: dict[str, Any] = json.load(f)
    return data


def parse_profile(text: str) -> dict[str, Any]:
    """A custom profile from ``--security-opt seccomp=<json>``; refuses what is not one."""
    try:
        data = json.loads(text)
    except ValueError as e:
        raise InvalidArgument(f"seccomp profile is not valid JSON: {e}")
    if not isinstance(data, dict) or "defaultAction" not in data:
        raise InvalidArgument("seccomp profile: expected an object with a defaultAction")
    return data


def _kernel() -> tuple[int, int]:
    release = os.uname().release
    parts = release.split(".")
    try:
        return int(parts[0]), int("".join(c for c in parts[1] if c.isdigit()) or 0)
    except (IndexError, ValueError):
        return (0, 0)


def _version(text: str) -> tuple[int, int]:
    major, _, minor = text.partition(".")
    try:
        return int(major), int(minor or 0)
    except ValueError:
        raise InvalidArgument(f"seccomp profile: bad minKernel {text!r}")


def to_oci(
    profile: dict[str, Any],
    bounding: list[str],
    machine: str | None = None,
    kernel: tuple[int, int] | None = None,
) -> dict[str, Any]:
    """The ``linux.seccomp`` object for a container with ``bounding`` capabilities."""
    arch = _GO_ARCH.get(machine or os.uname().machine, machine or "")
    kernel = kernel or _kernel()
    caps = set(bounding)
    architectures: list[str] = list(profile.get("architectures") or [])
    native = _SCMP_ARCH.get(arch)
    for entry in profile.get("archMap") or []:
        if native is not None and entry.get("architecture") == native:
            architectures = [native, *(entry.get("subArchitectures") or [])]
    syscalls = []
    for call in profile.get("syscalls") or []:
        inc = call.get("includes") or {}
        exc = call.get("excludes") or {}
        if arch in (exc.get("arches") or []):
            continue
        if any(c in caps for c in exc.get("caps") or []):
            continue
        if exc.get("minKernel") and kernel >= _version(exc["minKernel"]):
            continue
        if inc.get("arches") and arch not in inc["arches"]:
            continue
        if inc.get("caps") and not all(c in caps for c in inc["caps"]):
            continue
        if inc.get("minKernel") and kernel < _version(inc["minKernel"]):
            continue
        names = list(call.get("names") or ([call["name"]] if call.get("name") else []))
        rule: dict[str, Any] = {"names": names, "action": call["action"]}
        if call.get("args"):
            rule["args"] = call["args"]
        if call.get("errnoRet") is not None:
            rule["errnoRet"] = call["errnoRet"]
        syscalls.append(rule)
    out: dict[str, Any] = {"defaultAction": profile["defaultAction"], "syscalls": syscalls}
    if profile.get("defaultErrnoRet") is not None:
        out["defaultErrnoRet"] = profile["defaultErrnoRet"]
    if architectures:
        out["architectures"] = architectures
    if profile.get("flags"):
        out["flags"] = list(profile["flags"])
    return out
