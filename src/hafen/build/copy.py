"""COPY and ADD: finding sources, Docker's destination rules, and writing into a rootfs.

Sources are paths (with ``*``, ``?``, ``[...]`` wildcards) inside a source root (the
context, or another stage's or image's filesystem); one that leaves the root is refused.
The destination follows Docker's rules: relative to WORKDIR; a trailing ``/``, an
existing directory, or several sources make it a directory; a directory source copies
its *contents*; ADD unpacks local tar archives (plain, gzip, bzip2, xz). Written files
keep their mode and mtime, and are owned by root unless ``--chown`` says otherwise;
``--chmod`` sets the mode of what is copied. All writes resolve inside the rootfs.
"""

from __future__ import annotations

import bz2
import concurrent.futures
import fnmatch
import gzip
import hashlib
import lzma
import os
import posixpath
import shutil
import stat
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Protocol

from hafen.build.ignore import IgnoreRules
from hafen.errors import InvalidArgument, NotFound, UnsafePath
from hafen.store.archive import resolve_in_root, unpack_layer

_WILDCARD = set("*?[")


@dataclass(frozen=True)
class Source:
    name: str  # as written (after expansion), for messages and the base name
    path: Path  # the host path


@dataclass(frozen=True)
class Ownership:
    uid: int = 0
    gid: int = 0


def _clean(name: str, what: str) -> list[str]:
    parts: list[str] = []
    for part in name.replace("\\", "/").split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            if not parts:
                raise UnsafePath(f"forbidden path outside the {what}: {name}")
            parts.pop()
            continue
        parts.append(part)
    return parts


def find_sources(
    root: Path, names: list[str], what: str = "build context", exclude: IgnoreRules | None = None
) -> list[Source]:
    """Resolve the source names (wildcards expanded, sorted) inside ``root``; ``--exclude``
    patterns drop wildcard matches."""
    found: list[Source] = []
    for name in names:
        parts = _clean(name, what)
        if any(_WILDCARD & set(p) for p in parts):
            matches = [m for m in _glob(root, parts) if not (exclude and exclude.excluded(m))]
            found.extend(Source(m, resolve_in_root(root, _clean(m, what))) for m in matches)
            continue
        path = resolve_in_root(root, parts, follow_last=True)
        if not os.path.lexists(path):
            raise NotFound(
                f"file not found in {what} or excluded by .dockerignore: stat {name}: "
                "file does not exist"
            )
        found.append(Source(name, path))
    if not found:
        raise InvalidArgument("no source files were specified")
    return found


def _glob(root: Path, parts: list[str]) -> list[str]:
    matches = [""]
    for part in parts:
        nxt: list[str] = []
        for prefix in matches:
            directory = resolve_in_root(root, _clean(prefix, "root"), follow_last=True)
            if not directory.is_dir():
                continue
            if _WILDCARD & set(part):
                names = sorted(e.name for e in os.scandir(directory))
                nxt.extend(posixpath.join(prefix, n) for n in names if fnmatch.fnmatchcase(n, part))
            elif os.path.lexists(directory / part):
                nxt.append(posixpath.join(prefix, part))
        matches = nxt
    return matches


def _file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1024 * 1024):
            h.update(chunk)
    return h.hexdigest()


def sources_digest(sources: list[Source], exclude: IgnoreRules | None = None) -> str:
    """A digest of the sources' content and metadata: what the build cache compares.

    ``digest_entries`` computes the same value from a context's tar index.
    """
    h = hashlib.sha256()

    def add(path: Path, rel: str, below: str = "") -> None:
        if below and exclude and exclude.excluded(below):
            return
        st = os.lstat(path)
        h.update(f"{rel}\0{stat.S_IFMT(st.st_mode)}\0{stat.S_IMODE(st.st_mode)}\0".encode())
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode() + b"\0")
        elif stat.S_ISREG(st.st_mode):
            h.update(_file_sha256(path).encode() + b"\0")
        elif stat.S_ISDIR(st.st_mode):
            for entry in sorted(os.scandir(path), key=lambda e: e.name):
                add(Path(entry.path), f"{rel}/{entry.name}", f"{below}/{entry.name}".lstrip("/"))

    for source in sources:
        add(source.path, source.name)
    return "sha256:" + h.hexdigest()


class _Indexed(Protocol):
    @property
    def kind(self) -> int: ...

    @property
    def mode(self) -> int: ...

    @property
    def digest(self) -> str: ...


def expand_names(
    index: Mapping[str, _Indexed], names: list[str], exclude: IgnoreRules | None
) -> list[tuple[str, str]] | None:
    """``find_sources`` on a tar index: (name, path) pairs; None if a symlink is involved."""
    children: dict[str, list[str]] = {}
    for rel in index:
        head, _, base = rel.rpartition("/")
        children.setdefault(head, []).append(base)
    found: list[tuple[str, str]] = []
    for name in names:
        parts = _clean(name, "build context")
        for i in range(1, len(parts) + 1):
            entry = index.get("/".join(parts[:i]))
            if entry is not None and entry.kind == stat.S_IFLNK:
                return None
        if any(_WILDCARD & set(p) for p in parts):
            matches = [""]
            for part in parts:
                nxt: list[str] = []
                for prefix in matches:
                    entry = index.get(prefix)
                    if prefix and (entry is None or entry.kind != stat.S_IFDIR):
                        continue
                    for child in sorted(children.get(prefix, [])):
                        if (
                            fnmatch.fnmatchcase(child, part)
                            if _WILDCARD & set(part)
                            else child == part
                        ):
                            path = posixpath.join(prefix, child)
                            if index[path].kind == stat.S_IFLNK:
                                return None
                            nxt.append(path)
                matches = nxt
            found.extend((m, m) for m in matches if not (exclude and exclude.excluded(m)))
            continue
        rel = "/".join(parts)
        if rel and rel not in index:
            raise NotFound(
                f"file not found in build context or excluded by .dockerignore: stat {name}: "
                "file does not exist"
            )
        found.append((name, rel))
    if not found:
        raise InvalidArgument("no source files were specified")
    return found


def digest_entries(
    index: Mapping[str, _Indexed], found: list[tuple[str, str]], exclude: IgnoreRules | None
) -> str | None:
    """``sources_digest`` of ``expand_names`` results, from the index alone."""
    h = hashlib.sha256()
    children: dict[str, list[str]] = {}
    for rel in index:
        head, _, base = rel.rpartition("/")
        children.setdefault(head, []).append(base)

    def add(path: str, rel: str, below: str = "") -> bool:
        if below and exclude and exclude.excluded(below):
            return True
        entry = index.get(path)
        if path == "":
            kind, mode = stat.S_IFDIR, 0o755
        elif entry is None:
            return False
        else:
            kind, mode = entry.kind, entry.mode
        if kind == stat.S_IFLNK:
            return False  # a symlink inside a source: the files decide
        h.update(f"{rel}\0{kind}\0{mode}\0".encode())
        if kind == stat.S_IFREG:
            assert entry is not None
            h.update(entry.digest.encode() + b"\0")
        elif kind == stat.S_IFDIR:
            for child in sorted(children.get(path, [])):
                sub = f"{path}/{child}" if path else child
                if not add(sub, f"{rel}/{child}", f"{below}/{child}".lstrip("/")):
                    return False
        return True

    for name, path in found:
        if not add(path, name):
            return None
    return "sha256:" + h.hexdigest()


def destination(dest: str, workdir: str) -> str:
    """The absolute destination; a trailing slash is kept (it means "a directory")."""
    trailing = dest.endswith("/") or dest.endswith("/.") or dest in (".", "")
    full = dest if dest.startswith("/") else posixpath.join(workdir or "/", dest)
    full = posixpath.normpath(full)
    if trailing and full != "/":
        full += "/"
    return full


def _mkdirs(rootfs: Path, parts: list[str], owner: Ownership) -> Path:
    current = rootfs
    for index in range(len(parts)):
        current = resolve_in_root(rootfs, parts[: index + 1], follow_last=True)
        if not os.path.lexists(current):
            os.mkdir(current, 0o755)
            os.lchown(current, owner.uid, owner.gid)
        elif not current.is_dir():
            raise InvalidArgument(
                f"cannot copy to /{'/'.join(parts)}: /{'/'.join(parts[: index + 1])} is not a directory"
            )
    return current


def is_archive(path: Path) -> bool:
    """A local tar archive (plain or compressed) that ADD unpacks."""
    try:
        with _open_archive(path) as stream:
            block = stream.read(512)
    except (OSError, EOFError, lzma.LZMAError, ValueError):
        return False
    return len(block) == 512 and block[257:262] == b"ustar"


def _open_archive(path: Path) -> BinaryIO:
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return gzip.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"BZh"):
        return bz2.open(path, "rb")  # type: ignore[return-value]
    if magic.startswith(b"\xfd7zXZ"):
        return lzma.open(path, "rb")  # type: ignore[return-value]
    return open(path, "rb")


def copy_sources(
    rootfs: Path,
    sources: list[Source],
    dest: str,
    *,
    owner: Ownership | None,
    chmod: int | None,
    unpack_archives: bool,
    keyword: str = "COPY",
    exclude: IgnoreRules | None = None,
) -> None:
    """Copy ``sources`` to the absolute ``dest`` inside the mounted ``rootfs`` (blocking)."""
    own = owner or Ownership()
    dest_parts = _clean(dest, "image")
    dest_host = resolve_in_root(rootfs, dest_parts, follow_last=True)
    dest_is_dir = not dest_parts or dest.endswith("/") or dest_host.is_dir()
    if len(sources) > 1 and not dest_is_dir:
        raise InvalidArgument(
            f"When using {keyword} with more than one source file, the destination must be a "
            "directory and end with a /"
        )
    for source in sources:
        st = os.stat(source.path) if source.path.is_symlink() else os.lstat(source.path)
        if stat.S_ISDIR(st.st_mode):
            target = _mkdirs(rootfs, dest_parts, own)
            _copy_tree(source.path, target, own, chmod, exclude)
        elif unpack_archives and is_archive(source.path):
            target = _mkdirs(rootfs, dest_parts, own)
            with _open_archive(source.path) as stream:
                unpack_layer(stream, target, whiteouts="vfs")
        else:
            if dest_is_dir:
                directory = _mkdirs(rootfs, dest_parts, own)
                target = directory / posixpath.basename(source.name.rstrip("/"))
            else:
                directory = _mkdirs(rootfs, dest_parts[:-1], own)
                target = directory / dest_parts[-1]
            _copy_one(source.path, target, own, chmod, follow=True)


def _copy_one(src: Path, target: Path, owner: Ownership, chmod: int | None, follow: bool) -> None:
    st = os.stat(src) if follow else os.lstat(src)
    if os.path.lexists(target) and not (target.is_dir() and not target.is_symlink()):
        os.unlink(target)
    elif target.is_dir() and not target.is_symlink() and not stat.S_ISDIR(st.st_mode):
        shutil.rmtree(target)
    if stat.S_ISLNK(st.st_mode):
        os.symlink(os.readlink(src), target)
        os.lchown(target, owner.uid, owner.gid)
        return
    if stat.S_ISREG(st.st_mode):
        shutil.copyfile(src, target, follow_symlinks=follow)
    elif stat.S_ISFIFO(st.st_mode):
        os.mkfifo(target)
    else:
        return  # sockets and devices are not copied from a context
    os.lchown(target, owner.uid, owner.gid)
    os.chmod(target, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
    os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns))


def _copy_tree(
    src: Path, target: Path, owner: Ownership, chmod: int | None, exclude: IgnoreRules | None
) -> None:
    dir_times: list[tuple[Path, os.stat_result]] = []
    for dirpath, dirnames, filenames in os.walk(src):
        rel = os.path.relpath(dirpath, src)
        if exclude is not None:
            prefix = "" if rel == "." else rel + "/"
            dirnames[:] = [d for d in dirnames if not exclude.excluded(prefix + d)]
            filenames = [f for f in filenames if not exclude.excluded(prefix + f)]
        here = target if rel == "." else target / rel
        if rel != ".":
            st = os.lstat(dirpath)
            if not (here.is_dir() and not here.is_symlink()):
                if os.path.lexists(here):
                    os.unlink(here)
                os.mkdir(here)
            os.lchown(here, owner.uid, owner.gid)
            os.chmod(here, chmod if chmod is not None else stat.S_IMODE(st.st_mode))
            dir_times.append((here, st))
        for name in sorted(dirnames):
            if os.path.islink(os.path.join(dirpath, name)):
                dirnames.remove(name)
                filenames.append(name)
        for name in sorted(filenames):
            _copy_one(Path(dirpath) / name, here / name, owner, chmod, follow=False)
    for path, st in reversed(dir_times):
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def write_file(
    rootfs: Path, dest: str, content: bytes, owner: Ownership | None, chmod: int | None
) -> None:
    """A heredoc (``COPY <<EOF /path``) or a downloaded file, written at ``dest``."""
    own = owner or Ownership()
    parts = _clean(dest, "image")
    if not parts:
        raise InvalidArgument("cannot write a file at /")
    directory = _mkdirs(rootfs, parts[:-1], own)
    target = directory / parts[-1]
    if target.is_dir() and not target.is_symlink():
        raise InvalidArgument(f"cannot write a file at {dest}: it is a directory")
    if os.path.lexists(target):
        os.unlink(target)
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(content)
    os.lchown(target, own.uid, own.gid)
    os.chmod(target, chmod if chmod is not None else 0o644)


class _TarIndexed(_Indexed, Protocol):
    @property
    def offset(self) -> int: ...

    @property
    def size(self) -> int: ...

    @property
    def mtime(self) -> int: ...


_WRITERS = 4  # threads writing a COPY's files
_PARALLEL_MIN = 64  # fewer files than this are written in order, in this thread


def _umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it: a race)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o777  # unknown: always chmod


def _write_many(
    write: Callable[[_TarIndexed, int, Path], None], jobs: list[tuple[_TarIndexed, Path]], fd: int
) -> None:
    for entry, target in jobs:
        write(entry, fd, target)


def copy_from_tar(
    tar_path: Path,
    index: Mapping[str, _TarIndexed],
    found: list[tuple[str, str]],
    rootfs: Path,
    dest: str,
    *,
    owner: Ownership | None,
    chmod: int | None,
    exclude: IgnoreRules | None,
    upper: Path | None = None,
    detach: Callable[[], None] | None = None,
) -> bool:
    """COPY straight from the context tar into ``rootfs``: the same result as ``copy_sources``
    on the unpacked context, without unpacking it first. False (nothing written) when the
    sources hold hard links, which need the files.

    With ``upper`` (the overlay upper dir of the snapshot mounted at ``rootfs``) and
    ``detach`` (unmounts it), the directories are made through the mount, so overlay puts
    them in the upper dir, and the files that go into those new directories are then
    written straight into the upper dir after ``detach``: overlay costs about as much
    again as the file creation itself."""
    own = owner or Ownership()
    dest_parts = _clean(dest, "image")
    dest_is_dir = (
        not dest_parts
        or dest.endswith("/")
        or resolve_in_root(rootfs, dest_parts, follow_last=True).is_dir()
    )

    def under(prefix: str, rel: str) -> bool:
        return not prefix or rel.startswith(prefix + "/")

    for _, rel in found:
        for path, item in index.items():
            if item.kind == stat.S_IFREG and item.offset == 0 and (path == rel or under(rel, path)):
                return False  # a hard link: its data lives in another member
    dir_map: list[tuple[str, Path]] = []
    file_map: dict[str, Path] = {}
    for name, rel in found:
        entry = index.get(rel) if rel else None
        if entry is None or entry.kind == stat.S_IFDIR:
            dir_map.append((rel, _mkdirs(rootfs, dest_parts, own)))
        elif dest_is_dir:
            directory = _mkdirs(rootfs, dest_parts, own)
            file_map[rel] = directory / posixpath.basename(name.rstrip("/"))
        else:
            file_map[rel] = _mkdirs(rootfs, dest_parts[:-1], own) / dest_parts[-1]
    created: dict[Path, None] = {}
    dir_times: list[tuple[Path, int]] = []

    fresh: dict[Path, int] = {}  # directories this COPY made (empty then) → their mode

    def ensure_dir(path: Path, mode: int) -> None:
        if not (path.is_dir() and not path.is_symlink()):
            if os.path.lexists(path):
                os.unlink(path)
            os.mkdir(path)
            fresh[path] = chmod if chmod is not None else mode
        os.lchown(path, own.uid, own.gid)
        os.chmod(path, chmod if chmod is not None else mode)

    def ensure_parents(top: Path, sub_parts: list[str]) -> Path:
        current = top
        for part in sub_parts:
            current = current / part
            if current not in created:
                ensure_dir(current, 0o755)
                created[current] = None
        return current

    umask = _umask()
    root_owned = own.uid == 0 and own.gid == 0 and os.geteuid() == 0 and os.getegid() == 0

    def place(target: Path) -> Path:
        """Where ``target`` (a path under the mount) is written: the upper dir once
        detached."""
        return upper / target.relative_to(rootfs) if detached else target  # type: ignore[operator]

    def write(entry: _TarIndexed, src_fd: int, target: Path) -> None:
        # every syscall counts here (COPY of thousands of files): a fresh directory holds
        # nothing to replace, and root's new file there is root's already unless setgid
        parent_mode = fresh.get(target.parent) if unique else None
        target = place(target)
        if parent_mode is None and os.path.lexists(target):
            if target.is_dir() and not target.is_symlink():
                shutil.rmtree(target)
            else:
                os.unlink(target)
        mode = chmod if chmod is not None else entry.mode
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode & 0o777)
        try:
            offset, left = entry.offset, entry.size
            while left > 0:  # in the kernel: the data never passes through Python
                sent = os.sendfile(fd, src_fd, offset, left)
                if sent <= 0:
                    raise InvalidArgument("invalid build context archive: short file data")
                offset += sent
                left -= sent
            if not (root_owned and parent_mode is not None and not parent_mode & stat.S_ISGID):
                os.fchown(fd, own.uid, own.gid)
            if mode & 0o7000 or mode & umask:
                os.fchmod(fd, mode)
            os.utime(fd, (entry.mtime, entry.mtime))
        finally:
            os.close(fd)

    jobs: list[tuple[_TarIndexed, Path]] = []  # files, written after the directories
    for rel, entry in index.items():
        if rel in file_map:
            if entry.kind == stat.S_IFREG:
                jobs.append((entry, file_map[rel]))
            continue
        for prefix, top in dir_map:
            if not under(prefix, rel) or rel == prefix:
                continue
            sub = rel[len(prefix) + 1 :] if prefix else rel
            if exclude is not None and exclude.excluded(sub):
                break
            sub_parts = sub.split("/")
            parent = ensure_parents(top, sub_parts[:-1])
            target = parent / sub_parts[-1]
            if entry.kind == stat.S_IFDIR:
                ensure_dir(target, entry.mode)
                created[target] = None
                if entry.mtime >= 0:  # a directory the tar only implies keeps its own time
                    dir_times.append((target, entry.mtime))
            elif entry.kind == stat.S_IFREG:
                jobs.append((entry, target))
            break
    targets = {target for _, target in jobs}
    unique = len(targets) == len(jobs) and not targets & created.keys()
    detached = False
    later: list[tuple[_TarIndexed, Path]] = []  # written into the upper dir after detach
    if upper is not None and detach is not None and unique:
        later = [job for job in jobs if job[1].parent in fresh]
        jobs = [job for job in jobs if job[1].parent not in fresh]
    src_fd = os.open(tar_path, os.O_RDONLY)
    try:
        _write_all(write, jobs, src_fd, unique)
        if later:
            assert detach is not None
            detach()
            detached = True
            _write_all(write, later, src_fd, unique)
    finally:
        os.close(src_fd)
    for made, mtime in reversed(dir_times):
        os.utime(place(made), (mtime, mtime), follow_symlinks=False)
    return True


def _write_all(
    write: Callable[[_TarIndexed, int, Path], None],
    jobs: list[tuple[_TarIndexed, Path]],
    src_fd: int,
    unique: bool,
) -> None:
    if len(jobs) >= _PARALLEL_MIN and unique:
        # creating files is kernel work that threads overlap (the GIL is released); the
        # targets are distinct, so the order does not matter
        with concurrent.futures.ThreadPoolExecutor(_WRITERS) as pool:
            done = [pool.submit(_write_many, write, jobs[i::_WRITERS], src_fd)
                    for i in range(_WRITERS)]  # fmt: skip
            for future in done:
                future.result()
    else:
        _write_many(write, jobs, src_fd)
