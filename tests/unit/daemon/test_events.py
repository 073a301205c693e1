"""The event bus: ordering, replay by time, live delivery, persistence, slow subscribers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from hafen.daemon.events import SUBSCRIBER_QUEUE, EventBus


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 10))


def test_stamps_are_strictly_increasing_and_replay_respects_since_until() -> None:
    bus = EventBus(None)
    events = [bus.publish("container", a, "c1") for a in ("create", "start", "die")]
    stamps = [e.time_nano for e in events]
    assert stamps == sorted(set(stamps))
    got = bus.past(stamps[1], stamps[2], lambda e: True)
    assert [e.action for e in got] == ["start", "die"]
    assert [e.action for e in bus.past(0, None, lambda e: e.action == "die")] == ["die"]


def test_subscribers_get_replay_then_live_until_until() -> None:
    bus = EventBus(None)
    first = bus.publish("image", "tag", "sha256:x", {"name": "a:b"})

    async def scenario() -> list[str]:
        seen: list[str] = []
        stream = bus.subscribe(first.time_nano, None, lambda e: True)
        seen.append((await anext(stream)).action)
        bus.publish("image", "untag", "sha256:x")
        seen.append((await anext(stream)).action)
        await stream.aclose()
        return seen

    assert run(scenario()) == ["tag", "untag"]


def test_events_persist_across_bus_instances(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def publish() -> None:
        bus = EventBus(path)
        bus.publish("volume", "create", "v1", {"driver": "local"})
        await bus.close()

    run(publish())
    again = EventBus(path)
    [event] = again.past(0, None, lambda e: True)
    assert (event.type, event.action, event.actor_id, event.attributes) == (
        "volume", "create", "v1", {"driver": "local"},
    )  # fmt: skip
    later = again.publish("volume", "destroy", "v1")
    assert later.time_nano > event.time_nano


def test_a_subscriber_that_does_not_keep_up_is_ended() -> None:
    bus = EventBus(None)

    async def scenario() -> int:
        stream = bus.subscribe(None, None, lambda e: True)
        task = asyncio.ensure_future(anext(stream))
        await asyncio.sleep(0)
        for i in range(SUBSCRIBER_QUEUE + 10):
            bus.publish("container", "exec_start", str(i))
        count = 1
        await task
        async for _ in stream:
            count += 1
        return count

    assert run(scenario()) <= SUBSCRIBER_QUEUE + 1


def test_batches_carry_the_whole_replay_at_once_then_what_is_queued() -> None:
    bus = EventBus(None)
    first = bus.publish("container", "create", "c1")
    bus.publish("container", "start", "c1")

    async def scenario() -> list[list[str]]:
        stream = bus.subscribe_batches(first.time_nano, None, lambda e: True)
        got = [[e.action for e in await anext(stream)]]
        for action in ("die", "destroy"):  # published before the subscriber looks again
            bus.publish("container", action, "c1")
        got.append([e.action for e in await anext(stream)])
        await stream.aclose()
        return got

    assert run(scenario()) == [["create", "start"], ["die", "destroy"]]
