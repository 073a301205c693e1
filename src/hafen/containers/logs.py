"""Reading a container's log (written by its shim), with follow, tail and time filters.

The shim appends one JSON object per line: ``{"log": "...", "stream": "stdout",
"time": "...Z"}`` (json-file), or size-framed protobuf entries (the ``local`` driver);
rotated files may be gzipped (``<path>.N.gz``) and are read back transparently. Reads happen in worker threads; following polls the file size, which
is cheap and needs no inotify plumbing, follows the file by descriptor across rotations,
and stops once the container has exited and the file has been read to its end.
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

FOLLOW_POLL_SECONDS = 0.05
_CHUNK = 256 * 1024


@dataclass
class LogRecord:
    stream: str  # "stdout" | "stderr"
    data: bytes
    time: str  # RFC 3339 with nanoseconds
    attrs: dict[str, str] | None = None  # the log attributes (--log-opt labels/env/tag)

    @property
    def timestamp(self) -> float:
        return parse_rfc3339(self.time)


@dataclass
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since: float = 0.0  # unix seconds; 0 = from the start
    until: float = 0.0  # unix seconds; 0 = no end
    tail: int | None = None  # last N records; None = all


def parse_rfc3339(text: str) -> float:
    """RFC 3339 in UTC (``Z``, nanoseconds allowed) → unix seconds as float.

    ``ps`` parses one per container per request: ``fromisoformat`` on the seconds is
    ~20x quicker than ``strptime``, and repeated stamps come from a small cache."""
    cached = _RFC3339_CACHE.get(text)
    if cached is not None:
        return cached
    main, _, frac = text.rstrip("Z").partition(".")
    if len(main) != 19 or main[10] != "T":
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    base = datetime.fromisoformat(main).replace(tzinfo=UTC)
    value = base.timestamp() + (float("0." + frac) if frac else 0.0)
    if len(_RFC3339_CACHE) >= 4096:
        _RFC3339_CACHE.clear()
    _RFC3339_CACHE[text] = value
    return value


_RFC3339_CACHE: dict[str, float] = {}


def _parse_lines(lines: list[bytes]) -> list[LogRecord]:
    """Records of whole lines: one ``json.loads`` of them all as an array (a C call for
    the chunk instead of one Python call per line), line by line where any is torn."""
    try:
        raws = json.loads(b"[" + b",".join(lines) + b"]")
        return [
            LogRecord(
                r["stream"], r["log"].encode("utf-8", "surrogateescape"), r["time"], r.get("attrs")
            )
            for r in raws
        ]
    except (ValueError, KeyError, TypeError, AttributeError):
        return [r for r in map(_parse_line, lines) if r is not None]


def _parse_line(line: bytes) -> LogRecord | None:
    try:
        raw = json.loads(line)
        return LogRecord(
            raw["stream"],
            raw["log"].encode("utf-8", "surrogateescape"),
            raw["time"],
            raw.get("attrs"),
        )
    except (ValueError, KeyError, TypeError):
        return None  # a torn last line (crash mid-write) is skipped, never fatal


def _wanted(rec: LogRecord, query: LogQuery) -> bool:
    if rec.stream == "stdout" and not query.stdout:
        return False
    if rec.stream == "stderr" and not query.stderr:
        return False
    if query.since or query.until:
        ts = rec.timestamp
        if query.since and ts < query.since:
            return False
        if query.until and ts > query.until:
            return False
    return True


@dataclass
class _Open:
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


def _split_json(data: bytes) -> tuple[list[LogRecord], int]:
    end = data.rfind(b"\n")
    if end < 0:
        return [], 0
    return _parse_lines(data[: end + 1].splitlines()), end + 1


def _local_entry(entry: bytes) -> LogRecord | None:
    """A dockerd ``logdriver.LogEntry`` protobuf: source (1), time_nano (2), line (3),
    partial (4); unknown fields are skipped."""
    fields: dict[int, Any] = {}
    pos = 0
    try:
        while pos < len(entry):
            key, pos = _uvarint(entry, pos)
            number, kind = key >> 3, key & 7
            if kind == 0:
                fields[number], pos = _uvarint(entry, pos)
            elif kind == 2:
                size, pos = _uvarint(entry, pos)
                fields[number], pos = entry[pos : pos + size], pos + size
            elif kind == 5:
                pos += 4
            elif kind == 1:
                pos += 8
            else:
                return None
    except IndexError:
        return None
    line = bytes(fields.get(3, b""))
    if not fields.get(4):
        line += b"\n"
    ns = int(fields.get(2, 0))
    secs, frac = divmod(ns, 1_000_000_000)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(secs)) + f".{frac:09d}Z"
    return LogRecord(bytes(fields.get(1, b"stdout")).decode(errors="replace"), line, stamp)


def _uvarint(data: bytes, pos: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _split_local(data: bytes) -> tuple[list[LogRecord], int]:
    records: list[LogRecord] = []
    pos = 0
    while pos + 4 <= len(data):
        (size,) = struct.unpack_from(">I", data, pos)
        end = pos + 4 + size + 4
        if end > len(data):
            break
        rec = _local_entry(data[pos + 4 : pos + 4 + size])
        if rec is not None:
            records.append(rec)
        pos = end
    return records, pos


def _split(f: _Open, data: bytes) -> tuple[list[LogRecord], int]:
    """The complete records at the start of ``data`` and how many bytes they took."""
    return _split_local(data) if f.local else _split_json(data)


def _read_records(f: _Open) -> list[LogRecord]:
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


def _count_records(f: _Open) -> int:
    """How many records a file holds (a pass over it; the file is left unread)."""
    if f.inflate is None and not f.local:
        count, offset = 0, 0
        while chunk := os.pread(f.fd, 1 << 20, offset):
            count += chunk.count(b"\n")
            offset += len(chunk)
        return count
    probe = _Open(f.fd, f.inode, f.offset, f.local, _inflater() if f.inflate else None)
    count = 0
    while records := _read_records(probe):
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


def _open_log(name: str, local: bool) -> _Open:
    fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
    if name.endswith(".gz"):
        return _Open(fd, _gzip_inode(fd) or os.fstat(fd).st_ino, 0, local, _inflater())
    return _Open(fd, os.fstat(fd).st_ino, 0, local)


def _inode_of(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _close(files: list[_Open]) -> None:
    for f in files:
        os.close(f.fd)
    files.clear()


def _snapshot(path: str, local: bool = False) -> list[_Open]:
    """Open every retained file, oldest first, the current one last — a consistent set:
    a rotation while they are opened shifts names, so the names are checked again
    afterwards and the set is opened anew until no name moved (bounded)."""
    for _attempt in range(200):
        names = _log_files(path)
        opened: list[tuple[str, _Open, int]] = []
        for name in names:
            try:
                f = _open_log(name, local)
            except FileNotFoundError:
                continue
            opened.append((name, f, os.fstat(f.fd).st_ino))
        files = [f for _n, f, _i in opened]
        if not opened and not os.path.exists(path) and len(names) == 1:
            return []  # no log at all (yet)
        if (
            len(opened) == len(names)
            and _log_files(path) == names
            and all(_inode_of(name) == ino for name, _f, ino in opened)
        ):
            return files
        _close(files)  # a rotation ran meanwhile: look again
        time.sleep(0.002)
    raise OSError(f"log files of {path} keep moving; cannot read them")


def _switch(path: str, current: _Open) -> list[_Open]:
    """After a rotation of ``current``: the files written since, oldest first, the new
    current one last (some may have been dropped already if several rotations ran)."""
    files = _snapshot(path, current.local)
    inodes = [f.inode for f in files]
    if current.inode in inodes:
        # the newest match: an inode number freed long ago may name an old .gz too
        keep = len(inodes) - inodes[::-1].index(current.inode)
        _close(files[:keep])
        return files[keep:]
    return files  # ours was dropped: everything retained is newer


def _tail_start(files: list[_Open], lines: int) -> int:
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


async def read_logs(
    path: str, query: LogQuery, still_running: Callable[[], bool], local: bool = False
) -> AsyncIterator[LogRecord]:
    """Yield the records ``query`` selects, through rotated files; with ``follow``, keep
    going until the container stops (see ``read_log_batches``)."""
    async for batch in read_log_batches(path, query, still_running, local):
        for rec in batch:
            yield rec


async def read_log_batches(
    path: str, query: LogQuery, still_running: Callable[[], bool], local: bool = False
) -> AsyncIterator[list[LogRecord]]:
    """``read_logs`` a chunk of the file at a time (up to 256 KiB of records, never
    empty): a reader that sends them on writes once per chunk, not once per line.

    Following holds the current file open: at its end, a new inode at ``path`` means a
    rotation, so the old file is drained to its end (its writer closed it before the
    rename), then every file written since is read in order — so no record is lost or
    repeated however many rotations ran between two reads, unless they were dropped
    (``max-file``) before the follower got to them.
    """
    files = await asyncio.to_thread(_snapshot, path, local)
    try:
        if not files:
            return
        if query.tail is not None:
            first = await asyncio.to_thread(_tail_start, files, query.tail)
            _close(files[:first])
            del files[:first]
        while True:
            current = files[-1]
            for older in files[:-1]:  # rotated files are complete: read them through
                while records := await asyncio.to_thread(_read_records, older):
                    batch, ended = _select(records, query)
                    if batch:
                        yield batch
                    if ended:
                        return
            _close(files[:-1])
            del files[:-1]
            while True:
                records = await asyncio.to_thread(_read_records, current)
                batch, ended = _select(records, query)
                if batch:
                    yield batch
                if ended:
                    return
                if records:
                    continue
                if not query.follow:
                    return
                st = await asyncio.to_thread(_stat, path)
                if st is not None and st.st_ino != current.inode:
                    break  # rotated: drain, then move on (below)
                if st is not None and st.st_size < current.offset:
                    current.offset = 0  # truncated in place (max-file 1): start over
                    continue
                if not still_running():
                    # one last read: the shim flushes its last records before the exit
                    if not await asyncio.to_thread(_has_more, current):
                        return
                    continue
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
            # the old file is complete now: what is left in it comes first, then the
            # files written since, in order
            newer = await asyncio.to_thread(_switch, path, current)
            files[:] = [current, *newer]
            if not newer:  # mid-rotation, nothing newer to open yet: look again
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        _close(files)


def _select(records: list[LogRecord], query: LogQuery) -> tuple[list[LogRecord], bool]:
    """The records ``query`` wants, and whether one past ``until`` ended the read."""
    if not (query.since or query.until) and query.stdout and query.stderr:
        return records, False
    out: list[LogRecord] = []
    for rec in records:
        if query.until and rec.timestamp > query.until:
            return out, True
        if _wanted(rec, query):
            out.append(rec)
    return out, False


def _stat(path: str) -> os.stat_result | None:
    try:
        return os.stat(path)
    except OSError:
        return None


def _has_more(f: _Open) -> bool:
    return os.fstat(f.fd).st_size > f.offset
