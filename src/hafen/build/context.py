"""The build context: a tar stream received once, indexed as it arrives, unpacked on demand.

``ContextReceiver`` takes the stream chunk by chunk (plain, gzip, bzip2, xz or zstd),
writes the plain tar to one spool file and parses its headers on the way
(``hafen.store.ustar``), hashing every file's data from the same buffer: when the last
byte is in, the index (path → kind, mode, digest, data offset) answers every COPY cache
key without unpacking anything. ``.dockerignore`` is then applied to the index and the
Dockerfile read from it. Files are unpacked (with the store's hostile-archive rules:
nothing lands outside the directory) only when a step needs them as files.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import hashlib
import lzma
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound, UnsafePath
from hafen.store.archive import GZIP_MAGIC, ZSTD_MAGIC, _clean_parts, resolve_in_root
from hafen.store.ustar import DIRTYPE, LNKTYPE, REGTYPE, SYMTYPE, DataSink, Member, TarParser


class _PaddedTar:
    """A tar stream completed at its end: the docker CLI sends the context without the
    end-of-archive blocks (and without the last block's padding) when it adds a Dockerfile
    from outside the context, and dockerd accepts that; so do we."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw
        self._size = 0
        self._tail: bytes | None = None

    def read(self, n: int = -1) -> bytes:
        if self._tail is None:
            data = self._raw.read(n)
            if data:
                self._size += len(data)
                return data
            self._tail = b"\0" * (-self._size % 512) + b"\0" * 1024
        if n < 0:
            data, self._tail = self._tail, b""
        else:
            data, self._tail = self._tail[:n], self._tail[n:]
        return data


def extract_context(
    stream: BinaryIO,
    root: Path,
    keep: Callable[[str], bool] | None = None,
    appended: bool = False,
) -> None:
    """Unpack a context tar into the fresh directory ``root``, confined to it.

    Faster than a layer unpack (a context has no whiteouts, owners or xattrs that matter:
    COPY sets its own owner): paths are joined directly unless they pass through a
    symlink the archive itself created, which is then resolved inside ``root``.
    ``appended``: the tar is a synced spool, tars one after another (each with its
    end-of-archive blocks), where a later member replaces an earlier one of its path.
    """
    symlinks: set[str] = set()
    dir_times: list[tuple[Path, int]] = []
    try:
        archive = tarfile.open(fileobj=stream, mode="r|", ignore_zeros=appended)  # noqa: SIM115
    except tarfile.TarError as e:
        raise InvalidArgument(f"invalid build context archive: {e}")
    try:
        for member in archive:
            parts = _clean_parts(member.name)
            if not parts or (keep is not None and not keep("/".join(parts))):
                continue
            prefixes = ["/".join(parts[:i]) for i in range(1, len(parts))]
            if symlinks and any(p in symlinks for p in prefixes):
                parent = resolve_in_root(root, parts[:-1], follow_last=True)
            else:
                parent = root.joinpath(*parts[:-1])
            parent.mkdir(parents=True, exist_ok=True)
            path = parent / parts[-1]
            mode = stat.S_IMODE(member.mode)
            if member.isdir():
                if os.path.lexists(path) and not (path.is_dir() and not path.is_symlink()):
                    os.unlink(path)
                path.mkdir(exist_ok=True)
                os.chmod(path, mode)
                dir_times.append((path, int(member.mtime)))
                continue
            if os.path.lexists(path):
                if path.is_dir() and not path.is_symlink():
                    shutil.rmtree(path)
                else:
                    os.unlink(path)
            if member.isreg():
                source = archive.extractfile(member)
                assert source is not None
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
                with os.fdopen(fd, "wb") as out:
                    shutil.copyfileobj(source, out, 1024 * 1024)
                os.chmod(path, mode)
            elif member.issym():
                os.symlink(member.linkname, path)
                symlinks.add("/".join(parts))
            elif member.islnk():
                target = resolve_in_root(root, _clean_parts(member.linkname))
                if not target.is_file() or target.is_symlink():
                    raise UnsafePath(f"refusing hard link {member.name!r} -> {member.linkname!r}")
                os.link(target, path, follow_symlinks=False)
            else:
                continue  # devices and fifos have no place in a build context
            os.utime(path, (member.mtime, member.mtime), follow_symlinks=False)
    except (tarfile.TarError, EOFError, zlib.error, gzip.BadGzipFile) as e:
        raise InvalidArgument(f"invalid build context archive: {e}")
    finally:
        archive.close()
    for path, mtime in reversed(dir_times):
        os.utime(path, (mtime, mtime), follow_symlinks=False)


@dataclass(frozen=True)
class ContextEntry:
    """One path of the context tar, as indexed without unpacking it."""

    kind: int  # stat.S_IFREG / S_IFDIR / S_IFLNK
    mode: int
    digest: str  # sha256 hex of a file's content; the target of a symlink
    offset: int  # where a file's data starts in the tar (0: a hard link, no data of its own)
    size: int
    mtime: int = 0


class BuildContext:
    """The context: a plain tar on disk, indexed; unpacked only when a step needs files.

    A fully cached build never writes the context's files: COPY/ADD cache keys come from
    the index (``sources_digest``), the same digests a directory walk would give.
    """

    def __init__(
        self,
        tar_path: Path | None,
        work_dir: Path,
        dockerfile: str,
        dockerfile_name: str,
        ignore: IgnoreRules,
        index: dict[str, ContextEntry],
    ) -> None:
        self.tar_path = tar_path
        self.work_dir = work_dir
        self.dockerfile = dockerfile
        self.dockerfile_name = dockerfile_name
        self.ignore = ignore
        self.index = index
        self.appended = False  # a synced spool (see ``hafen.build.contextsync``)
        # called at close instead of removing the spool: a synced one goes back to its cache
        self.release: Callable[[], None] | None = None
        self._root: Path | None = None
        self._lock = threading.Lock()

    @property
    def root(self) -> Path:
        """The unpacked context (made on first use, blocking: call it in a worker thread)."""
        with self._lock:
            if self._root is None:
                root = Path(tempfile.mkdtemp(dir=self.work_dir, prefix="context-"))
                try:
                    if self.tar_path is not None:
                        with open(self.tar_path, "rb") as f:
                            extract_context(
                                cast(BinaryIO, _PaddedTar(f)),
                                root,
                                keep=self.index.__contains__,
                                appended=self.appended,
                            )
                except BaseException:
                    shutil.rmtree(root, ignore_errors=True)
                    raise
                self._root = root
            return self._root

    def sources_digest(self, names: list[str], exclude: IgnoreRules | None) -> str | None:
        """The digest ``copy.sources_digest`` would give for these sources, from the index;
        None when a source passes through a symlink (then the files are needed)."""
        from hafen.build.copy import digest_entries, expand_names

        found = expand_names(self.index, names, exclude)
        if found is None:
            return None
        return digest_entries(self.index, found, exclude)

    def close(self) -> None:
        if self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
        if self.release is not None:
            self.release()
        elif self.tar_path is not None:
            self.tar_path.unlink(missing_ok=True)


def _read_member(tar_path: Path, entry: ContextEntry) -> bytes:
    with open(tar_path, "rb") as f:
        f.seek(entry.offset)
        return f.read(entry.size)


def _decompressor(head: bytes) -> Callable[[bytes], bytes] | None:
    """An incremental decompressor for a context that starts with ``head``; None: plain."""
    if head.startswith(GZIP_MAGIC):
        return _Multi(lambda: zlib.decompressobj(16 + zlib.MAX_WBITS))
    if head.startswith(b"BZh"):
        return _Multi(bz2.BZ2Decompressor)
    if head.startswith(b"\xfd7zXZ\x00"):
        return _Multi(lzma.LZMADecompressor)
    if head.startswith(ZSTD_MAGIC):
        try:
            import zstandard
        except ImportError:
            raise InvalidArgument(
                "this build context is zstd-compressed and the zstandard module is missing"
            )
        return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[no-any-return,unused-ignore]
    return None


class _Multi:
    """A stream decompressor that goes on across concatenated members (``cat a.gz b.gz``)."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._obj = make()

    def __call__(self, data: bytes) -> bytes:
        out = []
        while data:
            out.append(self._obj.decompress(data))
            if not self._obj.eof:
                break
            data = self._obj.unused_data
            if not data.strip(b"\0"):
                break  # trailing padding after the last member
            self._obj = self._make()
        return b"".join(out)

    def check_complete(self) -> None:
        if not self._obj.eof:
            raise InvalidArgument("invalid build context archive: compressed data cut short")


class ContextReceiver:
    """Takes a context tar as it arrives: one pass writes it to disk and indexes it.

    ``feed`` (blocking, for a worker thread) decompresses if needed, appends to the
    spool file and parses the headers as they go by, hashing each file's data from the
    same buffer: by the time the last byte is in, every COPY cache key can be computed.
    ``finish`` reads the Dockerfile and ``.dockerignore`` and returns the context;
    ``abort`` removes what was written.
    """

    def __init__(self, work_dir: Path, base: SyncBase | None = None) -> None:
        work_dir.mkdir(parents=True, exist_ok=True)
        self.work_dir = work_dir
        self._base_size = 0
        self._index: dict[str, ContextEntry] = {}
        self._delivered: set[str] = set()  # paths the stream itself carried
        if base is None:
            fd, name = tempfile.mkstemp(dir=work_dir, prefix="context-", suffix=".tar")
            self.tar_path = Path(name)
        else:
            # the delta goes after the spool's members: theirs keep their offsets
            self.tar_path = base.tar_path
            fd = os.open(base.tar_path, os.O_WRONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
            try:
                os.ftruncate(fd, base.size)
                os.lseek(fd, base.size, os.SEEK_SET)
            except OSError:
                os.close(fd)
                raise
            self._base_size = base.size
            self._index = _seed_index(base.index, base.unchanged)
        self._out = os.fdopen(fd, "wb", buffering=0)
        self._head = b""
        self._decompress: Callable[[bytes], bytes] | None = None
        self._started = False
        self._size = self._base_size
        self._parser = TarParser(self._member)
        self._files: dict[str, tuple[int, Any, int, int, int]] = {}  # rel → mode, hash, …
        self._links: dict[str, tuple[int, str, int]] = {}  # hard link → mode, target, mtime
        self.raw_index: dict[str, ContextEntry] = {}  # the index before .dockerignore

    def _member(self, member: Member) -> DataSink | None:
        parts = _clean_parts(member.name)
        if not parts:
            return None
        rel = "/".join(parts)
        self._delivered.add(rel)
        index = self._index
        for i in range(1, len(parts)):  # parents the tar left implicit
            parent = "/".join(parts[:i])
            if parent not in index:  # mtime -1: none given, it stays the time it is made
                index[parent] = ContextEntry(stat.S_IFDIR, 0o755, "", 0, 0, -1)
        self._files.pop(rel, None)
        self._links.pop(rel, None)
        mode = stat.S_IMODE(member.mode)
        kind = member.kind
        if kind == DIRTYPE:
            index[rel] = ContextEntry(stat.S_IFDIR, mode, "", 0, 0, member.mtime)
        elif kind == SYMTYPE:
            index[rel] = ContextEntry(stat.S_IFLNK, mode, member.linkname, 0, 0, member.mtime)
        elif kind == REGTYPE:
            h = hashlib.sha256()
            offset = self._base_size + member.offset_data
            self._files[rel] = (mode, h, offset, member.size, member.mtime)
            index[rel] = _PENDING
            return h.update
        elif kind == LNKTYPE:
            target = "/".join(_clean_parts(member.linkname))
            self._links[rel] = (mode, target, member.mtime)
            index[rel] = _PENDING
        else:
            index.pop(rel, None)  # devices and fifos have no place in a build context
        return None

    def feed(self, data: bytes) -> None:
        """The next bytes of the (possibly compressed) context stream."""
        if not self._started:
            self._head += data
            if len(self._head) < 6:
                return
            data, self._head = self._head, b""
            self._start(data)
        self._plain(self._inflate(data))

    def _inflate(self, data: bytes) -> bytes:
        if self._decompress is None:
            return data
        try:
            return self._decompress(data)
        except (zlib.error, lzma.LZMAError, OSError, EOFError, ValueError) as e:
            raise InvalidArgument(f"invalid build context archive: {e}") from None

    def _start(self, head: bytes) -> None:
        self._started = True
        self._decompress = _decompressor(head)

    def _plain(self, data: bytes) -> None:
        if not data:
            return
        self._out.write(data)
        self._size += len(data)
        try:
            self._parser.feed(data)
        except InvalidArgument as e:
            raise InvalidArgument(f"invalid build context archive: {e.message}") from None
        except (ValueError, UnicodeError) as e:
            raise InvalidArgument(f"invalid build context archive: {e}") from None

    @property
    def size(self) -> int:
        """Bytes written to the spool (with what it held before an append)."""
        return self._size

    def finish(
        self,
        dockerfile_name: str = "Dockerfile",
        dockerfile_text: str | None = None,
        expected: Collection[str] = (),
    ) -> BuildContext:
        """The stream is complete: the context, its Dockerfile read (blocking).

        ``expected``: paths a synced stream had to carry; one missing is an error.
        """
        try:
            if not self._started and self._head:
                head, self._head = self._head, b""
                self._start(head)
                self._plain(self._inflate(head))
            if isinstance(self._decompress, _Multi):
                self._decompress.check_complete()
            if self._size % 512:  # a synced spool's next append starts on a block
                pad = 512 - self._size % 512
                self._out.write(b"\0" * pad)
                self._size += pad
            self._out.close()
            missing = [rel for rel in expected if rel not in self._delivered]
            if missing:
                raise InvalidArgument(
                    f"the build context stream lacks {missing[0]!r}, which the context "
                    f"sync asked for ({len(missing)} missing)"
                )
            if self._size:
                try:
                    self._parser.close()
                except InvalidArgument as e:
                    raise InvalidArgument(f"invalid build context archive: {e.message}") from None
            index = self._index
            for rel, (mode, h, offset, size, mtime) in self._files.items():
                index[rel] = ContextEntry(stat.S_IFREG, mode, h.hexdigest(), offset, size, mtime)
            for rel, (mode, target, mtime) in self._links.items():
                entry = index.get(target)
                if entry is not None and entry.kind == stat.S_IFREG and entry is not _PENDING:
                    index[rel] = ContextEntry(stat.S_IFREG, mode, entry.digest, 0, entry.size,
                                              mtime)  # fmt: skip
                else:
                    index.pop(rel, None)
            tar_path = self.tar_path if self._size else None
            if tar_path is None:
                self.tar_path.unlink(missing_ok=True)
            self.raw_index = dict(index)
            ctx = _make_context(tar_path, self.work_dir, index, dockerfile_name, dockerfile_text)
            ctx.appended = bool(self._base_size)
            return ctx
        except BaseException:
            self.abort()
            raise

    def abort(self) -> None:
        """Give up: the spool file goes (a synced one too: the next build sends all)."""
        with contextlib.suppress(OSError):
            self._out.close()
        self.tar_path.unlink(missing_ok=True)


@dataclass(frozen=True)
class SyncBase:
    """A cached spool a synced stream is appended to: its members' end, their index,
    and the paths of it that are still the client's."""

    tar_path: Path
    size: int
    index: dict[str, ContextEntry]
    unchanged: Collection[str]


def _seed_index(
    base: dict[str, ContextEntry], unchanged: Collection[str]
) -> dict[str, ContextEntry]:
    """The entries an append starts from: the unchanged paths and the parents they need."""
    index: dict[str, ContextEntry] = {}
    for rel in unchanged:
        entry = base.get(rel)
        if entry is None:
            continue
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in index:
                index[parent] = base.get(parent) or ContextEntry(stat.S_IFDIR, 0o755, "", 0, 0, -1)
        index[rel] = entry
    return index


_PENDING = ContextEntry(stat.S_IFREG, 0, "", 0, 0)


def open_context(
    stream: BinaryIO | None,
    work_dir: Path,
    dockerfile_name: str = "Dockerfile",
    dockerfile_text: str | None = None,
) -> BuildContext:
    """Spool (decompressed) and index a context tar, read the Dockerfile and .dockerignore.

    Blocking, for a worker thread. Nothing is unpacked yet (see ``BuildContext.root``).
    """
    receiver = ContextReceiver(work_dir)
    try:
        if stream is not None:
            while chunk := stream.read(1024 * 1024):
                receiver.feed(chunk)
    except BaseException:
        receiver.abort()
        raise
    return receiver.finish(dockerfile_name, dockerfile_text)


def _make_context(
    tar_path: Path | None,
    work_dir: Path,
    index: dict[str, ContextEntry],
    dockerfile_name: str,
    dockerfile_text: str | None,
) -> BuildContext:
    rules = IgnoreRules([])
    ignore_entry = index.get(".dockerignore")
    if tar_path is not None and ignore_entry is not None and ignore_entry.kind == stat.S_IFREG:
        rules = IgnoreRules.from_text(
            _read_member(tar_path, ignore_entry).decode("utf-8", "replace")
        )
    name = dockerfile_name or "Dockerfile"
    if dockerfile_text is None:
        rel = os.path.normpath(name).lstrip("/")
        if rel.startswith(".."):
            raise InvalidArgument(f"the Dockerfile ({name}) must be within the build context")
        entry = index.get(rel)
        if entry is None and name == "Dockerfile":
            entry = index.get("dockerfile")
        if entry is None or entry.kind != stat.S_IFREG or tar_path is None:
            raise NotFound(f"Cannot locate specified Dockerfile: {name}")
        dockerfile_text = _read_member(tar_path, _data_entry(index, rel, entry)).decode(
            "utf-8", "replace"
        )
    if rules:
        # Docker drops what .dockerignore names, the Dockerfile and itself included
        index = _apply_rules(index, rules)
    return BuildContext(tar_path, work_dir, dockerfile_text, os.path.basename(name), rules,
                        index)  # fmt: skip


def _data_entry(index: dict[str, ContextEntry], rel: str, entry: ContextEntry) -> ContextEntry:
    """A hard link's entry has no data of its own: the member with the same content has."""
    if entry.offset or not entry.size:
        return entry
    for other in index.values():
        if other.kind == stat.S_IFREG and other.digest == entry.digest and other.offset:
            return other
    return entry


def _apply_rules(index: dict[str, ContextEntry], rules: IgnoreRules) -> dict[str, ContextEntry]:
    kept = {rel: e for rel, e in index.items() if not rules.excluded(rel)}
    # a directory stays when something below it is re-included by a "!" pattern
    for rel in list(kept):
        parts = rel.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in kept and parent in index:
                kept[parent] = index[parent]
    return dict(sorted(kept.items()))
