"""Reading a container's log (written by its shim), with follow, tail and time filters.

The records' forms (json-file lines, ``local`` frames) are ``logformat``'s; the files
(rotated, maybe gzipped, held open across rotations) are ``logfiles``'. Reads happen in
worker threads; following polls the file size, which is cheap and needs no inotify
plumbing, follows the file by descriptor across rotations, and stops once the
container has exited and the file has been read to its end.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

from hafen.containers.logfiles import (
    close_all,
    has_more,
    read_records,
    snapshot,
    stat_path,
    switch,
    tail_start,
)
from hafen.containers.logformat import LogRecord, parse_rfc3339

FOLLOW_POLL_SECONDS = 0.05


@dataclass
class LogQuery:
    stdout: bool = True
    stderr: bool = True
    follow: bool = False
    since: float = 0.0  # unix seconds; 0 = from the start
    until: float = 0.0  # unix seconds; 0 = no end
    tail: int | None = None  # last N records; None = all


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
    files = await asyncio.to_thread(snapshot, path, local)
    try:
        if not files:
            return
        if query.tail is not None:
            first = await asyncio.to_thread(tail_start, files, query.tail)
            close_all(files[:first])
            del files[:first]
        while True:
            current = files[-1]
            for older in files[:-1]:  # rotated files are complete: read them through
                while records := await asyncio.to_thread(read_records, older):
                    batch, ended = _select(records, query)
                    if batch:
                        yield batch
                    if ended:
                        return
            close_all(files[:-1])
            del files[:-1]
            while True:
                records = await asyncio.to_thread(read_records, current)
                batch, ended = _select(records, query)
                if batch:
                    yield batch
                if ended:
                    return
                if records:
                    continue
                if not query.follow:
                    return
                st = await asyncio.to_thread(stat_path, path)
                if st is not None and st.st_ino != current.inode:
                    break  # rotated: drain, then move on (below)
                if st is not None and st.st_size < current.offset:
                    current.offset = 0  # truncated in place (max-file 1): start over
                    continue
                if not still_running():
                    # one last read: the shim flushes its last records before the exit
                    if not await asyncio.to_thread(has_more, current):
                        return
                    continue
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
            # the old file is complete now: what is left in it comes first, then the
            # files written since, in order
            newer = await asyncio.to_thread(switch, path, current)
            files[:] = [current, *newer]
            if not newer:  # mid-rotation, nothing newer to open yet: look again
                await asyncio.sleep(FOLLOW_POLL_SECONDS)
    finally:
        close_all(files)


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


__all__ = [
    "FOLLOW_POLL_SECONDS",
    "LogQuery",
    "LogRecord",
    "parse_rfc3339",
    "read_log_batches",
    "read_logs",
]
