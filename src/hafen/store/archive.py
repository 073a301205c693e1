"""Layer archives: unpacking tar layers safely, and making deterministic ones.

``unpack_layer`` treats every path as hostile: an entry is resolved inside the
destination the way a chroot would resolve it (``..`` clamped at the root, symlinks of
lower entries followed only within the root), so nothing is ever written outside.
Device nodes are created only when asked (privileged use); OCI whiteouts become overlay
whiteouts or deletions depending on the snapshotter. The uncompressed stream is hashed
while it is read, so the DiffID comes for free and nothing is buffered whole.
"""

from __future__ import annotations

import copy
import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

from hafen.errors import InvalidArgument, UnsafePath
from hafen.store.durability import start_writeback

WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"
GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_COPY_CHUNK = 1024 * 1024

WhiteoutMode = Literal["overlay", "vfs"]


@dataclass
class LayerStats:
    diff_id: str  # sha256 of the uncompressed tar
    size: int  # bytes of the uncompressed tar


class HashingWriter:
    """A write-only stream that hashes what passes through it to ``out``."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.size += len(data)
        self._out.write(data)
        return len(data)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Peeked:
    """A stream with its first bytes already read (to sniff the compression)."""

    def __init__(self, head: bytes, raw: BinaryIO) -> None:
        self._head = head
        self._raw = raw

    def read(self, n: int = -1) -> bytes:
        if self._head:
            if n < 0:
                data, self._head = self._head + self._raw.read(), b""
                return data
            data, self._head = self._head[:n], self._head[n:]
            if len(data) < n:
                data += self._raw.read(n - len(data))
            return data
        return self._raw.read(n)

    def readinto(self, buffer: bytearray | memoryview) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def open_layer_stream(raw: BinaryIO) -> BinaryIO:
    """Decompress a layer blob by its magic bytes: gzip, zstd or plain tar."""
    head = raw.read(4)
    peeked = _Peeked(head, raw)
    if head.startswith(GZIP_MAGIC):
        try:  # ISA-L's inflate is ~4x zlib's; the stdlib is the fallback
            from isal import igzip
        except ImportError:
            return gzip.GzipFile(fileobj=peeked, mode="rb")  # type: ignore[call-overload]
        return igzip.IGzipFile(fileobj=peeked, mode="rb")  # type: ignore[return-value]
    if head == ZSTD_MAGIC:
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument(
                "this layer is zstd-compressed and the zstandard module is missing"
            )
        return zstandard.ZstdDecompressor().stream_reader(peeked)  # type: ignore[arg-type,no-any-return,unused-ignore]
    return peeked  # type: ignore[return-value]


def _clean_parts(name: str) -> list[str]:
    """Path components of a tar entry, relative to the root; ``..`` escapes are refused."""
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"refusing archive entry {name!r}: it escapes the destination")
            parts.pop()
            continue
        parts.append(part)
    return parts


def resolve_in_root(root: Path, parts: list[str], follow_last: bool = False) -> Path:
    """The host path of ``parts`` inside ``root``, following symlinks as if chrooted there."""
    current = root
    pending = list(parts)
    hops = 0
    while pending:
        part = pending.pop(0)
        if part == "..":
            current = current.parent if current != root else root
            continue
        if part in ("", "."):
            continue
        candidate = current / part
        if (pending or follow_last) and candidate.is_symlink():
            hops += 1
            if hops > 64:
                raise UnsafePath(f"too many levels of symbolic links under {root}")
            target = os.readlink(candidate)
            if target.startswith("/"):
                current = root
            pending = [p for p in target.split("/") if p] + pending
            continue
        current = candidate
    return current


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif os.path.lexists(path):
        path.unlink()


def _changed(member: tarfile.TarInfo, **fields: object) -> tarfile.TarInfo:
    """A copy of ``member`` with ``fields`` replaced (``TarInfo.replace`` needs Python
    3.11.4; Debian 12's interpreter is 3.11.2)."""
    copied = copy.copy(member)
    for name, value in fields.items():
        setattr(copied, name, value)
    return copied


def _apply_metadata(path: Path, member: tarfile.TarInfo) -> None:
    try:
        os.lchown(path, member.uid, member.gid)
    except OSError:
        pass
    if not path.is_symlink():  # also a hard link to a symlink: chmod would follow it
        os.chmod(path, stat.S_IMODE(member.mode))
    for key, value in member.pax_headers.items():
        if key.startswith("SCHILY.xattr."):
            try:
                os.setxattr(
                    path, key[13:], value.encode("utf-8", "surrogateescape"), follow_symlinks=False
                )
            except OSError:
                pass  # e.g. security.* refused by the filesystem: not fatal, as in Docker
    if not member.isdir():
        os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)


class _LayerReader:
    """The uncompressed layer stream, read forward only in large slices and hashed as it
    passes (the DiffID).

    ``tell`` and forward ``seek`` let ``tarfile`` parse it in its random-access mode
    (stream mode reads 10 KiB at a time through a Python buffer); file data is handed
    out as views of the slice read, so it is written without being copied again."""

    def __init__(self, raw: BinaryIO, slice_size: int = _COPY_CHUNK) -> None:
        self._raw = raw
        self._slice = slice_size
        self._buf = b""
        self._view = memoryview(self._buf)
        self._pos = 0
        self._base = 0  # stream offset of _buf[0]
        self.hash = hashlib.sha256()
        self.size = 0

    def _fill(self) -> bool:
        data = self._raw.read(self._slice)
        if not data:
            return False
        self.hash.update(data)
        self.size += len(data)
        self._base += len(self._buf)
        self._buf, self._view, self._pos = data, memoryview(data), 0
        return True

    def tell(self) -> int:
        return self._base + self._pos

    def read(self, n: int = -1) -> bytes:
        if n < 0:
            n = 1 << 62
        parts: list[bytes] = []
        while n > 0:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    break
                continue
            take = min(n, avail)
            parts.append(self._buf[self._pos : self._pos + take])
            self._pos += take
            n -= take
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def views(self, n: int) -> Iterator[memoryview]:
        """The next ``n`` bytes (fewer at the end of the stream) as views, without copies."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if not avail:
                if not self._fill():
                    return
                continue
            take = min(n, avail)
            yield self._view[self._pos : self._pos + take]
            self._pos += take
            n -= take

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        if whence == os.SEEK_CUR:
            offset += self.tell()
        elif whence != os.SEEK_SET:
            raise tarfile.ReadError("a layer stream can only be read forward")
        skip = offset - self.tell()
        if skip < 0:
            raise tarfile.ReadError("a layer stream can only be read forward")
        for _ in self.views(skip):
            pass
        return self.tell()

    def drain(self) -> None:
        self._pos = len(self._buf)
        while self._fill():
            self._pos = len(self._buf)

    @property
    def digest(self) -> str:
        return "sha256:" + self.hash.hexdigest()


class _Parents:
    """Resolved parent directories of entries, cached for the unpack of one layer.

    Resolution depends only on which paths are symlinks, so the cache is dropped
    whenever anything is removed or a link is created; in between, a parent that was
    resolved (and made) once needs no more ``lstat`` walks or ``mkdir`` calls."""

    def __init__(self, dest: Path) -> None:
        self.dest = dest
        self._known: dict[tuple[str, ...], Path] = {}

    def get(self, parts: list[str]) -> Path:
        """The directory ``parts`` resolve to, made if missing."""
        key = tuple(parts)
        path = self._known.get(key)
        if path is None:
            path = resolve_in_root(self.dest, parts, follow_last=True)
            path.mkdir(parents=True, exist_ok=True)
            self._known[key] = path
        return path

    def invalidate(self) -> None:
        self._known.clear()


def unpack_layer(
    stream: BinaryIO,
    dest: Path,
    *,
    whiteouts: WhiteoutMode = "overlay",
    allow_devices: bool = False,
) -> LayerStats:
    """Unpack an (uncompressed) tar stream into ``dest``; the DiffID of what was read.

    Nothing is fsynced here: the caller makes the result durable (one ``syncfs``) before
    it publishes it."""
    reader = _LayerReader(stream)
    dest.mkdir(parents=True, exist_ok=True)
    parents = _Parents(dest)
    written: set[str] = set()
    opaque_dirs: list[list[str]] = []
    dir_times: list[tuple[Path, int]] = []
    try:
        archive = tarfile.open(fileobj=reader, mode="r:")  # type: ignore[call-overload]  # noqa: SIM115
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid layer archive: {e}")
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as e:
        raise InvalidArgument(f"invalid layer archive: {e}")
    try:
        for member in archive:
            parts = _clean_parts(member.name)
            if not parts:
                continue
            base = parts[-1]
            # the parent is followed to its end: a symlink `link -> /` must not let
            # `link/x` (or `link/.wh.x`) reach the host
            if base == OPAQUE_MARKER:
                if whiteouts == "overlay":
                    os.setxattr(parents.get(parts[:-1]), "trusted.overlay.opaque", b"y")
                else:
                    opaque_dirs.append(parts[:-1])
                continue
            if base.startswith(WHITEOUT_PREFIX):
                hidden = base[len(WHITEOUT_PREFIX) :]
                if hidden in ("", ".", ".."):  # `.wh..` would remove the parent's parent
                    raise UnsafePath(f"refusing archive entry {member.name!r}: bad whiteout")
                if whiteouts == "overlay":
                    target = parents.get(parts[:-1]) / hidden
                else:  # vfs: only a deletion, nothing to make
                    target = resolve_in_root(dest, parts[:-1], follow_last=True) / hidden
                if os.path.lexists(target):
                    _remove(target)
                    parents.invalidate()
                if whiteouts == "overlay":
                    os.mknod(target, stat.S_IFCHR | 0o000, os.makedev(0, 0))
                continue
            path = parents.get(parts[:-1]) / base
            written.add("/".join(parts))
            if member.isreg() and not member.sparse:
                _write_file(reader, member, path, parents)
                continue
            if os.path.lexists(path) and not (member.isdir() and _is_real_dir(path)):
                parents.invalidate()
            _unpack_member(archive, member, path, dest, allow_devices)
            if member.issym() or member.islnk():
                parents.invalidate()
            if member.isdir():
                dir_times.append((path, member.mtime))
            if os.path.lexists(path):
                _apply_metadata(path, member)
        reader.drain()  # the DiffID covers the end-of-archive padding too
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        # a truncated or corrupt compressed stream fails in the decompressor, not in tarfile
        raise InvalidArgument(f"invalid layer archive: {e}")
    finally:
        archive.close()
    for dir_parts in opaque_dirs:  # vfs: hide what lower layers had in an opaque dir
        directory = resolve_in_root(dest, dir_parts, follow_last=True)
        prefix = "/".join(dir_parts)
        if directory.is_dir():
            for child in directory.iterdir():
                rel = f"{prefix}/{child.name}" if prefix else child.name
                if rel not in written:
                    _remove(child)
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)
    return LayerStats(diff_id=reader.digest, size=reader.size)


def _is_real_dir(path: Path) -> bool:
    return path.is_dir() and not path.is_symlink()


_EARLY_WRITEBACK = 256 * 1024  # files this large start their writeback when written
_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def _write_file(
    reader: _LayerReader, member: tarfile.TarInfo, path: Path, parents: _Parents
) -> None:
    """A regular file: its data straight from the stream's slices, its metadata set on
    the open descriptor (no path lookups)."""
    try:
        fd = os.open(path, _CREATE, 0o600)
    except FileExistsError:  # a later layer entry replaces an earlier one
        _remove(path)
        parents.invalidate()
        fd = os.open(path, _CREATE, 0o600)
    try:
        reader.seek(member.offset_data)
        left = member.size
        for view in reader.views(left):
            while view:
                done = os.write(fd, view)
                view = view[done:]
                left -= done
        if left:
            raise tarfile.ReadError(f"unexpected end of data in {member.name!r}")
        try:
            os.fchown(fd, member.uid, member.gid)
        except OSError:
            pass
        os.fchmod(fd, stat.S_IMODE(member.mode))
        for key, value in member.pax_headers.items():
            if key.startswith("SCHILY.xattr."):
                try:
                    os.setxattr(fd, key[13:], value.encode("utf-8", "surrogateescape"))
                except OSError:
                    pass  # e.g. security.* refused by the filesystem: not fatal, as in Docker
        os.utime(fd, (member.mtime, member.mtime))
        if member.size >= _EARLY_WRITEBACK:
            start_writeback(fd)
    finally:
        os.close(fd)


def _unpack_member(
    archive: tarfile.TarFile, member: tarfile.TarInfo, path: Path, dest: Path, allow_devices: bool
) -> None:
    if member.isdir():
        if os.path.lexists(path) and not (path.is_dir() and not path.is_symlink()):
            _remove(path)
        path.mkdir(exist_ok=True)
        return
    if os.path.lexists(path):
        _remove(path)
    if member.isreg():
        source = archive.extractfile(member)
        assert source is not None
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "wb") as out:
            shutil.copyfileobj(source, out, _COPY_CHUNK)
    elif member.issym():
        os.symlink(member.linkname, path)
    elif member.islnk():
        target = resolve_in_root(dest, _clean_parts(member.linkname))
        # lexists: the target may itself be a symlink (linked as such, never followed)
        if not os.path.lexists(target) or (target.is_dir() and not target.is_symlink()):
            raise UnsafePath(
                f"refusing hard link {member.name!r} -> {member.linkname!r}: the target is not a "
                "file inside the layer"
            )
        os.link(target, path, follow_symlinks=False)
    elif member.isfifo():
        os.mkfifo(path)
    elif (member.ischr() or member.isblk()) and allow_devices:
        # without allow_devices, device nodes are skipped: no host devices unprivileged
        kind = stat.S_IFCHR if member.ischr() else stat.S_IFBLK
        os.mknod(path, kind | 0o600, os.makedev(member.devmajor, member.devminor))


def tar_directory(
    src: Path,
    out: BinaryIO,
    *,
    mtime: int | None = None,
    owner: tuple[int, int] | None = None,
    exclude: Callable[[str], bool] | None = None,
) -> LayerStats:
    """Write ``src`` as a tar stream (sorted, optionally with fixed mtime/owner) to ``out``."""
    writer = HashingWriter(out)
    with tarfile.open(fileobj=writer, mode="w|", format=tarfile.PAX_FORMAT) as archive:  # type: ignore[call-overload]
        for rel in _walk_sorted(src):
            if exclude and exclude(rel):
                continue
            path = src / rel
            info = archive.gettarinfo(str(path), arcname=rel)
            if mtime is not None:
                info.mtime = mtime
            if owner is not None:
                info.uid, info.gid = owner
                info.uname = info.gname = "root" if owner == (0, 0) else ""
            if info.isreg():
                with open(path, "rb") as f:
                    archive.addfile(info, f)
            else:
                archive.addfile(info)
    return LayerStats(diff_id=writer.digest, size=writer.size)


def _walk_sorted(src: Path) -> list[str]:
    out: list[str] = []

    def walk(directory: Path, prefix: str) -> None:
        for entry in sorted(os.scandir(directory), key=lambda e: e.name):
            rel = f"{prefix}{entry.name}"
            out.append(rel)
            if entry.is_dir(follow_symlinks=False):
                walk(Path(entry.path), rel + "/")

    walk(src, "")
    return out


def unpack_into(
    stream: BinaryIO,
    root: Path,
    at: str = "/",
    *,
    owner: tuple[int, int] | None = None,
    rename_top: tuple[str, str] | None = None,
    no_overwrite_dir_non_dir: bool = False,
) -> None:
    """Extract a plain tar (``cp``, ``put_archive``) under ``root``/``at``.

    Paths resolve as if chrooted in ``root``: no entry, symlink or hard link reaches
    outside it, and entries may not climb above ``at``. Unlike layers, ``.wh.`` names are
    ordinary files and device nodes are skipped. ``owner`` replaces the archive's uid/gid;
    ``rename_top`` renames a leading path component (docker cp's copy-to-a-new-name);
    ``no_overwrite_dir_non_dir`` refuses replacing a directory with a non-directory and
    the reverse.
    """
    base = _clean_parts(at)
    try:
        archive = tarfile.open(fileobj=stream, mode="r|*")  # noqa: SIM115
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid tar archive: {e}")
    dir_times: list[tuple[Path, int]] = []
    try:
        for member in archive:
            parts = _clean_parts(member.name)
            if not parts:
                continue
            if rename_top is not None and parts[0] == rename_top[0]:
                parts[0] = rename_top[1]
            parent = resolve_in_root(root, base + parts[:-1], follow_last=True)
            parent.mkdir(parents=True, exist_ok=True)
            path = parent / parts[-1]
            if no_overwrite_dir_non_dir and os.path.lexists(path):
                existing_dir = path.is_dir() and not path.is_symlink()
                if existing_dir != member.isdir():
                    raise InvalidArgument(
                        f"cannot overwrite {'directory' if existing_dir else 'non-directory'} "
                        f"{'/'.join(base + parts)!r} with "
                        f"{'directory' if member.isdir() else 'non-directory'}"
                    )
            if member.islnk():
                member = _changed(member, linkname="/".join(base + _clean_parts(member.linkname)))
            _unpack_member(archive, member, path, root, allow_devices=False)
            if not os.path.lexists(path):
                continue
            if owner is not None:
                member = _changed(member, uid=owner[0], gid=owner[1])
            _apply_metadata(path, member)
            if member.isdir():
                dir_times.append((path, int(member.mtime)))
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InvalidArgument(f"invalid tar archive: {e}")
    finally:
        archive.close()
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)


def tar_path(path: Path, name: str, out: BinaryIO) -> None:
    """Write ``path`` (a file, or a directory recursively; links never followed) as a tar
    whose top entry is ``name`` — what ``docker cp`` from a container produces."""
    with tarfile.open(fileobj=out, mode="w|", format=tarfile.PAX_FORMAT) as archive:
        entries = [(path, name)]
        if path.is_dir() and not path.is_symlink():
            entries += [(path / rel, f"{name}/{rel}") for rel in _walk_sorted(path)]
        for host, arcname in entries:
            try:
                info = archive.gettarinfo(str(host), arcname=arcname)
            except OSError:
                continue  # vanished while we walked (a running container)
            if info is None:  # sockets: not archivable
                continue
            if info.isreg():
                try:
                    with open(host, "rb") as f:
                        archive.addfile(info, f)
                except OSError:
                    continue
            else:
                archive.addfile(info)
