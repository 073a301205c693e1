"""The daemon's event bus: what happened to containers, images, networks and volumes.

Lifecycle of an event: a service calls ``publish(type, action, actor_id, attributes)``
(services get the bound method; they import nothing from here); the bus stamps it with
the time, appends it to an in-memory ring (the last ``RING_SIZE`` events), hands it to
every live subscriber, and queues it for ``events.jsonl`` in the data root, which a
worker thread appends to in batches (so ``events --since`` reaches back across daemon
restarts; the file is cut back to the ring's size when it grows past twice that).

A subscriber (``subscribe``) first replays the ring from ``since`` and then follows live
events until ``until``. A subscriber that does not keep up (its queue overflows) is
ended rather than slowing the daemon down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import time
from collections import deque
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("hafen.events")

RING_SIZE = 1024
SUBSCRIBER_QUEUE = 4096
EVENT_TYPES = ("container", "image", "network", "volume", "daemon", "plugin", "builder")


@dataclass
class Event:
    type: str
    action: str
    actor_id: str
    attributes: dict[str, str] = field(default_factory=dict)
    time_nano: int = 0
    scope: str = "local"

    @property
    def time(self) -> int:
        return self.time_nano // 1_000_000_000

    def to_json(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "action": self.action,
            "id": self.actor_id,
            "attributes": self.attributes,
            "time_nano": self.time_nano,
            "scope": self.scope,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Event:
        return cls(
            type=str(raw["type"]),
            action=str(raw["action"]),
            actor_id=str(raw["id"]),
            attributes={str(k): str(v) for k, v in dict(raw.get("attributes") or {}).items()},
            time_nano=int(raw["time_nano"]),
            scope=str(raw.get("scope", "local")),
        )


EventFilter = Callable[[Event], bool]


class _Subscriber:
    def __init__(self, accept: EventFilter) -> None:
        self.accept = accept
        self.queue: asyncio.Queue[Event | None] = asyncio.Queue(SUBSCRIBER_QUEUE)
        self.overflowed = False

    def offer(self, event: Event) -> None:
        if self.overflowed or not self.accept(event):
            return
        try:
            self.queue.put_nowait(event)
        except asyncio.QueueFull:
            self.overflowed = True
            log.warning("dropping an events subscriber that does not keep up")
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
            self.queue.put_nowait(None)


class EventBus:
    """Publish events; replay and follow them."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self._ring: deque[Event] = deque(maxlen=RING_SIZE)
        self._subscribers: set[_Subscriber] = set()
        self._pending: list[Event] = []
        self._flushing = False
        self._flush_task: asyncio.Task[None] | None = None
        self._written = 0
        self._last_nano = 0
        if path is not None:
            self._load(path)

    def _load(self, path: Path) -> None:
        try:
            with open(path) as f:
                lines = f.readlines()
        except FileNotFoundError:
            return
        except OSError as e:
            log.warning("cannot read past events from %s: %s", path, e)
            return
        for line in lines[-RING_SIZE:]:
            try:
                self._ring.append(Event.from_json(json.loads(line)))
            except (ValueError, KeyError, TypeError):
                continue  # a torn last line after a crash
        self._written = len(lines)
        if self._ring:
            self._last_nano = self._ring[-1].time_nano

    # ------------------------------------------------------------------ publish

    def publish(
        self,
        type: str,
        action: str,
        actor_id: str,
        attributes: dict[str, str] | None = None,
    ) -> Event:
        # strictly increasing stamps keep since/until boundaries and ordering exact
        now = max(time.time_ns(), self._last_nano + 1)
        self._last_nano = now
        event = Event(type, action, actor_id, dict(attributes or {}), now)
        self._ring.append(event)
        for sub in list(self._subscribers):
            sub.offer(event)
        if self.path is not None:
            self._pending.append(event)
            self._schedule_flush()
        return event

    def _schedule_flush(self) -> None:
        if self._flushing:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self._flush_sync()
            return
        self._flushing = True
        self._flush_task = loop.create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                await asyncio.to_thread(self._append, batch)
        finally:
            self._flushing = False

    def _flush_sync(self) -> None:
        batch, self._pending = self._pending, []
        if batch:
            self._append(batch)

    def _append(self, batch: list[Event]) -> None:
        assert self.path is not None
        data = "".join(json.dumps(e.to_json(), separators=(",", ":")) + "\n" for e in batch)
        try:
            with open(self.path, "a") as f:
                f.write(data)
            self._written += len(batch)
            if self._written > 2 * RING_SIZE:
                self._compact()
        except OSError as e:
            log.warning("cannot record events in %s: %s", self.path, e)

    def _compact(self) -> None:
        """Keep the newest RING_SIZE lines (worker thread)."""
        assert self.path is not None
        with open(self.path) as f:
            lines = f.readlines()[-RING_SIZE:]
        tmp = self.path.with_suffix(".tmp")
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.replace(tmp, self.path)
        self._written = len(lines)

    async def close(self) -> None:
        if self._flush_task is not None:
            with contextlib.suppress(Exception):
                await self._flush_task
        if self.path is not None and self._pending:
            batch, self._pending = self._pending, []
            await asyncio.to_thread(self._append, batch)
        for sub in list(self._subscribers):
            with contextlib.suppress(asyncio.QueueFull):
                sub.queue.put_nowait(None)

    # ------------------------------------------------------------------ subscribe

    def past(self, since_nano: int, until_nano: int | None, accept: EventFilter) -> list[Event]:
        return [
            e
            for e in self._ring
            if e.time_nano >= since_nano
            and (until_nano is None or e.time_nano <= until_nano)
            and accept(e)
        ]

    async def subscribe(
        self, since_nano: int | None, until_nano: int | None, accept: EventFilter
    ) -> AsyncGenerator[Event, None]:
        """Past events from ``since`` (none when it is None), then live ones until ``until``."""
        batches = self.subscribe_batches(since_nano, until_nano, accept)
        try:
            async for batch in batches:
                for event in batch:
                    yield event
        finally:
            await batches.aclose()

    async def subscribe_batches(
        self, since_nano: int | None, until_nano: int | None, accept: EventFilter
    ) -> AsyncGenerator[list[Event], None]:
        """``subscribe`` in batches (never empty): the whole replay at once, then the live
        events that are queued each time the subscriber looks (so a writer sends them with
        one write, not one per event)."""
        sub = _Subscriber(accept)
        self._subscribers.add(sub)  # before the replay: nothing falls between the two
        try:
            replayed = self.past(since_nano, until_nano, accept) if since_nano is not None else []
            last = replayed[-1].time_nano if replayed else 0
            if replayed:
                yield replayed
            while True:
                timeout = None
                if until_nano is not None:
                    timeout = (until_nano - time.time_ns()) / 1e9
                    if timeout <= 0:
                        return
                try:
                    items = [await asyncio.wait_for(sub.queue.get(), timeout)]
                except TimeoutError:
                    return
                while not sub.queue.empty():
                    items.append(sub.queue.get_nowait())
                batch: list[Event] = []
                ended = False
                for item in items:
                    if item is None or (until_nano is not None and item.time_nano > until_nano):
                        ended = True
                        break
                    if item.time_nano > last:  # else already replayed
                        batch.append(item)
                if batch:
                    last = batch[-1].time_nano
                    yield batch
                if ended:
                    return
        finally:
            self._subscribers.discard(sub)


__all__ = ["EVENT_TYPES", "Event", "EventBus", "EventFilter"]
