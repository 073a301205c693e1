"""A writable snapshot's filesystem changes: as a ``Change`` list and as a layer tar.

What ``docker diff`` lists and what ``docker commit`` / a build's ``RUN`` turn into a
layer. Both come from one walk that depends on the snapshotter:

- overlay: the upper dir *is* the diff. An overlay whiteout (a 0/0 character device)
  is a deletion and becomes a ``.wh.<name>`` entry; a directory marked
  ``trusted.overlay.opaque=y`` hides everything below it in the lower layers and gets a
  ``.wh..wh..opq`` entry right after its own header (as Docker's overlay2 driver writes
  it). ``A`` or ``C`` depends on whether the lower layers show the path.
- vfs: the snapshot is a full copy, so it is compared with its parent layer's tree:
  new paths are ``A``, paths whose type, mode, owner, size, mtime, link target or
  xattrs differ are ``C``, paths gone are ``D`` (only the topmost deleted directory).
  A directory with changes below it is ``C`` too, so its metadata travels with the
  layer (Docker's rule).

The tar is streamed in sorted path order with the files' own metadata, so the same
changes always give the same bytes (and DiffID); nothing is buffered whole.
"""

from __future__ import annotations

import os
import stat
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, Protocol

from hafen.errors import InvalidArgument
from hafen.store import ustar
from hafen.store.archive import OPAQUE_MARKER, WHITEOUT_PREFIX, HashingWriter, LayerStats

ChangeKind = Literal["A", "C", "D"]
_OVERLAY_OPAQUE = "trusted.overlay.opaque"
_COPY_CHUNK = 1024 * 1024


@dataclass(frozen=True)
class Change:
    """One changed path, as ``docker diff`` prints it (``path`` is absolute)."""

    kind: ChangeKind
    path: str


class DiffSource(Protocol):
    """What the walk needs from a snapshotter (both ours have it)."""

    name: str

    def upper_dir(self, key: str) -> Path: ...

    def parent(self, key: str) -> str | None: ...

    def layer_dir(self, chain_id: str) -> Path: ...


@dataclass(frozen=True)
class _Entry:
    """A walk result: ``rel`` is slash-separated, relative to the root."""

    kind: ChangeKind
    rel: str
    source: Path | None  # the file to archive; None for a deletion
    opaque: bool = False  # an overlay dir that hides its lower contents


Exclude = Callable[[str], bool]


def changes(snapshotter: DiffSource, key: str, exclude: Exclude | None = None) -> list[Change]:
    """The changes of snapshot ``key`` against its parent chain, sorted by path."""
    out: list[Change] = []
    for entry in _entries(snapshotter, key, exclude):
        out.append(Change(entry.kind, "/" + entry.rel))
        if entry.opaque:
            out.extend(_opaque_deletions(snapshotter, key, entry))
    return out


def export_changes(
    snapshotter: DiffSource, key: str, out: BinaryIO, exclude: Exclude | None = None
) -> LayerStats:
    """Write the changes of snapshot ``key`` as an (uncompressed) layer tar to ``out``.

    ``exclude(rel)`` drops a path (and, for a directory, what is under it); the builder
    uses it for mount points the runtime created. Headers are ustar (PAX records only
    for long names, big numbers and xattrs), owners numeric, mtimes in whole seconds.
    """
    writer = HashingWriter(out)
    tar = _TarOut(writer)
    for entry in _entries(snapshotter, key, exclude):
        tar.entry(entry)
    tar.close()
    return LayerStats(diff_id=writer.digest, size=writer.size)


def _entries(snapshotter: DiffSource, key: str, exclude: Exclude | None) -> Iterator[_Entry]:
    if snapshotter.name == "overlay":
        lowers = getattr(snapshotter, "lower_dirs")(key)  # noqa: B009  (overlay-only)
        return _overlay_entries(snapshotter.upper_dir(key), lowers, exclude)
    if snapshotter.name == "vfs":
        parent = snapshotter.parent(key)
        parent_fs = snapshotter.layer_dir(parent) if parent else None
        return _vfs_entries(snapshotter.upper_dir(key), parent_fs, exclude)
    raise InvalidArgument(f"no change walker for the {snapshotter.name} snapshotter")


# ---------------------------------------------------------------------- walking


def _sorted_children(directory: str) -> list[os.DirEntry[str]]:
    try:
        return sorted(os.scandir(directory), key=lambda e: e.name)
    except FileNotFoundError:
        return []


def _is_whiteout(st: os.stat_result) -> bool:
    return stat.S_ISCHR(st.st_mode) and st.st_rdev == 0


def _is_opaque(path: str) -> bool:
    try:
        return os.getxattr(path, _OVERLAY_OPAQUE, follow_symlinks=False) == b"y"
    except OSError:
        return False


def _lower_has(lowers: list[Path], rel: str) -> bool:
    """Whether the merged lower layers show ``rel`` (whiteouts and opaque dirs honoured)."""
    parts = rel.split("/")
    for layer in lowers:
        current = str(layer)
        hidden_below = False
        for index, part in enumerate(parts):
            current = os.path.join(current, part)
            try:
                st = os.lstat(current)
            except OSError:
                break  # not in this layer: look further down
            if _is_whiteout(st):
                return False
            if index == len(parts) - 1:
                return True
            if not stat.S_ISDIR(st.st_mode):
                return False  # a file over the path's parent hides it below
            if _is_opaque(current):
                hidden_below = True
        if hidden_below:
            return False
    return False


def _overlay_entries(upper: Path, lowers: list[Path], exclude: Exclude | None) -> Iterator[_Entry]:
    def walk(directory: str, prefix: str, parent_new: bool) -> Iterator[_Entry]:
        for entry in _sorted_children(directory):
            rel = prefix + entry.name
            if exclude is not None and exclude(rel):
                continue
            st = entry.stat(follow_symlinks=False)
            if _is_whiteout(st):
                yield _Entry("D", rel, None)
                continue
            existed = not parent_new and _lower_has(lowers, rel)
            is_dir = stat.S_ISDIR(st.st_mode)
            opaque = is_dir and _is_opaque(entry.path)
            yield _Entry("C" if existed else "A", rel, Path(entry.path), opaque=opaque)
            if is_dir:
                yield from walk(entry.path, rel + "/", parent_new or not existed or opaque)

    return walk(str(upper), "", False)


def _opaque_deletions(snapshotter: DiffSource, key: str, entry: _Entry) -> list[Change]:
    """What an opaque directory hides from the lower layers: ``D`` for ``docker diff``."""
    if snapshotter.name != "overlay":
        return []
    lowers: list[Path] = getattr(snapshotter, "lower_dirs")(key)  # noqa: B009
    upper = snapshotter.upper_dir(key) / entry.rel
    names: set[str] = set()
    for layer in lowers:
        d = layer / entry.rel
        if d.is_dir() and not d.is_symlink():
            names.update(c.name for c in _sorted_children(str(d)))
    return [
        Change("D", f"/{entry.rel}/{name}")
        for name in sorted(names)
        if not os.path.lexists(upper / name) and _lower_has(lowers, f"{entry.rel}/{name}")
    ]


def _xattrs(path: str) -> dict[str, bytes]:
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError:
        return {}
    out: dict[str, bytes] = {}
    for name in names:
        if name.startswith("trusted.overlay."):
            continue
        try:
            out[name] = os.getxattr(path, name, follow_symlinks=False)
        except OSError:
            continue
    return out


def _same(a: os.stat_result, b: os.stat_result, a_path: str, b_path: str) -> bool:
    if stat.S_IFMT(a.st_mode) != stat.S_IFMT(b.st_mode):
        return False
    if (a.st_mode, a.st_uid, a.st_gid) != (b.st_mode, b.st_uid, b.st_gid):
        return False
    if stat.S_ISDIR(a.st_mode):
        return _xattrs(a_path) == _xattrs(b_path)
    if a.st_size != b.st_size or a.st_mtime_ns != b.st_mtime_ns or a.st_rdev != b.st_rdev:
        return False
    if stat.S_ISLNK(a.st_mode) and os.readlink(a_path) != os.readlink(b_path):
        return False
    return _xattrs(a_path) == _xattrs(b_path)


def _vfs_entries(fs: Path, parent_fs: Path | None, exclude: Exclude | None) -> Iterator[_Entry]:
    def added(directory: str, prefix: str) -> Iterator[_Entry]:
        for entry in _sorted_children(directory):
            rel = prefix + entry.name
            if exclude is not None and exclude(rel):
                continue
            yield _Entry("A", rel, Path(entry.path))
            if entry.is_dir(follow_symlinks=False):
                yield from added(entry.path, rel + "/")

    def compare(new_dir: str, old_dir: str, prefix: str) -> list[_Entry]:
        new = {e.name: e for e in _sorted_children(new_dir)}
        old = {e.name: e for e in _sorted_children(old_dir)}
        out: list[_Entry] = []
        for name in sorted(new.keys() | old.keys()):
            rel = prefix + name
            if exclude is not None and exclude(rel):
                continue
            n, o = new.get(name), old.get(name)
            if n is None:
                out.append(_Entry("D", rel, None))
                continue
            if o is None:
                out.append(_Entry("A", rel, Path(n.path)))
                if n.is_dir(follow_symlinks=False):
                    out.extend(added(n.path, rel + "/"))
                continue
            n_st, o_st = n.stat(follow_symlinks=False), o.stat(follow_symlinks=False)
            both_dirs = stat.S_ISDIR(n_st.st_mode) and stat.S_ISDIR(o_st.st_mode)
            if both_dirs:
                below = compare(n.path, o.path, rel + "/")
                if below or not _same(n_st, o_st, n.path, o.path):
                    out.append(_Entry("C", rel, Path(n.path)))
                out.extend(below)
            elif not _same(n_st, o_st, n.path, o.path):
                if stat.S_ISDIR(o_st.st_mode) or stat.S_ISDIR(n_st.st_mode):
                    # a type change between dir and non-dir: the old one goes first
                    out.append(_Entry("D", rel, None))
                    out.append(_Entry("A", rel, Path(n.path)))
                    if stat.S_ISDIR(n_st.st_mode):
                        out.extend(added(n.path, rel + "/"))
                else:
                    out.append(_Entry("C", rel, Path(n.path)))
        return out

    if parent_fs is None:
        return added(str(fs), "")
    return iter(compare(str(fs), str(parent_fs), ""))


# ---------------------------------------------------------------------- writing


def _whiteout_name(rel: str) -> str:
    head, _, base = rel.rpartition("/")
    return f"{head}/{WHITEOUT_PREFIX}{base}" if head else WHITEOUT_PREFIX + base


class _TarOut:
    """Tar members written by hand (``store.ustar``): ``tarfile`` spends ~100 µs a member.

    Small writes are gathered into ~1 MiB pieces; a regular file's data is copied from
    the file as it is; hard links within the layer stay hard links (as ``tarfile``
    makes them). Entries ``ustar.header`` does not cover (xattrs, devices, fifos) get
    their header from ``tarfile.TarInfo``.
    """

    def __init__(self, out: HashingWriter) -> None:
        self._out = out
        self._buf = bytearray()
        self._links: dict[tuple[int, int], str] = {}

    def _flush(self) -> None:
        if self._buf:
            self._out.write(bytes(self._buf))
            self._buf.clear()

    def close(self) -> None:
        self._buf += ustar.END
        self._flush()

    def entry(self, entry: _Entry) -> None:
        buf = self._buf
        if entry.source is None:
            buf += ustar.header(_whiteout_name(entry.rel), mode=0o600)
            return
        path = str(entry.source)
        st = os.lstat(path)
        fmt = stat.S_IFMT(st.st_mode)
        mode = stat.S_IMODE(st.st_mode)
        mtime = int(st.st_mtime)
        name = entry.rel
        kind, linkname, size = ustar.REGTYPE, "", 0
        if fmt == stat.S_IFREG:
            size = st.st_size
            if st.st_nlink > 1:
                first = self._links.setdefault((st.st_dev, st.st_ino), name)
                if first != name:
                    kind, linkname, size = ustar.LNKTYPE, first, 0
        elif fmt == stat.S_IFDIR:
            kind, name = ustar.DIRTYPE, name + "/"
        elif fmt == stat.S_IFLNK:
            kind, linkname = ustar.SYMTYPE, os.readlink(path)
        elif fmt not in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            return  # sockets cannot be archived
        xattrs = _xattrs(path)
        if xattrs or fmt in (stat.S_IFCHR, stat.S_IFBLK, stat.S_IFIFO):
            buf += _tarinfo_header(name, st, kind, linkname, size, xattrs)
        else:
            buf += ustar.header(name, mode=mode, size=size, mtime=mtime, kind=kind,
                                linkname=linkname, uid=st.st_uid, gid=st.st_gid)  # fmt: skip
        if size:
            self._data(path, size)
        if entry.opaque:
            buf += ustar.header(f"{entry.rel}/{OPAQUE_MARKER}", mode=mode & 0o777, mtime=mtime,
                                uid=st.st_uid, gid=st.st_gid)  # fmt: skip
        if len(buf) >= _COPY_CHUNK:
            self._flush()

    def _data(self, path: str, size: int) -> None:
        left = size
        with open(path, "rb", buffering=0) as f:
            while left > 0:
                chunk = f.read(min(left, _COPY_CHUNK))
                if not chunk:
                    raise InvalidArgument(f"{path} changed size while it was archived")
                if len(chunk) >= _COPY_CHUNK // 4:
                    self._flush()
                    self._out.write(chunk)
                else:
                    self._buf += chunk
                left -= len(chunk)
        self._buf += ustar.padding(size)


def _tarinfo_header(
    name: str, st: os.stat_result, kind: bytes, linkname: str, size: int, xattrs: dict[str, bytes]
) -> bytes:
    """A header ``ustar.header`` does not write: devices, fifos, xattrs (PAX records)."""
    fmt = stat.S_IFMT(st.st_mode)
    info = tarfile.TarInfo(name)
    info.mode = stat.S_IMODE(st.st_mode)
    info.uid, info.gid = st.st_uid, st.st_gid
    info.mtime = int(st.st_mtime)
    info.size = size
    info.linkname = linkname
    special = {stat.S_IFCHR: tarfile.CHRTYPE, stat.S_IFBLK: tarfile.BLKTYPE,
               stat.S_IFIFO: tarfile.FIFOTYPE}  # fmt: skip
    info.type = special.get(fmt, kind)
    if fmt in (stat.S_IFCHR, stat.S_IFBLK):
        info.devmajor, info.devminor = os.major(st.st_rdev), os.minor(st.st_rdev)
    if xattrs:
        info.pax_headers = {
            f"SCHILY.xattr.{k}": v.decode("utf-8", "surrogateescape") for k, v in xattrs.items()
        }
    return info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
