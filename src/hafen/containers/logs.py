"""Reading a container's json-file log (written by its shim), with follow, tail and time filters.

The shim appends one JSON object per line: ``{"log": "...", "stream": "stdout",
"time": "...Z"}``. Reads happen in worker threads; following polls the file size, which
is cheap and needs no inotify plumbing, follows the file by descriptor across rotations,
and stops once the container has exited and the file has been read to its end.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime

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
    file is never freed (nor its inode number reused) while a reader is behind."""

    fd: int
    inode: int
    offset: int = 0


def _read_records(f: _Open) -> list[LogRecord]:
    """Complete lines from ``f.offset`` (one chunk), advancing the offset past them."""
    data = os.pread(f.fd, _CHUNK, f.offset)
    end = data.rfind(b"\n")
    if end < 0:
        return []
    f.offset += end + 1
    return _parse_lines(data[: end + 1].splitlines())


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
    """The rotated files (oldest first) and then the current one."""
    rotated: list[tuple[int, str]] = []
    directory, base = os.path.split(path)
    try:
        names = os.listdir(directory or ".")
    except OSError:
        names = []
    for name in names:
        prefix, dot, number = name.rpartition(".")
        if prefix == base and dot and number.isdigit():
            rotated.append((int(number), os.path.join(directory, name)))
    return [p for _n, p in sorted(rotated, reverse=True)] + [path]


def _count_lines(fd: int) -> int:
    count, offset = 0, 0
    while chunk := os.pread(fd, 1 << 20, offset):
        count += chunk.count(b"\n")
        offset += len(chunk)
    return count


def _inode_of(path: str) -> int:
    try:
        return os.stat(path).st_ino
    except OSError:
        return 0


def _close(files: list[_Open]) -> None:
    for f in files:
        os.close(f.fd)
    files.clear()


def _snapshot(path: str) -> list[_Open]:
    """Open every retained file, oldest first, the current one last — a consistent set:
    a rotation while they are opened shifts names, so the names are checked again
    afterwards and the set is opened anew until no name moved (bounded)."""
    for _attempt in range(200):
        names = _log_files(path)
        opened: list[tuple[str, _Open]] = []
        for name in names:
            try:
                fd = os.open(name, os.O_RDONLY | os.O_CLOEXEC)
            except FileNotFoundError:
                continue
            opened.append((name, _Open(fd, os.fstat(fd).st_ino)))
        files = [f for _n, f in opened]
        if not opened and not os.path.exists(path) and len(names) == 1:
            return []  # no log at all (yet)
        if (
            len(opened) == len(names)
            and _log_files(path) == names
            and all(_inode_of(name) == f.inode for name, f in opened)
        ):
            return files
        _close(files)  # a rotation ran meanwhile: look again
        time.sleep(0.002)
    raise OSError(f"log files of {path} keep moving; cannot read them")


def _switch(path: str, current: _Open) -> list[_Open]:
    """After a rotation of ``current``: the files written since, oldest first, the new
    current one last (some may have been dropped already if several rotations ran)."""
    files = _snapshot(path)
    inodes = [f.inode for f in files]
    if current.inode in inodes:
        keep = inodes.index(current.inode) + 1
        _close(files[:keep])
        return files[keep:]
    return files  # ours was dropped: everything retained is newer


def _tail_start(files: list[_Open], lines: int) -> int:
    """Drop the files before the last ``lines`` records; set the first one's offset."""
    needed = lines
    for index in range(len(files) - 1, -1, -1):
        count = _count_lines(files[index].fd)
        if count >= needed or index == 0:
            files[index].offset = _tail_offset(files[index].fd, min(needed, count))
            return index
        needed -= count
    return len(files) - 1


async def read_logs(
    path: str, query: LogQuery, still_running: Callable[[], bool]
) -> AsyncIterator[LogRecord]:
    """Yield the records ``query`` selects, through rotated files; with ``follow``, keep
    going until the container stops (see ``read_log_batches``)."""
    async for batch in read_log_batches(path, query, still_running):
        for rec in batch:
            yield rec


async def read_log_batches(
    path: str, query: LogQuery, still_running: Callable[[], bool]
) -> AsyncIterator[list[LogRecord]]:
    """``read_logs`` a chunk of the file at a time (up to 256 KiB of records, never
    empty): a reader that sends them on writes once per chunk, not once per line.

    Following holds the current file open: at its end, a new inode at ``path`` means a
    rotation, so the old file is drained to its end (its writer closed it before the
    rename), then every file written since is read in order — so no record is lost or
    repeated however many rotations ran between two reads, unless they were dropped
    (``max-file``) before the follower got to them.
    """
    files = await asyncio.to_thread(_snapshot, path)
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
