"""Exec instances: extra processes in running containers (``docker exec``).

Lifecycle (as dockerd's): ``create`` records an ``ExecRecord`` for a running container
(nothing runs yet); ``start`` builds the OCI process from the container's bundle
(``config.json``'s process with the exec's argv, env, user, cwd, tty, capabilities) and
asks the container's shim to run it; the ``ExecSession`` it returns pumps the output to
a sink and ends with the exit code, which ``inspect`` then reports. The shim owns the
process: if nobody reads (a detached exec, a client that left), the output is dropped
and the exit code is still recorded. Records live in memory, with their container.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hafen.errors import Conflict, HafenError, InvalidArgument, NotFound
from hafen.oci import defaults
from hafen.oci.user import resolve_user
from hafen.shim.client import ShimClient
from hafen.shim.execs import EXIT_STREAM

if TYPE_CHECKING:
    from hafen.containers.service import ContainerService

log = logging.getLogger("hafen.containers.exec")

START_FAILED_EXIT_CODE = 126  # dockerd's code when the runtime cannot start the process
FINISHED_KEPT = 64  # finished execs remembered per container
Sink = Callable[[int, bytes], Awaitable[None]]


class ExecNotFound(NotFound):
    def __init__(self, exec_id: str) -> None:
        super().__init__(f"No such exec instance: {exec_id}")


@dataclass
class ExecConfig:
    """What the client asked for (Docker's ``ExecConfig``)."""

    cmd: list[str]
    env: list[str] = field(default_factory=list)
    user: str = ""
    working_dir: str = ""
    tty: bool = False
    attach_stdin: bool = False
    attach_stdout: bool = False
    attach_stderr: bool = False
    privileged: bool = False
    detach_keys: str = ""


@dataclass
class ExecRecord:
    id: str
    container_id: str
    config: ExecConfig
    running: bool = False
    started: bool = False
    exit_code: int | None = None
    pid: int = 0
    pending_size: tuple[int, int] | None = None  # a resize that came before the process
    done: asyncio.Event = field(default_factory=asyncio.Event)


class ExecSession:
    """A started exec: ``pump`` its output into a sink; ``write``/``close_stdin`` its input."""

    def __init__(
        self,
        service: ExecService,
        record: ExecRecord,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.service = service
        self.record = record
        self.reader = reader
        self.writer = writer

    async def pump(self, sink: Sink | None) -> int:
        """Deliver output frames to ``sink`` until the exit; the exit code.

        A sink that raises (the client went away) is dropped and the output discarded, so
        the exit code is still recorded.
        """
        code: int | None = None
        try:
            while True:
                try:
                    header = await self.reader.readexactly(8)
                    stream, size = struct.unpack(">BxxxL", header)
                    payload = await self.reader.readexactly(size)
                except (asyncio.IncompleteReadError, ConnectionError):
                    break
                if stream == EXIT_STREAM:
                    with contextlib.suppress(ValueError, KeyError, TypeError):
                        code = int(json.loads(payload)["exit_code"])
                    break
                if sink is not None:
                    try:
                        await sink(stream, payload)
                    except (ConnectionError, OSError):
                        sink = None
        finally:
            self.writer.close()
            self.service._finished(self.record, code if code is not None else 137)
        return self.record.exit_code if self.record.exit_code is not None else 137

    async def write(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    def close_stdin(self) -> None:
        with contextlib.suppress(OSError):
            if self.writer.can_write_eof():
                self.writer.write_eof()


class ExecService:
    """Exec records of every container, and the start path through the shim."""

    def __init__(self, containers: ContainerService) -> None:
        self.containers = containers
        self._execs: dict[str, ExecRecord] = {}
        self.on_event: Callable[[str, ExecRecord], None] | None = None

    def _emit(self, action: str, record: ExecRecord) -> None:
        if self.on_event is not None:
            self.on_event(action, record)

    def create(self, ref: str, config: ExecConfig) -> ExecRecord:
        c = self.containers.get(ref)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        if c.state.status.value == "paused":
            raise Conflict(f"Container {c.id} is paused, unpause the container before exec")
        if not config.cmd:
            raise InvalidArgument("No exec command specified")
        record = ExecRecord(id=secrets.token_hex(32), container_id=c.id, config=config)
        self._execs[record.id] = record
        self._trim(c.id)
        self._emit("exec_create", record)
        return record

    def get(self, exec_id: str) -> ExecRecord:
        record = self._execs.get(exec_id)
        if record is None:
            raise ExecNotFound(exec_id)
        return record

    def of_container(self, container_id: str) -> list[ExecRecord]:
        return [r for r in self._execs.values() if r.container_id == container_id]

    def forget_container(self, container_id: str) -> None:
        for record in self.of_container(container_id):
            del self._execs[record.id]

    def _trim(self, container_id: str) -> None:
        finished = [r for r in self.of_container(container_id) if r.started and not r.running]
        for record in finished[:-FINISHED_KEPT]:
            del self._execs[record.id]

    async def start(self, exec_id: str, console_size: tuple[int, int] | None = None) -> ExecSession:
        """Run the exec; raises Conflict when it already ran, HafenError when it cannot."""
        record = self.get(exec_id)
        if record.started:
            raise Conflict(f"Error: Exec command {exec_id} has already run")
        c = self.containers.get(record.container_id)
        if not c.state.running:
            raise Conflict(f"Container {c.id} is not running")
        record.started = True
        record.running = True
        state_dir = self.containers._state_dir(c)
        try:
            process = await asyncio.to_thread(_exec_process, state_dir, record.config)
            if record.config.tty and console_size is not None:
                # the runtime sizes the pty before the process runs
                process["consoleSize"] = {"height": console_size[0], "width": console_size[1]}
                record.pending_size = None
            pid, reader, writer = await ShimClient(str(state_dir)).exec(
                record.id, process, record.config.attach_stdin
            )
        except HafenError:
            self._finished(record, START_FAILED_EXIT_CODE, emit_die=False)
            raise
        except (OSError, ValueError, KeyError) as e:
            self._finished(record, START_FAILED_EXIT_CODE, emit_die=False)
            raise HafenError(f"cannot exec in container {c.short_id}: {e}") from e
        record.pid = pid
        if record.pending_size is not None and record.config.tty:
            height, width = record.pending_size
            try:
                await ShimClient(str(state_dir)).resize_exec(record.id, height, width)
            except HafenError as e:  # the process may already be gone
                log.debug("initial resize of exec %s: %s", record.id[:12], e)
        self._emit("exec_start", record)
        return ExecSession(self, record, reader, writer)

    def _finished(self, record: ExecRecord, code: int, emit_die: bool = True) -> None:
        if record.exit_code is None:
            record.exit_code = code
        record.running = False
        record.pid = 0
        record.done.set()
        if emit_die:
            self._emit("exec_die", record)

    async def kill(self, exec_id: str, signal: int = 9) -> None:
        """Signal a running exec's process and every process it started (a probe that
        timed out); an exec that already ended is left alone."""
        record = self.get(exec_id)
        if not record.running:
            return
        c = self.containers.get(record.container_id)
        await ShimClient(str(self.containers._state_dir(c))).kill_exec(exec_id, signal)

    async def resize(self, exec_id: str, height: int, width: int) -> None:
        record = self.get(exec_id)
        if not record.running:
            raise Conflict(f"Exec {exec_id} is not running")
        if record.pid == 0:  # starting: applied as soon as the process exists
            record.pending_size = (height, width)
            return
        c = self.containers.get(record.container_id)
        await ShimClient(str(self.containers._state_dir(c))).resize_exec(exec_id, height, width)


def _exec_process(state_dir: Path, config: ExecConfig) -> dict[str, Any]:
    """The container's OCI process, turned into the exec's (worker thread)."""
    spec = json.loads((state_dir / "config.json").read_text())
    process: dict[str, Any] = dict(spec["process"])
    process["args"] = list(config.cmd)
    process["terminal"] = config.tty
    process.pop("consoleSize", None)
    env: dict[str, str] = {}
    for item in [*process.get("env", []), *config.env]:
        key, sep, _ = item.partition("=")
        env[key] = item if sep else f"{key}="
    if config.tty and "TERM" not in env:
        env["TERM"] = "TERM=xterm"
    process["env"] = list(env.values())
    if config.working_dir:
        if not config.working_dir.startswith("/"):
            raise InvalidArgument(
                f"the working directory '{config.working_dir}' is invalid, it needs to be "
                "an absolute path"
            )
        process["cwd"] = config.working_dir
    if config.user:
        rootfs = state_dir / "rootfs"
        user = resolve_user(rootfs, config.user)
        user_spec: dict[str, Any] = {"uid": user.uid, "gid": user.gid}
        if user.additional_gids:
            user_spec["additionalGids"] = user.additional_gids
        process["user"] = user_spec
        if "HOME" not in {e.partition("=")[0] for e in config.env}:
            env["HOME"] = f"HOME={user.home or '/'}"
            process["env"] = list(env.values())
    if config.privileged:
        caps = _bounded(defaults.ALL_CAPABILITIES)
        process["capabilities"] = {
            "bounding": caps,
            "effective": caps,
            "permitted": caps,
        }
    return process


def _bounded(names: tuple[str, ...]) -> list[str]:
    """The capabilities this daemon itself may grant (its bounding set; the list index is
    the capability number): a sandboxed host may lack some, and asking for those fails."""
    try:
        with open("/proc/self/status") as f:
            line = next(ln for ln in f if ln.startswith("CapBnd:"))
        mask = int(line.split()[1], 16)
    except (OSError, StopIteration, ValueError, IndexError):
        return list(names)
    return [name for bit, name in enumerate(names) if mask >> bit & 1]


__all__ = ["ExecConfig", "ExecNotFound", "ExecRecord", "ExecService", "ExecSession"]
