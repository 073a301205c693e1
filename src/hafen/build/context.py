"""The build context: a tar stream unpacked into a private directory, ``.dockerignore`` applied.

The client sends the context as a tar (plain or compressed); it is unpacked with the
store's hostile-archive rules (nothing lands outside the directory), then every path
``.dockerignore`` excludes is removed, and the Dockerfile is read from it (or given
separately). The directory is the only thing COPY/ADD may read from.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import shutil
import stat
import tarfile
import tempfile
import threading
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, cast

from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound, UnsafePath
from hafen.store.archive import _clean_parts, open_layer_stream, resolve_in_root


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
    stream: BinaryIO, root: Path, keep: Callable[[str], bool] | None = None
) -> None:
    """Unpack a context tar into the fresh directory ``root``, confined to it.

    Faster than a layer unpack (a context has no whiteouts, owners or xattrs that matter:
    COPY sets its own owner): paths are joined directly unless they pass through a
    symlink the archive itself created, which is then resolved inside ``root``.
    """
    symlinks: set[str] = set()
    dir_times: list[tuple[Path, int]] = []
    try:
        archive = tarfile.open(fileobj=stream, mode="r|")  # noqa: SIM115
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
    offset: int  # where a file's data starts in the tar
    size: int


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
                                cast(BinaryIO, _PaddedTar(f)), root, keep=self.index.__contains__
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
        if self.tar_path is not None:
            self.tar_path.unlink(missing_ok=True)


def _index_tar(tar_path: Path) -> dict[str, ContextEntry]:
    """Every path of a plain tar with its type, mode and content digest (one read)."""
    index: dict[str, ContextEntry] = {}
    with open(tar_path, "rb") as f:
        try:
            archive = tarfile.open(fileobj=cast(BinaryIO, _PaddedTar(f)), mode="r|")  # noqa: SIM115
        except tarfile.TarError as e:
            raise InvalidArgument(f"invalid build context archive: {e}")
        try:
            for member in archive:
                parts = _clean_parts(member.name)
                if not parts:
                    continue
                rel = "/".join(parts)
                for i in range(1, len(parts)):  # parents the tar left implicit
                    index.setdefault(
                        "/".join(parts[:i]), ContextEntry(stat.S_IFDIR, 0o755, "", 0, 0)
                    )
                mode = stat.S_IMODE(member.mode)
                if member.isdir():
                    index[rel] = ContextEntry(stat.S_IFDIR, mode, "", 0, 0)
                elif member.issym():
                    index[rel] = ContextEntry(stat.S_IFLNK, mode, member.linkname, 0, 0)
                elif member.isreg():
                    h = hashlib.sha256()
                    source = archive.extractfile(member)
                    assert source is not None
                    while chunk := source.read(1024 * 1024):
                        h.update(chunk)
                    index[rel] = ContextEntry(stat.S_IFREG, mode, h.hexdigest(),
                                              member.offset_data, member.size)  # fmt: skip
                elif member.islnk():
                    target = index.get("/".join(_clean_parts(member.linkname)))
                    if target is not None and target.kind == stat.S_IFREG:
                        index[rel] = ContextEntry(stat.S_IFREG, mode, target.digest, 0, target.size)
        except (tarfile.TarError, EOFError) as e:
            raise InvalidArgument(f"invalid build context archive: {e}")
        finally:
            archive.close()
    return index


def _read_member(tar_path: Path, entry: ContextEntry) -> bytes:
    with open(tar_path, "rb") as f:
        f.seek(entry.offset)
        return f.read(entry.size)


def open_context(
    stream: BinaryIO | None,
    work_dir: Path,
    dockerfile_name: str = "Dockerfile",
    dockerfile_text: str | None = None,
) -> BuildContext:
    """Spool (decompressed) and index a context tar, read the Dockerfile and .dockerignore.

    Blocking, for a worker thread. Nothing is unpacked yet (see ``BuildContext.root``).
    """
    work_dir.mkdir(parents=True, exist_ok=True)
    tar_path: Path | None = None
    try:
        index: dict[str, ContextEntry] = {}
        if stream is not None:
            fd, name = tempfile.mkstemp(dir=work_dir, prefix="context-", suffix=".tar")
            tar_path = Path(name)
            with os.fdopen(fd, "wb") as out:
                shutil.copyfileobj(cast(BinaryIO, _PaddedTar(open_layer_stream(stream))), out,
                                   1024 * 1024)  # fmt: skip
            index = _index_tar(tar_path)
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
            dockerfile_text = _read_member(tar_path, entry).decode("utf-8", "replace")
        if rules:
            # Docker drops what .dockerignore names, the Dockerfile and itself included
            index = _apply_rules(index, rules)
        return BuildContext(tar_path, work_dir, dockerfile_text, os.path.basename(name), rules,
                            index)  # fmt: skip
    except BaseException:
        if tar_path is not None:
            tar_path.unlink(missing_ok=True)
        raise


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
