"""The live-container verbs' bookkeeping of the container's status."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from hafen.containers.control import ContainerControl
from hafen.containers.model import ContainerStateRecord, ContainerStatus


class _ExitsOnResume:
    """A runtime whose resume lets the killed container exit, and the exit be recorded,
    before the resume returns: what a SIGKILL sent ahead of the thaw does."""

    def __init__(self, state: ContainerStateRecord) -> None:
        self.state = state

    def resume(self, container_id: str) -> None:
        self.state.status = ContainerStatus.EXITED


def test_thaw_for_stop_keeps_an_exit_recorded_during_the_resume() -> None:
    state = ContainerStateRecord(status=ContainerStatus.PAUSED)
    container: Any = SimpleNamespace(id="c" * 64, state=state)
    control = ContainerControl.__new__(ContainerControl)
    control.runtime = lambda c: _ExitsOnResume(state)  # type: ignore[method-assign]
    asyncio.run(control.thaw_for_stop(container))
    assert state.status == ContainerStatus.EXITED


def test_thaw_for_stop_marks_a_thawed_container_running() -> None:
    state = ContainerStateRecord(status=ContainerStatus.PAUSED)
    container: Any = SimpleNamespace(id="c" * 64, state=state)
    control = ContainerControl.__new__(ContainerControl)
    control.runtime = lambda c: SimpleNamespace(resume=lambda cid: None)  # type: ignore[method-assign]
    asyncio.run(control.thaw_for_stop(container))
    assert state.status == ContainerStatus.RUNNING
