"""``--log-opt mode=non-blocking``: a bounded buffer between the container's output and
its log file, so that a slow log file never blocks the container.

The shim's loop encodes the container's output into records (cheap) and ``put``s them
here without ever waiting on the file; one writer thread takes everything queued and
writes it (rotation and gzip of rotated files included, which in blocking mode run on
the loop). At most ``max_bytes`` of records wait (``max-buffer-size``, dockerd's default
1 MiB); a record that does not fit is dropped whole, as dockerd's ring buffer drops it
(a record larger than the whole buffer still goes in when nothing waits). Drops are
counted, said once in ``shim.log`` when they start and totalled at ``close``.

The thread never prints through ``sys.stderr`` (only ``os.write``): the shim forks its
runtime verbs, and a lock held by this thread at a fork would stay held in the child.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable

DEFAULT_MAX_BYTES = 1024 * 1024  # dockerd's defaultRingMaxSize
CLOSE_TIMEOUT = 10.0  # at exit: what is still queued gets this long to reach the file


def _say(message: str) -> None:
    try:
        os.write(2, f"hafen-shim: {message}\n".encode())
    except OSError:
        pass


class LogRing:
    """Records queued for a writer thread, at most ``max_bytes`` of them (see module doc)."""

    def __init__(self, write: Callable[[list[bytes]], None], max_bytes: int, path: str) -> None:
        self._write = write
        self.max_bytes = max_bytes
        self._path = path
        self._queue: deque[bytes] = deque()
        self._bytes = 0
        self._cond = threading.Condition()
        self._closed = False
        self.dropped = 0
        self.written = 0
        self._thread = threading.Thread(target=self._run, name="log-writer", daemon=True)
        self._thread.start()

    @property
    def queued_bytes(self) -> int:
        return self._bytes

    def put(self, records: list[bytes]) -> None:
        """Queue whole records; drop (and count) those that do not fit. Never waits on
        the file: the lock is only ever held to move records in or out of the queue."""
        dropped = 0
        with self._cond:
            for record in records:
                if self._closed or (self._bytes + len(record) > self.max_bytes and self._queue):
                    dropped += 1
                    continue
                self._queue.append(record)
                self._bytes += len(record)
            self._cond.notify()
        if dropped:
            if not self.dropped:
                _say(
                    f"log buffer full (max-buffer-size {self.max_bytes} bytes): dropping "
                    f"records for {self._path} while the file falls behind"
                )
            self.dropped += dropped

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._closed:
                    self._cond.wait()
                if not self._queue:
                    return
                batch = list(self._queue)
                self._queue.clear()
                self._bytes = 0
            try:
                self._write(batch)  # OSError (a full disk) is the writer's own to report
            except Exception as e:  # a bug must not end the thread and drop all that follows
                _say(f"writing {self._path} failed: {e!r}; {len(batch)} log records lost")
                continue
            self.written += len(batch)

    def close(self, timeout: float = CLOSE_TIMEOUT) -> bool:
        """Write what is queued (waiting at most ``timeout``) and stop the thread; False
        when the file did not take it in time (the rest is lost with the shim)."""
        with self._cond:
            self._closed = True
            self._cond.notify()
        self._thread.join(timeout)
        done = not self._thread.is_alive()
        if not done:
            with self._cond:
                left = len(self._queue)
            _say(f"writing {self._path} stalled: {left} queued log records not written")
        if self.dropped:
            _say(f"{self.dropped} log records for {self._path} were dropped (buffer full)")
        return done
