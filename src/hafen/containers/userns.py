"""Daemon-wide user-namespace remapping (``"userns-remap"`` in daemon.json), as dockerd.

Owns: resolving the remap setting to id ranges from /etc/subuid and /etc/subgid
(``"default"`` means the user ``dockremap``, Docker's name; ``"user"`` or
``"user:group"`` by name or number; hafen never edits those files, it refuses with a
message saying what to add), and shifting a container's rootfs into the range once
(uid u -> start + u), so that root inside the container owns its files. As with
Docker, existing bind-mount sources and volume contents are not shifted, but what the
daemon creates for a remapped container belongs to its root: new volumes' ``_data``
(the volume service's owner), missing ``-v`` sources, and /etc/hostname, hosts and
resolv.conf. ``--userns host`` and ``--privileged`` keep the host's ids.
"""

from __future__ import annotations

import grp
import os
import pwd
from dataclasses import dataclass
from pathlib import Path

from hafen.errors import InvalidConfig
from hafen.oci.spec import IDMap

DEFAULT_REMAP_USER = "dockremap"


@dataclass
class Remap:
    uid_start: int
    uid_count: int
    gid_start: int
    gid_count: int

    def uid_mappings(self) -> list[IDMap]:
        return [IDMap(0, self.uid_start, self.uid_count)]

    def gid_mappings(self) -> list[IDMap]:
        return [IDMap(0, self.gid_start, self.gid_count)]


def _range(path: str, names: set[str], what: str) -> tuple[int, int]:
    try:
        with open(path) as f:
            lines = f.read().splitlines()
    except OSError as e:
        raise InvalidConfig(f"userns-remap: cannot read {path}: {e.strerror}")
    for line in lines:
        parts = line.strip().split(":")
        if len(parts) == 3 and parts[0] in names:
            try:
                return int(parts[1]), int(parts[2])
            except ValueError:
                raise InvalidConfig(f"userns-remap: bad line in {path}: {line!r}")
    raise InvalidConfig(
        f"userns-remap: no subordinate {what} range for {sorted(names)[0]!r} in {path} "
        f"(add a line like '{sorted(names)[0]}:100000:65536')"
    )


def resolve(setting: str, subuid: str = "/etc/subuid", subgid: str = "/etc/subgid") -> Remap:
    """``"default"``, ``"user"`` or ``"user:group"`` -> the ranges to map container ids to."""
    user, _, group = (DEFAULT_REMAP_USER if setting == "default" else setting).partition(":")
    group = group or user
    users = {user}
    groups = {group}
    try:
        entry = pwd.getpwnam(user) if not user.isdigit() else pwd.getpwuid(int(user))
        users |= {entry.pw_name, str(entry.pw_uid)}
    except KeyError:
        pass
    try:
        gentry = grp.getgrnam(group) if not group.isdigit() else grp.getgrgid(int(group))
        groups |= {gentry.gr_name, str(gentry.gr_gid)}
    except KeyError:
        pass
    uid_start, uid_count = _range(subuid, users, "uid")
    gid_start, gid_count = _range(subgid, groups, "gid")
    if uid_count < 1 or gid_count < 1:
        raise InvalidConfig("userns-remap: subordinate id ranges must not be empty")
    return Remap(uid_start, uid_count, gid_start, gid_count)


def shift_rootfs(rootfs: Path, remap: Remap) -> None:
    """Give the rootfs to the remapped root, once (blocking: a worker thread runs it).

    A rootfs whose top directory already belongs to the range is left as it is (a
    restart of the same container).
    """
    top = os.lstat(rootfs)
    if top.st_uid == remap.uid_start and top.st_gid == remap.gid_start:
        return

    def shift(path: str) -> None:
        st = os.lstat(path)
        uid = st.st_uid + remap.uid_start if st.st_uid < remap.uid_count else st.st_uid
        gid = st.st_gid + remap.gid_start if st.st_gid < remap.gid_count else st.st_gid
        mode = st.st_mode
        os.lchown(path, uid, gid)
        # chown clears set-id bits; put them back (not through symlinks)
        if not os.path.islink(path) and mode & 0o6000:
            os.chmod(path, mode & 0o7777)

    for dirpath, dirnames, filenames in os.walk(rootfs):
        shift(dirpath)
        for name in filenames + [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]:
            shift(os.path.join(dirpath, name))


def traversable(path: Path, top: Path) -> None:
    """Let the remapped root search its way down to ``path`` from ``top`` (o+x, as
    dockerd makes its remapped roots 0711): its mounts are made as that user."""
    current = path
    while True:
        mode = os.stat(current).st_mode
        if not mode & 0o001:
            os.chmod(current, (mode & 0o7777) | 0o001)
        if current == top or current.parent == current:
            return
        current = current.parent
