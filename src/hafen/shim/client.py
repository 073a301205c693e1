"""The daemon's side of the shim: launch one, talk to it, read what it left behind.

    info = await launch_shim([sys.executable, "-S", "-m", "hafen.shim"], container_id=...,
                             bundle=..., state_dir=..., log_path=..., runtime=["runc"], ...)
    shim = ShimClient(state_dir)
    reader, writer = await shim.attach(stdin=True, stdout=True, stderr=True)  # before start
    await shim.start()
    status = await shim.wait()          # ExitStatus, also when the shim is already gone

Every request opens its own connection to ``<state-dir>/shim.sock``, sends one JSON line
and reads one JSON line back; ``attach`` then keeps the connection as a stream of
frames ``[stream:1][0,0,0][len:4 BE][payload]`` (shim → daemon) and raw stdin bytes
(daemon → shim; ``write_eof`` half-closes stdin). The shim outlives the daemon, so a
``ShimClient`` holds no state: a restarted daemon makes a new one for the same dir.

Failures raise ``hafen.errors.RuntimeFailure`` with the shim's (or runtime's) message.
Standard library only.

Launches go through a zygote (``hafen.shim.zygote``) when the shim command is
``... -m hafen.shim``: one pre-imported shim per shim command line and environment,
started on first use and alive as long as this process holds its socket; the exec'd
launcher is the fallback (zygote disabled with ``HAFEN_SHIM_ZYGOTE=0``, not startable,
or gone).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import subprocess
import threading
from collections.abc import Awaitable
from dataclasses import dataclass
from typing import Any, TypeGuard

from hafen.errors import RuntimeFailure
from hafen.shim.proto import (
    BUNDLE_READY,
    EXIT_FILE_NAME,
    INFO_FILE_NAME,
    SHIM_LOG_NAME,
    SOCKET_NAME,
    reachable_path,
)

LAUNCH_ABORT_TIMEOUT = 10.0  # seconds a shim gets to undo its set-up after no bundle
# seconds a waiter gives a shim, after the exit, to delete the runtime's state (a delete
# waits on the container's poststop hooks, bounded by the shim's own verb timeout)
SHIM_FINISH_TIMEOUT = 60.0

log = logging.getLogger(__name__)

ZYGOTE_START_TIMEOUT = 30.0


@dataclass
class ShimInfo:
    """What the launcher reported: the container init's host pid and the shim's pid;
    ``started``: the launch also started the container; ``attached``: the attach
    stream the launch connected (as ``ShimClient.attach`` returns it), if asked for
    and the launch could (the zygote's)."""

    pid: int
    shim_pid: int
    started: bool = False
    attached: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None


@dataclass
class ExitStatus:
    """How the container ended (``exit.json``, or the reply to ``wait``)."""

    exit_code: int
    exited_at: str
    oom_killed: bool = False

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> ExitStatus:
        return cls(
            exit_code=int(obj["exit_code"]),
            exited_at=str(obj.get("exited_at", "")),
            oom_killed=bool(obj.get("oom_killed", False)),
        )


def read_shim_info(state_dir: str) -> dict[str, int]:
    """``{"shim_pid", "pid"}`` as the shim recorded them at create (``shim.json``); {}
    when there is none."""
    try:
        with open(os.path.join(state_dir, INFO_FILE_NAME)) as f:
            raw = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(raw, dict):
        return {}
    return {k: int(v) for k, v in raw.items() if k in ("shim_pid", "pid") and isinstance(v, int)}


def read_exit_status(state_dir: str) -> ExitStatus | None:
    """The exit the shim recorded in ``<state_dir>/exit.json``; None if there is none."""
    try:
        with open(os.path.join(state_dir, EXIT_FILE_NAME)) as f:
            return ExitStatus.from_dict(json.load(f))
    except (OSError, ValueError, KeyError, TypeError):
        return None


async def launch_shim(
    argv_prefix: list[str],
    *,
    container_id: str,
    bundle: str,
    state_dir: str,
    log_path: str,
    runtime: list[str],
    runtime_root: str | None,
    tty: bool,
    stdin: bool,
    stdin_once: bool,
    env: dict[str, str] | None = None,
    log_max_size: int = 0,
    log_max_files: int = 1,
    log_attrs: dict[str, str] | None = None,
    log_format: str = "json-file",
    log_compress: bool = False,
    log_buffer_size: int | None = None,
    start: bool = False,
    attach: tuple[bool, bool, bool] | None = None,
    bundle_ready: Awaitable[None] | None = None,
) -> ShimInfo:
    """Run the shim's launcher and return once the container is created (not started).

    ``bundle_ready``: the bundle is still being made; a zygote-forked shim sets itself
    up meanwhile and creates once it is told the bundle is there (a byte on the report
    connection; its end closing instead means there will be none, and the shim undoes
    its set-up). An exec'd launcher starts after it. Its error is this call's.

    ``start``: and started, in the same launch, where nothing stands in the way: with
    ``attach`` (stdin, stdout, stderr) the attach stream must be connected before the
    start, which only the zygote's launch can do (its report connection becomes the
    stream); an exec'd launcher then only creates, and the caller attaches and starts.
    The returned ``started`` and ``attached`` say what was done.

    Raises RuntimeFailure with the runtime's message when the create (or the start)
    fails; the shim has then cleaned up after itself (no process, no runtime state, no
    socket).
    """
    import shlex

    argv = [
        *argv_prefix,
        "--id",
        container_id,
        "--bundle",
        bundle,
        "--state-dir",
        state_dir,
        "--log-path",
        log_path,
        "--runtime",
        shlex.join(runtime),
    ]
    if runtime_root:
        argv += ["--runtime-root", runtime_root]
    if tty:
        argv.append("--tty")
    if stdin:
        argv.append("--stdin")
    if stdin_once:
        argv.append("--stdin-once")
    if log_max_size:
        argv += ["--log-max-size", str(log_max_size), "--log-max-file", str(log_max_files)]
    if log_attrs:
        argv += ["--log-attrs", json.dumps(log_attrs, separators=(",", ":"))]
    if log_format != "json-file":
        argv += ["--log-format", log_format]
    if log_compress:
        argv.append("--log-compress")
    if log_buffer_size is not None:  # non-blocking: a bounded buffer before the file
        argv += ["--log-mode", "non-blocking", "--log-max-buffer-size", str(log_buffer_size)]
    zygote = await _zygote_for(argv_prefix, env)
    launched = None
    if zygote is not None:
        extra = []
        if start:
            extra.append("--start")
        if attach is not None:
            names = [n for n, on in zip(("stdin", "stdout", "stderr"), attach, strict=True) if on]
            extra += ["--report-attach", ",".join(names)]
        if bundle_ready is not None:
            extra.append("--await-bundle")
        launched = await zygote.launch(
            [*argv[len(argv_prefix) :], *extra], attach is not None, bundle_ready
        )
    stream = None
    if launched is not None:
        out, stream = launched
        err = b""
        returncode: int | None = 0  # a launcher reports a pid only when it succeeds
    else:
        if bundle_ready is not None:
            await bundle_ready
        if start and attach is None:
            argv.append("--start")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
                env=env,
            )
        except OSError as e:
            raise RuntimeFailure(f"cannot run the shim {argv_prefix[0]!r}: {e}") from e
        out, err = await proc.communicate()
        returncode = proc.returncode
    report: Any = None
    for line in out.decode(errors="replace").splitlines():
        with contextlib.suppress(ValueError):
            report = json.loads(line)
    if returncode == 0 and _is_success(report):
        return ShimInfo(
            pid=report["pid"],
            shim_pid=int(report.get("shim_pid", 0)),
            started=report.get("started") is True,
            attached=stream,
        )
    if stream is not None:
        stream[1].close()
    if isinstance(report, dict) and report.get("error"):
        raise RuntimeFailure(str(report["error"]))
    detail = err.decode(errors="replace").strip() or out.decode(errors="replace").strip()
    if launched is not None:
        # a zygote-forked shim writes what went wrong to its log only
        detail = detail or _log_tail(os.path.join(state_dir, SHIM_LOG_NAME))
        raise RuntimeFailure(
            f"shim for {container_id} ended without a report: {detail or 'no output'}"
        )
    raise RuntimeFailure(
        f"shim for {container_id} exited with status {returncode}: {detail or 'no output'}"
    )


async def _until_closed(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Until the shim ends the connection (bounded: a shim stuck in its clean-up does not
    hold its container's removal for good)."""
    try:
        await asyncio.wait_for(reader.read(), SHIM_FINISH_TIMEOUT)
    except (TimeoutError, OSError):
        pass
    finally:
        writer.close()


def _is_success(report: object) -> TypeGuard[dict[str, Any]]:
    """Whether a launch's decoded report line is a success (``{"pid": ...}``)."""
    return isinstance(report, dict) and isinstance(report.get("pid"), int)


def _decoded(line: bytes) -> object:
    try:
        return json.loads(line)
    except ValueError:
        return None


def _log_tail(path: str, limit: int = 2000) -> str:
    """The last lines of a shim's log (the caller may remove it next), or ""."""
    try:
        with open(path, "rb") as f:
            f.seek(max(0, os.fstat(f.fileno()).st_size - limit))
            return f.read().decode(errors="replace").strip()
    except OSError:
        return ""


class ShimZygote:
    """The daemon's handle on one running zygote: its process and its control socket."""

    def __init__(self, proc: subprocess.Popen[bytes], control: socket.socket) -> None:
        self.proc = proc
        self.control = control  # SOCK_SEQPACKET, non-blocking

    @classmethod
    def start(cls, argv_prefix: list[str], env: dict[str, str] | None) -> ShimZygote:
        """Start a zygote and wait until it has imported everything (blocking).

        Raises OSError when it cannot be started or does not report ready.
        """
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        try:
            proc = subprocess.Popen(
                [*argv_prefix, "--zygote", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                start_new_session=True,  # not in the daemon's process group
            )
        except OSError:
            ours.close()
            raise
        finally:
            theirs.close()
        ours.settimeout(ZYGOTE_START_TIMEOUT)
        try:
            ready = ours.recv(64)
        except OSError:
            ready = b""
        if ready != b"ready":
            ours.close()  # the zygote leaves on EOF; make sure of it
            with contextlib.suppress(OSError):
                proc.kill()
            proc.wait()
            raise OSError(f"shim zygote {argv_prefix!r} did not start")
        ours.setblocking(False)
        return cls(proc, ours)

    def alive(self) -> bool:
        return self.proc.poll() is None

    async def launch(
        self,
        shim_args: list[str],
        keep_open: bool = False,
        go: Awaitable[None] | None = None,
    ) -> tuple[bytes, tuple[asyncio.StreamReader, asyncio.StreamWriter] | None] | None:
        """Run one shim in a fork of the zygote: its report, and with ``keep_open`` (a
        ``--report-attach`` launch) the connection after a successful report line, as
        an attach stream; None when the zygote could not take the request (the caller
        execs a launcher). ``go`` (an ``--await-bundle`` launch): awaited, then the
        shim is told to create; its error closes the connection (the shim undoes its
        set-up) and is raised."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            socket.send_fds(self.control, [json.dumps(shim_args).encode()], [theirs.fileno()])
        except OSError:  # gone (EPIPE), or not reading (EAGAIN): do without it
            ours.close()
            return None
        finally:
            theirs.close()
        reader, writer = await asyncio.open_unix_connection(sock=ours)
        try:
            if go is not None:
                try:
                    await go
                except BaseException:
                    # no bundle: the shim reads our EOF and undoes its set-up; its end
                    # closes when it has left, as after a failed create
                    with contextlib.suppress(Exception):
                        writer.write_eof()
                        await asyncio.wait_for(reader.read(), LAUNCH_ABORT_TIMEOUT)
                    raise
                writer.write(BUNDLE_READY)
            line = await reader.readline()
            if keep_open and _is_success(_decoded(line)):
                return line, (reader, writer)
            rest = await reader.read()
        except BaseException:
            writer.close()
            raise
        writer.close()
        return line + rest, None

    def close(self) -> None:
        """Let the zygote go (it exits on EOF) and reap it."""
        self.control.close()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


_zygotes: dict[tuple[Any, ...], ShimZygote | None] = {}
_zygotes_lock = threading.Lock()


def _zygote_key(argv_prefix: list[str], env: dict[str, str] | None) -> tuple[Any, ...]:
    return (tuple(argv_prefix), tuple(sorted(env.items())) if env is not None else None)


def _ensure_zygote(argv_prefix: list[str], env: dict[str, str] | None) -> ShimZygote | None:
    key = _zygote_key(argv_prefix, env)
    with _zygotes_lock:
        if key in _zygotes:
            known = _zygotes[key]
            if known is None or known.alive():
                return known
            known.close()
        try:
            zygote: ShimZygote | None = ShimZygote.start(argv_prefix, env)
        except OSError as e:
            log.warning("shim zygote unavailable, launching shims by exec: %s", e)
            zygote = None
        _zygotes[key] = zygote
        return zygote


async def _zygote_for(argv_prefix: list[str], env: dict[str, str] | None) -> ShimZygote | None:
    """The zygote for this shim command line (started on first use), or None."""
    if argv_prefix[-2:] != ["-m", "hafen.shim"] or os.environ.get("HAFEN_SHIM_ZYGOTE") == "0":
        return None
    known = _zygotes.get(_zygote_key(argv_prefix, env))
    if known is not None and known.alive():
        return known
    return await asyncio.to_thread(_ensure_zygote, argv_prefix, env)


async def prestart_zygote(argv_prefix: list[str], env: dict[str, str] | None) -> None:
    """Start the zygote for this shim command line now (a daemon at start-up), so that
    the first container start does not wait for its imports. Failures only log."""
    try:
        await _zygote_for(argv_prefix, env)
    except Exception as e:  # the first launch retries, or execs a launcher
        log.warning("starting the shim zygote: %s", e)


def close_zygotes() -> None:
    """Stop every zygote this process started (shims and containers are not affected)."""
    with _zygotes_lock:
        for zygote in _zygotes.values():
            if zygote is not None:
                zygote.close()
        _zygotes.clear()


class ShimClient:
    """Requests to the shim of one container, addressed by its state dir."""

    def __init__(self, state_dir: str) -> None:
        self.state_dir = str(state_dir)
        self.socket_path = os.path.join(self.state_dir, SOCKET_NAME)

    async def _connect(self) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        try:
            target, dirfd = reachable_path(self.socket_path)
        except OSError as e:  # no state dir: no shim
            raise RuntimeFailure(f"shim at {self.socket_path} is not reachable: {e}") from e
        try:
            return await asyncio.open_unix_connection(target)
        except OSError as e:
            raise RuntimeFailure(f"shim at {self.socket_path} is not reachable: {e}") from e
        finally:
            if dirfd is not None:
                os.close(dirfd)

    async def _open(
        self, request: dict[str, Any]
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, dict[str, Any]]:
        """Send one request; the connection and the decoded reply line."""
        reader, writer = await self._connect()
        try:
            writer.write(json.dumps(request).encode() + b"\n")
            await writer.drain()
            line = await reader.readline()
            if not line:
                raise RuntimeFailure(
                    f"shim at {self.socket_path} closed the connection without replying"
                )
            reply = json.loads(line)
            if not isinstance(reply, dict):
                raise ValueError("not an object")
        except (OSError, ValueError) as e:
            writer.close()
            raise RuntimeFailure(f"shim at {self.socket_path}: bad reply: {e}") from e
        except BaseException:
            writer.close()
            raise
        if "error" in reply:
            writer.close()
            raise RuntimeFailure(str(reply["error"]))
        return reader, writer, reply

    async def _call(self, request: dict[str, Any]) -> dict[str, Any]:
        _reader, writer, reply = await self._open(request)
        writer.close()
        with contextlib.suppress(OSError):
            await writer.wait_closed()
        return reply

    async def start(self) -> None:
        """Start the created container (``<runtime> start``)."""
        await self._call({"op": "start"})

    async def kill(self, signal: int, all: bool = False) -> None:
        """Send ``signal`` to the init (``all``: to every process of the container)."""
        await self._call({"op": "kill", "signal": int(signal), "all": bool(all)})

    async def resize(self, height: int, width: int) -> None:
        """Set the container's terminal size (tty containers only)."""
        await self._call({"op": "resize", "height": int(height), "width": int(width)})

    async def exec(
        self, exec_id: str, process: dict[str, Any], stdin: bool
    ) -> tuple[int, asyncio.StreamReader, asyncio.StreamWriter]:
        """Run an extra process in the container: its host pid and its stream.

        The stream carries frames of its output (stream 1/2) and a last frame on
        ``EXIT_STREAM`` with ``{"exit_code": N}``; bytes written go to its stdin
        (``write_eof`` closes it). Raises RuntimeFailure with the runtime's message.
        """
        reader, writer, reply = await self._open(
            {"op": "exec", "exec_id": exec_id, "process": process, "stdin": bool(stdin)}
        )
        return int(reply.get("pid", 0)), reader, writer

    async def kill_exec(self, exec_id: str, signal: int) -> None:
        """Send ``signal`` to a running exec's process and all its descendants."""
        await self._call({"op": "kill_exec", "exec_id": exec_id, "signal": int(signal)})

    async def resize_exec(self, exec_id: str, height: int, width: int) -> None:
        """Set the terminal size of a running exec."""
        await self._call(
            {"op": "resize", "exec_id": exec_id, "height": int(height), "width": int(width)}
        )

    async def state(self) -> dict[str, Any]:
        """``{"pid": int, "status": "created" | "running" | "stopped"}``."""
        return await self._call({"op": "state"})

    async def alive(self) -> bool:
        """Whether a shim answers on the socket."""
        try:
            await self._call({"op": "state"})
        except RuntimeFailure:
            return False
        return True

    async def wait(self) -> ExitStatus:
        """Block until the container has exited and the shim has deleted the runtime's
        state; its status (from ``exit.json`` if the shim is gone).

        Raises RuntimeFailure when the shim is gone without having recorded an exit.
        """
        status, released = await self.wait_exit()
        await released
        return status

    async def wait_exit(self) -> tuple[ExitStatus, asyncio.Future[None]]:
        """The exit as soon as the shim has recorded it, and a future done once the shim
        has deleted the runtime's state too (its answer's connection ends): only then may
        the state dir go (runc and crun log there on every call). Raises as ``wait``."""
        try:
            reader, writer, reply = await self._open({"op": "wait"})
        except RuntimeFailure as e:
            status = read_exit_status(self.state_dir)
            if status is None:
                raise RuntimeFailure(f"{e}; and no exit recorded in {self.state_dir}") from e
            released: asyncio.Future[None] = asyncio.get_running_loop().create_future()
            released.set_result(None)  # the shim has left
            return status, released
        try:
            status = ExitStatus.from_dict(reply)
        except (KeyError, TypeError, ValueError) as e:
            writer.close()
            raise RuntimeFailure(f"shim at {self.socket_path}: bad wait reply {reply!r}") from e
        return status, asyncio.ensure_future(_until_closed(reader, writer))

    async def attach(
        self, stdin: bool, stdout: bool, stderr: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
        """A stream to the container's stdio: read frames, write stdin, ``write_eof`` ends it.

        Output produced after the attach is delivered; the stream ends (EOF) once the
        container has exited and its output is drained.
        """
        reader, writer, _reply = await self._open(
            {"op": "attach", "stdin": bool(stdin), "stdout": bool(stdout), "stderr": bool(stderr)}
        )
        return reader, writer


def shim_socket_reachable(state_dir: str) -> bool:
    """Synchronous probe: whether something listens on ``<state_dir>/shim.sock``."""
    target, dirfd = reachable_path(os.path.join(state_dir, SOCKET_NAME))
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.connect(target)
        return True
    except OSError:
        return False
    finally:
        if dirfd is not None:
            os.close(dirfd)


__all__ = [
    "ExitStatus",
    "ShimClient",
    "ShimInfo",
    "ShimZygote",
    "close_zygotes",
    "launch_shim",
    "prestart_zygote",
    "read_exit_status",
    "shim_socket_reachable",
]
