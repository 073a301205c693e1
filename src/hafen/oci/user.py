"""Resolve a ``-u user[:group]`` string against the container's own /etc/passwd and /etc/group.

The files come from an untrusted image, so they are read without following symlinks out
of the rootfs: a symlinked /etc/passwd is resolved inside the rootfs or ignored.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from hafen.errors import InvalidArgument


@dataclass
class ResolvedUser:
    uid: int = 0
    gid: int = 0
    additional_gids: list[int] = field(default_factory=list)
    home: str = "/"


def _read_in_root(rootfs: Path, path: str) -> list[list[str]]:
    """Colon-separated records of a file inside rootfs, resolving links within rootfs."""
    current = rootfs
    parts = [p for p in path.split("/") if p]
    hops = 0
    while parts:
        part = parts.pop(0)
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > 40:
                return []
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = rootfs
            parts = [p for p in target.split("/") if p] + parts
            continue
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        current = candidate
    try:
        text = current.read_text(errors="replace")
    except OSError:
        return []
    return [line.split(":") for line in text.splitlines() if line and not line.startswith("#")]


def resolve_user(rootfs: Path, spec: str) -> ResolvedUser:
    """``""`` → root; ``name``, ``uid``, ``name:group``, ``uid:gid`` as Docker accepts."""
    user_part, _, group_part = (spec or "0").partition(":")
    passwd = _read_in_root(rootfs, "/etc/passwd")
    groups = _read_in_root(rootfs, "/etc/group")
    resolved = ResolvedUser()
    entry = None
    for rec in passwd:
        if len(rec) >= 7 and (rec[0] == user_part or rec[2] == user_part):
            entry = rec
            break
    if entry is not None:
        resolved.uid, resolved.gid, resolved.home = int(entry[2]), int(entry[3]), entry[5] or "/"
    elif user_part.isdigit():
        resolved.uid = int(user_part)
    else:
        raise InvalidArgument(
            f"unable to find user {user_part}: no matching entries in passwd file"
        )
    if group_part:
        for rec in groups:
            if len(rec) >= 3 and (rec[0] == group_part or rec[2] == group_part):
                resolved.gid = int(rec[2])
                break
        else:
            if not group_part.isdigit():
                raise InvalidArgument(
                    f"unable to find group {group_part}: no matching entries in group file"
                )
            resolved.gid = int(group_part)
    name = entry[0] if entry is not None else None
    if name is not None and not group_part:
        for rec in groups:
            if len(rec) >= 4 and name in rec[3].split(",") and rec[2].isdigit():
                gid = int(rec[2])
                if gid != resolved.gid and gid not in resolved.additional_gids:
                    resolved.additional_gids.append(gid)
    return resolved


def resolve_group(rootfs: Path, group: str) -> int:
    """A ``--group-add`` value: a group name from the image, or a number."""
    for rec in _read_in_root(rootfs, "/etc/group"):
        if len(rec) >= 3 and rec[0] == group:
            return int(rec[2])
    if group.isdigit():
        return int(group)
    raise InvalidArgument(f"unable to find group {group}: no matching entries in group file")
