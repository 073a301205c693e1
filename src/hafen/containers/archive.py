"""Files in and out of a container's filesystem (``docker cp``, the archive API).

A running container's root is its mounted rootfs; a stopped one's snapshot is mounted
for the duration of the copy (under the container's lock, so a start waits). Paths are
resolved as if chrooted in that root (``store.archive``): a symlink in the container
never leads to the host, and an archive never writes outside the root.
"""

from __future__ import annotations

import contextlib
import os
import posixpath
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from hafen.errors import InvalidArgument, NotFound
from hafen.store._mount import is_mount_point
from hafen.store.archive import _clean_parts, resolve_in_root, tar_path, unpack_into

if TYPE_CHECKING:
    from hafen.containers.model import Container
    from hafen.containers.service import ContainerService


@dataclass
class PathStat:
    """Docker's ``X-Docker-Container-Path-Stat``: name, size, Go file mode, mtime, link."""

    name: str
    size: int
    mode: int
    mtime: str
    link_target: str


def go_file_mode(st_mode: int) -> int:
    """A Go ``os.FileMode`` from a POSIX mode (what Docker puts in the stat header)."""
    mode = stat.S_IMODE(st_mode) & 0o777
    kinds = {
        stat.S_IFDIR: 1 << 31,
        stat.S_IFLNK: 1 << 27,
        stat.S_IFIFO: 1 << 25,
        stat.S_IFSOCK: 1 << 24,
        stat.S_IFBLK: 1 << 26,
        stat.S_IFCHR: (1 << 26) | (1 << 21),
    }
    mode |= kinds.get(stat.S_IFMT(st_mode), 0)
    if st_mode & stat.S_ISUID:
        mode |= 1 << 23
    if st_mode & stat.S_ISGID:
        mode |= 1 << 22
    if st_mode & stat.S_ISVTX:
        mode |= 1 << 20
    return mode


class ContainerFiles:
    """Stat, read (as tar) and write (from tar) paths inside containers."""

    def __init__(self, service: ContainerService) -> None:
        self.service = service

    @contextlib.contextmanager
    def root(self, c: Container) -> Iterator[Path]:
        """The container's root filesystem on the host, mounted while inside (worker thread)."""
        rootfs = self.service._state_dir(c) / "rootfs"
        if c.state.running and is_mount_point(rootfs):
            yield rootfs
            return
        snapshotter = self.service.snapshotter
        tmp = Path(tempfile.mkdtemp(prefix="cp-", dir=self.service.options.exec_root))
        try:
            snapshotter.mount(c.snapshot_key, tmp)
            try:
                yield tmp
            finally:
                snapshotter.unmount(tmp)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    @staticmethod
    def mount_for(c: Container, root: Path, parts: list[str]) -> tuple[Path, list[str]]:
        """The filesystem that holds ``parts``: the rootfs, or the source of the bind,
        volume or /etc file mounted over it (the longest match), and the rest of the path."""
        mounts = {
            "etc/hostname": c.hostname_path,
            "etc/hosts": c.hosts_path,
            "etc/resolv.conf": c.resolv_conf_path,
        }
        for m in c.mount_points:
            if m.type in ("bind", "volume") and m.source:
                mounts["/".join(_clean_parts(m.destination))] = m.source
        joined = "/".join(parts)
        best = ""
        for dest in mounts:
            if dest and (joined == dest or joined.startswith(dest + "/")) and len(dest) > len(best):
                best = dest
        if not best or not mounts[best]:
            return root, parts
        return Path(mounts[best]), parts[len(best.split("/")) :]

    def resolve(self, c: Container, root: Path, path: str) -> Path:
        """The host path of ``path`` in the container; the last link is not followed,
        unless the path ends in ``/`` or ``/.`` (docker cp's rule)."""
        if not path:
            raise InvalidArgument("Path cannot be empty")
        if not path.startswith("/"):
            path = "/" + path
        follow = path.endswith("/") or path.endswith("/.")
        parts = _clean_parts(posixpath.normpath(path))
        base, rest = self.mount_for(c, root, parts)
        host = resolve_in_root(base, rest, follow_last=follow) if rest else base
        if not os.path.lexists(host):
            raise NotFound(f"Could not find the file {path} in container {c.name}")
        return host

    def stat(self, c: Container, root: Path, path: str) -> PathStat:
        host = self.resolve(c, root, path)
        st = os.lstat(host)
        from datetime import UTC, datetime

        mtime = datetime.fromtimestamp(st.st_mtime, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        link = os.readlink(host) if stat.S_ISLNK(st.st_mode) else ""
        name = posixpath.basename(posixpath.normpath("/" + path)) or "/"
        return PathStat(name, st.st_size, go_file_mode(st.st_mode), mtime, link)

    def read(self, c: Container, root: Path, path: str, out: BinaryIO) -> None:
        """Tar of ``path`` into ``out`` (worker thread)."""
        host = self.resolve(c, root, path)
        name = posixpath.basename(posixpath.normpath("/" + path)) or "."
        tar_path(host, name, out)

    def write(
        self,
        c: Container,
        root: Path,
        path: str,
        stream: BinaryIO,
        no_overwrite_dir_non_dir: bool,
        copy_uid_gid: bool,
    ) -> None:
        """Extract a tar into the directory ``path`` (worker thread)."""
        host = self.resolve(c, root, path)
        parts = _clean_parts(posixpath.normpath("/" + path))
        base, rest = self.mount_for(c, root, parts)
        if not host.is_dir():
            host = resolve_in_root(base, rest, follow_last=True)
            if not host.is_dir():
                raise InvalidArgument(f"extraction point is not a directory: {path}")
        if base == root and c.host_config.read_only_rootfs:
            raise InvalidArgument("container rootfs is marked read-only")
        at = "/" + str(host.relative_to(base)) if host != base else "/"
        unpack_into(
            stream,
            base,
            at,
            owner=None if copy_uid_gid else (0, 0),
            no_overwrite_dir_non_dir=no_overwrite_dir_non_dir,
        )


__all__ = ["ContainerFiles", "PathStat", "go_file_mode"]
