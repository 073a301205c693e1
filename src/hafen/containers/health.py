"""Healthchecks: probes run through exec, dockerd's status machine, ``health_status`` events.

Lifecycle per running container with a check (the image's ``HEALTHCHECK`` or the
container's ``Healthcheck``; ``Test: ["NONE"]`` disables): the status starts as
``starting``; every ``Interval`` a probe runs (``CMD`` args, or ``CMD-SHELL`` through
``/bin/sh -c``) as an exec with its output kept (4 KiB); exit 0 → ``healthy`` and the
failing streak is reset; anything else adds to the streak — so does a probe past
``Timeout``, which is killed with every process it started (exit code -1, as dockerd
records it) — and once it reaches ``Retries`` the status is ``unhealthy``, except that
failures inside ``StartPeriod`` do not count. The last 5 results are kept in ``Log``; every change of
status publishes ``health_status: <status>``. The monitor ends with the container.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from hafen.containers.execs import ExecConfig
from hafen.errors import HafenError, InvalidArgument

if TYPE_CHECKING:
    from hafen.containers.model import Container
    from hafen.containers.service import ContainerService

log = logging.getLogger("hafen.containers.health")

NS = 1_000_000_000
DEFAULT_INTERVAL = 30 * NS
DEFAULT_TIMEOUT = 30 * NS
DEFAULT_RETRIES = 3
MIN_DURATION = 1_000_000  # dockerd refuses intervals under 1 ms
MAX_OUTPUT = 4096
MAX_LOG_ENTRIES = 5
PROBE_KILL_GRACE = 5.0  # how long a killed probe may take to be reaped


@dataclass
class HealthResult:
    Start: str
    End: str
    ExitCode: int
    Output: str


@dataclass
class HealthState:
    """Docker's ``State.Health``."""

    Status: str = "starting"
    FailingStreak: int = 0
    Log: list[HealthResult] = field(default_factory=list)

    def to_api(self) -> dict[str, Any]:
        return {
            "Status": self.Status,
            "FailingStreak": self.FailingStreak,
            "Log": [asdict(r) for r in self.Log],
        }


def validate_healthcheck(check: dict[str, Any] | None) -> None:
    """Docker's checks on a ``Healthcheck`` object; InvalidArgument names the field."""
    if not check:
        return
    test = check.get("Test")
    if test is not None and (
        not isinstance(test, list) or not all(isinstance(t, str) for t in test)
    ):
        raise InvalidArgument("Healthcheck.Test must be a list of strings")
    if test and test[0] not in ("NONE", "CMD", "CMD-SHELL", ""):
        raise InvalidArgument(f"unknown healthcheck type {test[0]!r} (use CMD, CMD-SHELL or NONE)")
    for key in ("Interval", "Timeout", "StartPeriod", "StartInterval"):
        value = check.get(key, 0) or 0
        if not isinstance(value, int) or value < 0:
            raise InvalidArgument(f"Healthcheck.{key} must be a non-negative duration in ns")
        if 0 < value < MIN_DURATION:
            raise InvalidArgument(f"Healthcheck.{key} in HealthConfig cannot be less than 1ms")
    retries = check.get("Retries", 0) or 0
    if not isinstance(retries, int) or retries < 0:
        raise InvalidArgument("Healthcheck.Retries must be a non-negative integer")


def merge_healthcheck(
    own: dict[str, Any] | None, image: dict[str, Any] | None
) -> dict[str, Any] | None:
    """The container's check over the image's, field by field (as dockerd merges them)."""
    if not own:
        return dict(image) if image else None
    if not image or (own.get("Test") or [""])[0] == "NONE":
        return dict(own)
    merged = dict(image)
    for key, value in own.items():
        if value not in (None, 0, [], ""):
            merged[key] = value
    return merged


def probe_command(check: dict[str, Any] | None) -> list[str] | None:
    """The argv a check runs; None when there is no check (or ``NONE``)."""
    if not check:
        return None
    test = list(check.get("Test") or [])
    if not test or test[0] == "NONE":
        return None
    if test[0] == "CMD":
        return test[1:] or None
    if test[0] == "CMD-SHELL":
        return ["/bin/sh", "-c", " ".join(test[1:])] if test[1:] else None
    return test  # a bare list (old API versions): run as is


class HealthMonitor:
    """One task per running container with a check."""

    def __init__(self, service: ContainerService) -> None:
        self.service = service
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, c: Container) -> None:
        self.stop(c.id)
        command = probe_command(c.config.healthcheck)
        if command is None:
            c.state.health = None
            return
        c.state.health = asdict(HealthState())
        self._tasks[c.id] = asyncio.get_running_loop().create_task(
            self._run(c, command), name=f"health-{c.short_id}"
        )

    def stop(self, container_id: str) -> None:
        task = self._tasks.pop(container_id, None)
        if task is not None and task is not asyncio.current_task():
            task.cancel()

    def stop_all(self) -> None:
        for container_id in list(self._tasks):
            self.stop(container_id)

    async def _run(self, c: Container, command: list[str]) -> None:
        check = c.config.healthcheck or {}
        interval = (check.get("Interval") or DEFAULT_INTERVAL) / NS
        timeout = (check.get("Timeout") or DEFAULT_TIMEOUT) / NS
        retries = check.get("Retries") or DEFAULT_RETRIES
        start_period = (check.get("StartPeriod") or 0) / NS
        start_interval = (check.get("StartInterval") or 0) / NS or interval
        loop = asyncio.get_running_loop()
        began = loop.time()
        while True:
            in_start_period = loop.time() - began < start_period
            await asyncio.sleep(start_interval if in_start_period else interval)
            if not c.state.running:
                return
            result = await self._probe(c, command, timeout)
            in_start_period = loop.time() - began < start_period
            self._record(c, result, retries, in_start_period)

    async def _probe(self, c: Container, command: list[str], timeout: float) -> HealthResult:
        from hafen.containers.service import now_rfc3339

        start = now_rfc3339()
        execs = self.service.execs
        output = bytearray()

        async def sink(_stream: int, data: bytes) -> None:
            if len(output) < MAX_OUTPUT:
                output.extend(data[: MAX_OUTPUT - len(output)])

        try:
            record = execs.create(
                c.id, ExecConfig(cmd=command, attach_stdout=True, attach_stderr=True)
            )
            began = asyncio.get_running_loop().time()
            try:  # the timeout covers the whole probe, its start included
                session = await asyncio.wait_for(execs.start(record.id), timeout)
            except TimeoutError:
                await self._kill_probe(record.id, None)
                return HealthResult(
                    start, now_rfc3339(), -1, f"Health check exceeded timeout ({timeout:g}s)"
                )
            session.close_stdin()
            pump = asyncio.ensure_future(session.pump(sink))
            left = max(0.0, timeout - (asyncio.get_running_loop().time() - began))
            try:
                done, _ = await asyncio.wait({pump}, timeout=left)
                if not done:
                    # as dockerd: a probe past its timeout is killed (here with all it
                    # started, or every probe would leave processes behind) and fails
                    await self._kill_probe(record.id, pump)
                    return HealthResult(
                        start, now_rfc3339(), -1, f"Health check exceeded timeout ({timeout:g}s)"
                    )
                code = pump.result()
            finally:
                if not pump.done():
                    pump.cancel()
        except HafenError as e:
            return HealthResult(start, now_rfc3339(), -1, e.message)
        return HealthResult(start, now_rfc3339(), code, output.decode("utf-8", "replace"))

    async def _kill_probe(self, exec_id: str, pump: asyncio.Future[int] | None) -> None:
        try:
            await self.service.execs.kill(exec_id, 9)
        except HafenError as e:  # the shim or the container went away meanwhile
            log.debug("killing probe %s: %s", exec_id[:12], e)
        if pump is not None:
            with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(pump), PROBE_KILL_GRACE)

    def _record(self, c: Container, result: HealthResult, retries: int, starting: bool) -> None:
        raw = c.state.health or asdict(HealthState())
        state = HealthState(
            Status=raw.get("Status", "starting"),
            FailingStreak=int(raw.get("FailingStreak", 0)),
            Log=[HealthResult(**r) for r in raw.get("Log") or []],
        )
        before = state.Status
        state.Log = [*state.Log, result][-MAX_LOG_ENTRIES:]
        if result.ExitCode == 0:
            state.Status, state.FailingStreak = "healthy", 0
        elif not starting:
            state.FailingStreak += 1
            if state.FailingStreak >= retries:
                state.Status = "unhealthy"
        c.state.health = asdict(state)
        if state.Status != before:
            self.service.event(c, f"health_status: {state.Status}")
        task = asyncio.get_running_loop().create_task(self.service._save(c))
        self.service._background.add(task)
        task.add_done_callback(self.service._background.discard)


__all__ = [
    "HealthMonitor",
    "HealthResult",
    "HealthState",
    "merge_healthcheck",
    "probe_command",
    "validate_healthcheck",
]
