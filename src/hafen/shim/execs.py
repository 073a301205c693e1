"""Extra processes in a running container (``docker exec``), owned by the shim.

Lifecycle of one exec, all inside the shim's single-threaded loop:

1. the daemon sends ``{"op": "exec", "exec_id": ID, "process": {OCI process}, "stdin": b}``
   on a fresh connection; the shim writes the process to ``exec-<ID>.json`` and runs
   ``<runtime> exec --detach --process FILE --pid-file FILE [--console-socket S] <id>``
   with pipes (or receives the pty master), exactly as containerd's shim does; being a
   child subreaper, the shim becomes the parent of the exec'd process when the runtime
   exits, so it reaps it and learns its exit code;
2. the reply is ``{"ok": true, "pid": N}`` and the connection stays open as the exec's
   stream: frames ``[stream][0,0,0][len]`` of its stdout/stderr (stream 1 only with a
   tty) go to the daemon, bytes from the daemon go to its stdin (EOF closes it);
3. once the process is reaped and its output drained (bounded by a grace period:
   a background child may keep the pipes open), a last frame on stream ``EXIT_STREAM``
   carries ``{"exit_code": N}`` and the shim half-closes the connection (input still
   arriving is discarded until the daemon closes its end).

A daemon that goes away only loses the exec's output; the process runs on. The runtime's
failure (no such executable, …) is the reply's ``error``. ``{"op": "kill_exec"}`` signals
an exec's process and every descendant of it (a health probe past its timeout: its
``sh -c`` and whatever that started must all go, or each probe would leak processes).
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hafen.shim.proto import frame
from hafen.shim.stdio import CreateError, create_with_console, create_with_pipes

if TYPE_CHECKING:
    from hafen.shim.monitor import Shim, _Conn

EXIT_STREAM = 3  # the frame that ends an exec stream: its exit record as JSON
OUTPUT_DRAIN_TIMEOUT = 2.0
STDIN_BUFFER_LIMIT = 1024 * 1024


@dataclass
class ExecProcess:
    """One exec'd process and the shim's ends of its stdio."""

    id: str
    pid: int
    tty: bool
    outputs: dict[int, int] = field(default_factory=dict)  # fd -> stream
    master: int | None = None
    stdin_fd: int | None = None
    stdin_buf: bytearray = field(default_factory=bytearray)
    stdin_close_pending: bool = False
    conn: _Conn | None = None
    exit_code: int | None = None
    deadline: float = 0.0


class ExecManager:
    """The execs of one shim: started on request, reaped with the container's children."""

    def __init__(self, shim: Shim) -> None:
        self.shim = shim
        self.by_pid: dict[int, ExecProcess] = {}
        self.by_id: dict[str, ExecProcess] = {}
        self.by_conn: dict[int, ExecProcess] = {}  # client fd -> exec

    # ------------------------------------------------------------------ start

    def start(self, conn: _Conn, req: dict[str, Any], rest: bytes) -> None:
        shim = self.shim
        exec_id = str(req["exec_id"])
        process = req["process"]
        if not exec_id.isalnum() or not isinstance(process, dict):
            raise ValueError("exec_id must be alphanumeric and process an object")
        if shim.status != "running":
            shim._reply(conn, {"error": f"container {shim.opts.id} is not running"})
            return
        if exec_id in self.by_id:
            shim._reply(conn, {"error": f"exec {exec_id} is already running"})
            return
        tty = bool(process.get("terminal", False))
        stdin = bool(req.get("stdin", False))
        spec_path = shim._path(f"exec-{exec_id}.json")
        pid_path = shim._path(f"exec-{exec_id}.pid")
        with open(spec_path, "w") as f:
            json.dump(process, f)
        runtime = shim.runtime
        args = ["exec", "--detach", "--process", spec_path, "--pid-file", pid_path]
        offset = runtime.log_offset()
        output = bytearray()
        try:
            if tty:
                status, io = create_with_console(
                    runtime, args, shim.opts.id, shim.state_dir, stdin, output
                )
            else:
                status, io = create_with_pipes(runtime, [*args, shim.opts.id], stdin, output)
            shim.reap_pending = True
            if status != 0 or io is None:
                shim._reply(conn, {"error": runtime.error_message("exec", status, offset, output)})
                return
            try:
                with open(pid_path) as f:
                    pid = int(f.read().strip())
            except (OSError, ValueError) as e:
                for fd in [*io.outputs, *([io.stdin_fd] if io.stdin_fd is not None else [])]:
                    os.close(fd)
                shim._reply(conn, {"error": f"runtime exec wrote no usable pid file: {e}"})
                return
        except CreateError as e:
            shim._reply(conn, {"error": str(e)})
            return
        finally:
            for path in (spec_path, pid_path):
                try:
                    os.unlink(path)
                except FileNotFoundError:
                    pass
        ex = ExecProcess(id=exec_id, pid=pid, tty=tty, master=io.master)
        ex.outputs = io.outputs
        ex.stdin_fd = io.stdin_fd
        self.by_pid[pid] = ex
        self.by_id[exec_id] = ex
        for fd in ex.outputs:
            shim.sel.register(fd, selectors.EVENT_READ, ("xout", ex))
        conn.kind = "exec"
        conn.want_stdin = ex.stdin_fd is not None
        ex.conn = conn
        self.by_conn[conn.fd] = ex
        shim._reply(conn, {"ok": True, "pid": pid}, close=False)
        if rest:
            self.feed_stdin(ex, rest)

    # ------------------------------------------------------------------ output

    def on_output(self, ex: ExecProcess, fd: int) -> None:
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave is gone
                print(f"hafen-shim: reading exec output: {e}", file=sys.stderr)
            data = b""
        if not data:
            self._close_output(ex, fd)
            self._maybe_finish(ex)
            return
        conn = self._conn_of(ex)
        if conn is not None:
            self.shim._send(conn, frame(ex.outputs[fd], data))

    def _close_output(self, ex: ExecProcess, fd: int) -> None:
        ex.outputs.pop(fd, None)
        self.shim.sel.unregister(fd)
        if fd != ex.master:
            os.close(fd)

    def _conn_of(self, ex: ExecProcess) -> _Conn | None:
        conn = ex.conn
        if conn is None or self.shim.conns.get(conn.fd) is not conn:
            return None
        return conn

    # ------------------------------------------------------------------ stdin

    def on_client_data(self, conn: _Conn, data: bytes) -> None:
        ex = self.by_conn.get(conn.fd)
        if ex is not None and conn.want_stdin:
            self.feed_stdin(ex, data)

    def on_client_eof(self, conn: _Conn) -> None:
        ex = self.by_conn.get(conn.fd)
        if ex is None:
            return
        if not ex.tty:  # a pty has no separate input end to close
            ex.stdin_close_pending = True
            self.flush_stdin(ex)

    def throttled(self, conn: _Conn) -> bool:
        ex = self.by_conn.get(conn.fd)
        return ex is not None and len(ex.stdin_buf) >= STDIN_BUFFER_LIMIT

    def forget_conn(self, conn: _Conn) -> None:
        self.by_conn.pop(conn.fd, None)

    def feed_stdin(self, ex: ExecProcess, data: bytes) -> None:
        if ex.stdin_fd is None:
            return
        ex.stdin_buf += data
        self.flush_stdin(ex)

    def flush_stdin(self, ex: ExecProcess) -> None:
        fd = ex.stdin_fd
        if fd is None:
            return
        sel = self.shim.sel
        try:
            while ex.stdin_buf:
                n = os.write(fd, ex.stdin_buf)
                del ex.stdin_buf[:n]
        except BlockingIOError:
            pass
        except OSError:  # the process closed its stdin: input is moot
            ex.stdin_buf.clear()
            self._close_stdin(ex)
            return
        registered = fd in sel.get_map()
        if ex.stdin_buf and not registered:
            sel.register(fd, selectors.EVENT_WRITE, ("xin", ex))
        elif not ex.stdin_buf and registered:
            sel.unregister(fd)
        if not ex.stdin_buf and ex.stdin_close_pending:
            self._close_stdin(ex)
        conn = self._conn_of(ex)
        if conn is not None:
            self.shim._update(conn)

    def _close_stdin(self, ex: ExecProcess) -> None:
        fd = ex.stdin_fd
        if fd is None:
            return
        ex.stdin_fd = None
        if fd in self.shim.sel.get_map():
            self.shim.sel.unregister(fd)
        os.close(fd)

    # ------------------------------------------------------------------ resize

    def resize(self, exec_id: str, height: int, width: int) -> str | None:
        """Set an exec's terminal size; an error message, or None."""
        import fcntl
        import struct
        import termios

        ex = self.by_id.get(exec_id)
        if ex is None:
            return f"no running exec {exec_id}"
        if ex.master is None:
            return f"exec {exec_id} has no terminal"
        fcntl.ioctl(ex.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        return None

    # ------------------------------------------------------------------ kill

    def kill(self, exec_id: str, signum: int) -> str | None:
        """Signal a running exec's process and all its descendants; an error, or None.

        The tree is frozen first (SIGSTOP, repeated until no new process appears) so
        nothing forks past the kill; an exec already gone is not an error.
        """
        ex = self.by_id.get(exec_id)
        if ex is None or ex.exit_code is not None:
            return None
        pids = _descendants(ex.pid)
        for _ in range(20):  # bounded: a fork bomb must not keep the shim spinning
            for pid in pids:
                _signal(pid, 19)  # SIGSTOP
            grown = _descendants(ex.pid)
            if grown <= pids:
                break
            pids |= grown
        for pid in pids:
            _signal(pid, signum)
            if signum != 9:
                _signal(pid, 18)  # SIGCONT, so a caught signal is delivered
        self.shim.reap_pending = True
        return None

    # ------------------------------------------------------------------ exit

    def on_reaped(self, pid: int, code: int) -> bool:
        """A child exited: True when it was an exec of ours."""
        ex = self.by_pid.get(pid)
        if ex is None:
            return False
        ex.exit_code = code
        ex.deadline = time.monotonic() + OUTPUT_DRAIN_TIMEOUT
        self._maybe_finish(ex)
        return True

    def next_deadline(self) -> float | None:
        pending = [ex.deadline for ex in self.by_id.values() if ex.exit_code is not None]
        return min(pending) if pending else None

    def expire(self) -> None:
        """Finish execs whose output did not end within the grace period after exit."""
        now = time.monotonic()
        for ex in list(self.by_id.values()):
            if ex.exit_code is not None and now >= ex.deadline:
                self._finish(ex)

    def _maybe_finish(self, ex: ExecProcess) -> None:
        if ex.exit_code is not None and not ex.outputs:
            self._finish(ex)

    def _finish(self, ex: ExecProcess) -> None:
        for fd in list(ex.outputs):
            self._close_output(ex, fd)
        if ex.master is not None:
            os.close(ex.master)
            ex.master = None
        ex.stdin_buf.clear()
        self._close_stdin(ex)
        self.by_pid.pop(ex.pid, None)
        self.by_id.pop(ex.id, None)
        conn = self._conn_of(ex)
        if conn is not None:
            self.by_conn.pop(conn.fd, None)
            conn.reading = False
            conn.close_after_flush = True
            code = ex.exit_code if ex.exit_code is not None else 137
            self.shim._send(conn, frame(EXIT_STREAM, json.dumps({"exit_code": code}).encode()))

    def finish_all(self) -> None:
        """The container is gone: every exec ends with what is known of it."""
        for ex in list(self.by_id.values()):
            self._finish(ex)


def _descendants(root: int) -> set[int]:
    """``root`` and every process below it, from the ppids in ``/proc/*/stat``."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if len(fields) > 1:
            children.setdefault(int(fields[1]), []).append(int(name))
    found, todo = {root}, [root]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass


__all__ = ["EXIT_STREAM", "ExecManager", "ExecProcess"]
