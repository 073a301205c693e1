"""The files of one container log, held open so that rotation never loses a reader's place.

Owns the retained set (``<path>``, ``<path>.N``, ``<path>.N.gz``): ``snapshot`` opens a
consistent set of them, oldest first; ``switch`` finds, after a rotation of the file a
follower holds, the files written since; ``read_records`` reads the next complete
records of one (through a decompressor for ``.gz``); ``tail_start`` positions a set at
its last N records. All blocking: callers run them in worker threads.
"""

from __future__ import annotations

import json
import os
import struct
import time
import zlib
from dataclasses import dataclass
from typing import Any

from hafen.containers.logformat import LogRecord, split_json, split_local

_CHUNK = 256 * 1024


@dataclass
class OpenLog:
    """One log file held open: following by descriptor survives renames, and an open
    file is never freed (nor its inode number reused) while a reader is behind.

    A gzipped rotated file is read through a decompressor (``offset`` then counts its
    compressed bytes) and named by the inode it had before it was compressed, which
    the shim wrote into its gzip header."""

    fd: int
    inode: int
    offset: int = 0
    local: bool = False  # dockerd's local framing instead of json lines
    inflate: Any = None  # a zlib decompressor for a .gz file
    pending: bytes = b""  # decompressed bytes not yet parsed (.gz)
    skip: int = 0  # records still to drop from the start (tail in a .gz file)


def _split(f: OpenLog, data: bytes) -> tuple[list[LogRecord], int]:
    """The complete records at the start of ``data`` and how many bytes they took."""
    return split_local(data) if f.local else split_json(data)


def read_records(f: OpenLog) -> list[LogRecord]:
    """The next complete records (about a chunk), advancing past them; [] at the end."""
    size = _CHUNK
    while True:
        if f.inflate is None:
            data = os.pread(f.fd, size, f.offset)
            records, used = _split(f, data)
            f.offset += used
            more = len(data) == size
        else:
            raw = os.pread(f.fd, _CHUNK // 4, f.offset)
            f.offset += len(raw)
            more = bool(raw) and not f.inflate.eof
            data = f.pending + (f.inflate.decompress(raw) if raw else b"")
            records, used = _split(f, data)
            f.pending = data[used:]
        if f.skip and records:
            dropped = min(f.skip, len(records))
            f.skip -= dropped
            del records[:dropped]
            if not records and more:
                continue
        if records or not more:
            return records
        if f.inflate is None:
            size *= 2  # one record longer than a chunk: read more at once


def _tail_offset(fd: int, lines: int) -> int:
    """The byte offset where the last ``lines`` records start (reads backwards in blocks)."""
    pos = os.fstat(fd).st_size
    if lines <= 0:
        return pos
    needed = lines + 1  # the file's final newline ends the last record
    while pos > 0:
        step = min(64 * 1024, pos)
        pos -= step
        data = os.pread(fd, step, pos)
        idx = len(data)
        while (idx := data.rfind(b"\n", 0, idx)) >= 0:
            needed -= 1
            if needed == 0:
                return pos + idx + 1
    return 0


def _log_files(path: str) -> list[str]:
    """The rotated files (oldest first; ``<path>.N`` or ``<path>.N.gz``) and then the
    current one; where both forms of a number exist (mid-compression) the plain one."""
    rotated: dict[int, str] = {}
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        names = []
    for name in names:
        stem = name[:-3] if name.endswith(".gz") else name
        prefix, dot, number = stem.rpartition(".")
        if prefix == base and dot and number.isdigit():
            n = int(number)
            if n not in rotated or stem == name:
                rotated[n] = os.path.join(directory, name)
    return [rotated[n] for n in sorted(rotated, reverse=True)] + [path]


def _count_records(f: OpenLog) -> int:
    """How many records a file holds (a pass over it; the file is left unread)."""
    if f.inflate is None and not f.local:
        count, offset = 0, 0
        while chunk := os.pread(f.fd, 1 << 20, offset):
            count += chunk.count(b"\n")
            offset += len(chunk)
        return count
    probe = OpenLog(f.fd, f.inode, f.offset, f.local, _inflater() if f.inflate else None)
    count = 0
    while records := read_records(probe):
        count += len(records)
    return count


def _inflater() -> Any:
    return zlib.decompressobj(wbits=31)  # a gzip stream


def _gzip_inode(fd: int) -> int:
    """The inode the shim recorded in a rotated file's gzip header (0 if none)."""
    head = os.pread(fd, 4096, 0)
    if len(head) < 12 or head[:2] != b"\x1f\x8b" or not head[3] & 4:
        return 0
    (xlen,) = struct.unpack_from("<H", head, 10)
    try:
        return int(json.loads(head[12 : 12 + xlen]).get("Inode", 0))
    except (ValueError, AttributeError, TypeError):
        return 0


def _open_log(name: str, local: bool) -> OpenLog:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    if name.endswith(".gz"):
        return OpenLog(fd, _gzip_inode(fd) or os.fstat(fd).st_ino, 0, local, _inflater())
    return OpenLog(fd, os.fstat(fd).st_ino, 0, local)


def _inode_of(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def close_all(files: list[OpenLog]) -> None:
    for f in files:
        os.close(f.fd)
    files.clear()


def snapshot(path: str, local: bool = False) -> list[OpenLog]:
    """Open every retained file, oldest first, the current one last — a consistent set:
    a rotation while they are opened shifts names, so the names are checked again
    afterwards and the set is opened anew until no name moved (bounded)."""
    for _attempt in range(200):
        names = _log_files(path)
        opened: list[tuple[str, OpenLog, int]] = []
        for name in names:
            try:
                f = _open_log(name, local)
            except FileNotFoundError:
                continue
            opened.append((name, f, os.fstat(f.fd).st_ino))
        files = [f for _n, f, _i in opened]
        # no log at all (yet) — unless a first rotation renamed the file between the
        # listing and the open: then a second listing finds its ``.1``
        if (
            not opened
            and len(names) == 1
            and not os.path.exists(path)
            and _log_files(path) == names
            and not os.path.exists(path)
        ):
            return []
        if (
            len(opened) == len(names)
            and _log_files(path) == names
            and all(_inode_of(name) == ino for name, _f, ino in opened)
        ):
            return files
        close_all(files)  # a rotation ran meanwhile: look again
        time.sleep(0.002)
    raise OSError(f"log files of {path} keep moving; cannot read them")


def switch(path: str, current: OpenLog) -> list[OpenLog]:
    """After a rotation of ``current``: the files written since, oldest first, the new
    current one last (some may have been dropped already if several rotations ran)."""
    files = snapshot(path, current.local)
    inodes = [f.inode for f in files]
    if current.inode in inodes:
        # the newest match: an inode number freed long ago may name an old .gz too
        keep = len(inodes) - inodes[::-1].index(current.inode)
        close_all(files[:keep])
        return files[keep:]
    return files  # ours was dropped: everything retained is newer


def tail_start(files: list[OpenLog], lines: int) -> int:
    """Drop the files before the last ``lines`` records; position the first one."""
    needed = lines
    for index in range(len(files) - 1, -1, -1):
        f = files[index]
        count = _count_records(f)
        if count >= needed or index == 0:
            wanted = min(needed, count)
            if f.inflate is None and not f.local:
                f.offset = _tail_offset(f.fd, wanted)
            else:
                f.skip = count - wanted
            return index
        needed -= count
    return len(files) - 1


def stat_path(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def has_more(f: OpenLog) -> bool:
    return os.fstat(f.fd).st_size > f.offset


__all__ = [
    "OpenLog",
    "close_all",
    "has_more",
    "read_records",
    "snapshot",
    "stat_path",
    "switch",
    "tail_start",
]
