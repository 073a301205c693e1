"""The shim proper: one container's parent, stdio holder, log writer and exit recorder.

Lifecycle (``run_shim``, in the forked child of the launcher, or of the zygote):

1. become a session leader and a child subreaper (orphans of the container are
   reparented here and reaped), move stdio to ``<state-dir>/shim.log``;
2. ``create``: wire the container's stdio (pipes, or a pty received over the console
   socket), run ``<runtime> create``, read the init pid, write ``shim.json``, report
   readiness to the launcher through a pipe (to the daemon, when forked by the
   zygote) — the container is NOT started;
3. ``serve``: a single-threaded ``selectors`` loop over the listening socket, client
   connections, the output fds, the stdin fd and the SIGCHLD wake-up pipe, until the
   init has been reaped and its output drained;
4. ``finish``: end attached clients' streams, write ``exit.json`` atomically,
   ``<runtime> delete``, answer every ``wait``, flush what clients still have to take
   (bounded), unlink ``shim.sock``, exit 0.

A slow attached client never blocks the loop: its buffer is bounded and it is dropped
when the buffer overflows. The container's output is always read, so the container
itself never blocks on a full pipe because of a client.
"""

from __future__ import annotations

import errno
import json
import os
import selectors
import signal
import socket
import struct
import sys
import time
from dataclasses import dataclass
from typing import Any

from hafen.shim.execs import ExecManager
from hafen.shim.logfile import JsonLogWriter, LocalLogWriter
from hafen.shim.oom import memory_cgroup_file, oom_kill_count
from hafen.shim.proto import (
    BUNDLE_READY,
    EXIT_FILE_NAME,
    INFO_FILE_NAME,
    PID_FILE_NAME,
    SHIM_LOG_NAME,
    SOCKET_NAME,
    STDERR,
    STDOUT,
    frame,
    rfc3339_nano,
)
from hafen.shim.runtime import RuntimeCommand
from hafen.shim.stdio import CreateError, create_with_console, create_with_pipes

CLIENT_BUFFER_LIMIT = 4 * 1024 * 1024  # per attached client, then it is dropped
STDIN_BUFFER_LIMIT = 1024 * 1024  # stop reading stdin clients beyond this
REQUEST_LIMIT = 1024 * 1024  # one request line (an exec carries its whole process)
OUTPUT_DRAIN_TIMEOUT = 2.0  # after the init exits: orphans outside a pid ns may hold pipes
CLIENT_FLUSH_TIMEOUT = 5.0  # after the exit: attached clients get this long to take output
VERB_TIMEOUT = 30.0
ABORT_REAP_TIMEOUT = 5.0  # a failed create's SIGKILLed children die within ms


@dataclass
class ShimOptions:
    """The command line of ``hafen-shim``."""

    id: str
    bundle: str
    state_dir: str
    log_path: str
    runtime: list[str]
    runtime_root: str | None = None
    tty: bool = False
    stdin: bool = False
    stdin_once: bool = False
    log_max_size: int = 0  # bytes; 0: never rotate
    log_max_files: int = 1
    log_attrs: dict[str, str] | None = None  # --log-opt labels/env/tag: in every record
    log_format: str = "json-file"  # or "local": dockerd's compact framing
    log_compress: bool = False  # gzip rotated files
    # --log-opt mode=non-blocking: bytes of records that may wait for the file (a writer
    # thread writes them, the loop never waits on the file); None: blocking, as before
    log_buffer_size: int | None = None
    # --start: start the container right after create, before reporting (one launch
    # instead of launch + start for the daemon)
    start: bool = False
    # --report-attach STREAMS (the zygote's launch only, whose report fd is a socket):
    # after the report line, the report connection stays open as an attach stream of
    # these (stdin, stdout, stderr), connected before the start: no output is missed
    report_attach: tuple[bool, bool, bool] | None = None
    # --await-bundle (the zygote's launch only): set up, then wait for the daemon's
    # BUNDLE_READY byte on the report connection before the create (the daemon makes the
    # bundle meanwhile); its end closing instead means there is no bundle: leave
    await_bundle: bool = False


class _Conn:
    """One client connection: a request line, then a reply (and for attach, a stream)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self.inbuf = bytearray()
        self.outbuf = bytearray()
        self.kind = "request"  # request | attach | exec | wait | reply
        self.reading = True
        self.close_after_flush = False
        self.peer_eof = False
        # a stream that has ended on our side: half-closed, its input read and discarded
        # until the client closes too
        self.draining = False
        self.want_stdin = False
        self.want_stdout = False
        self.want_stderr = False
        self.events = 0


def set_subreaper() -> None:
    """PR_SET_CHILD_SUBREAPER: the container's orphans are reparented to the shim."""
    from hafen.runtime import _sys  # the runtime's Linux calls, loaded by the zygote

    _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)


def set_process_name(name: str) -> None:
    """The name ``ps -o comm`` shows (PR_SET_NAME, through /proc/self/comm: 15 bytes):
    zygote-forked shims share one command line, so the name is what tells them apart.
    Best effort."""
    try:
        fd = os.open("/proc/self/comm", os.O_WRONLY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.write(fd, name.encode()[:15])
    except OSError:
        pass
    finally:
        os.close(fd)


def _write_json_atomic(path: str, obj: dict[str, Any]) -> None:
    """Write-then-rename: a reader (a restarted daemon) never sees a partial file.

    No fsync: these files live in the exec root (a tmpfs such as /run/hafen), and what
    they describe — running processes — does not outlive a machine crash anyway; the
    rename alone survives the crash of the shim or the daemon, which is what counts.
    """
    tmp = f"{path}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o644)
    try:
        os.write(fd, json.dumps(obj).encode() + b"\n")
    finally:
        os.close(fd)
    os.rename(tmp, path)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class Shim:
    """The monitor of one container; ``create`` once, then ``serve`` until it exits."""

    def __init__(self, opts: ShimOptions, listener: socket.socket) -> None:
        self.opts = opts
        self.listener = listener
        self.state_dir = opts.state_dir
        self.sel = selectors.DefaultSelector()
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        self.runtime = RuntimeCommand(opts.runtime, opts.runtime_root, opts.state_dir, self.wake_r)
        self.log: JsonLogWriter | None = None
        self.outputs: dict[int, int] = {}  # fd -> stream
        self.master: int | None = None  # pty master (tty mode)
        self.stdin_fd: int | None = None  # container stdin: pipe write end or dup of master
        self.stdin_buf = bytearray()
        self.stdin_close_pending = False
        self.conns: dict[int, _Conn] = {}
        self.waiters: list[_Conn] = []
        self.pid = 0
        self.status = "created"
        self.exit_code: int | None = None
        self.exited_at = ""
        self.exit_deadline = 0.0
        self.oom_file: str | None = None
        self.oom_baseline = 0
        self.oom_killed = False
        self.exit_recorded = False  # exit.json written (finish)
        self.reap_pending = False
        self._created_files: list[str] = []
        self.execs = ExecManager(self)

    # ------------------------------------------------------------------ set-up

    def install_signals(self) -> None:
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGPIPE):
            signal.signal(sig, signal.SIG_IGN)
        # a Python-level handler is needed for set_wakeup_fd to see SIGCHLD at all
        signal.signal(signal.SIGCHLD, lambda _s, _f: None)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)

    def _path(self, name: str) -> str:
        return os.path.join(self.state_dir, name)

    def create(self) -> None:
        """Wire stdio, run ``<runtime> create``, record the pid. Raises CreateError."""
        opts = self.opts
        pid_file = self._path(PID_FILE_NAME)
        _unlink(pid_file)
        _unlink(self._path(EXIT_FILE_NAME))
        self._created_files += [pid_file, self.runtime.log_path]
        args = ["create", "--bundle", opts.bundle, "--pid-file", pid_file]
        offset = self.runtime.log_offset()
        output = bytearray()
        if opts.tty:
            status, io = create_with_console(
                self.runtime, args, opts.id, self.state_dir, opts.stdin, output
            )
        else:
            status, io = create_with_pipes(self.runtime, [*args, opts.id], opts.stdin, output)
        self.reap_pending = True
        if status != 0 or io is None:
            raise CreateError(self.runtime.error_message("create", status, offset, output))
        self.outputs, self.stdin_fd, self.master = io.outputs, io.stdin_fd, io.master
        try:
            with open(pid_file) as f:
                self.pid = int(f.read().strip())
        except (OSError, ValueError) as e:
            raise CreateError(f"runtime create wrote no usable pid file {pid_file}: {e}") from e
        self.oom_file = memory_cgroup_file(self.pid)
        self.oom_baseline = oom_kill_count(self.oom_file)
        writer = LocalLogWriter if opts.log_format == "local" else JsonLogWriter
        self.log = writer(
            opts.log_path,
            opts.log_max_size,
            opts.log_max_files,
            opts.log_attrs,
            compress=opts.log_compress,
            buffer_size=opts.log_buffer_size,
        )
        info = self._path(INFO_FILE_NAME)
        self._created_files.append(info)
        _write_json_atomic(info, {"shim_pid": os.getpid(), "pid": self.pid})

    def abort(self) -> None:
        """Undo a failed create: the runtime's state, our files, every child."""
        self.runtime.run(["delete", "--force", self.opts.id], timeout=VERB_TIMEOUT)
        for fd in [*self.outputs, *([self.stdin_fd] if self.stdin_fd is not None else [])]:
            os.close(fd)
        self.outputs.clear()
        self.stdin_fd = None
        self._reap_all(ABORT_REAP_TIMEOUT)
        for path in self._created_files:
            _unlink(path)
        _unlink(self._path(SOCKET_NAME))
        _unlink(self._path(SHIM_LOG_NAME))
        try:
            os.rmdir(self.state_dir)  # only when nothing else (e.g. a bundle) is in it
        except OSError:
            pass

    def _reap_all(self, timeout: float) -> None:
        """Reap every child, waiting (bounded) for those still dying: the killed init of a
        failed create must not outlive the shim as a zombie left to pid 1."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                pid, _status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                if time.monotonic() > deadline:
                    return
                time.sleep(0.001)

    # ------------------------------------------------------------------ loop

    def serve(self) -> None:
        """Run until the container has exited and everything is handed over."""
        self.listener.setblocking(False)
        self.sel.register(self.listener, selectors.EVENT_READ, ("listen", None))
        self.sel.register(self.wake_r, selectors.EVENT_READ, ("wake", None))
        for fd in self.outputs:
            self.sel.register(fd, selectors.EVENT_READ, ("out", None))
        self.reap_pending = True
        while True:
            if self.reap_pending:
                self.reap_pending = False
                self._reap()
            if self.status == "stopped":
                if not self.outputs or time.monotonic() >= self.exit_deadline:
                    break
                timeout: float | None = max(0.0, self.exit_deadline - time.monotonic())
            else:
                timeout = None
            exec_deadline = self.execs.next_deadline()
            if exec_deadline is not None:
                self.execs.expire()
                left = max(0.0, exec_deadline - time.monotonic())
                timeout = left if timeout is None else min(timeout, left)
            for key, mask in self.sel.select(timeout):
                kind, obj = key.data
                if kind == "out":
                    self._on_output(key.fd)
                elif kind == "xout":
                    self.execs.on_output(obj, key.fd)
                elif kind == "xin":
                    self.execs.flush_stdin(obj)
                elif kind == "conn":
                    self._on_conn(obj, mask)
                elif kind == "stdin":
                    self._flush_stdin()
                elif kind == "listen":
                    self._accept()
                elif kind == "wake":
                    _drain(self.wake_r)
                    self.reap_pending = True
        self.finish()

    def _reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            if pid != self.pid:
                code = os.waitstatus_to_exitcode(status)
                self.execs.on_reaped(pid, 128 - code if code < 0 else code)
            elif self.exit_code is None:
                code = os.waitstatus_to_exitcode(status)
                self.exit_code = 128 - code if code < 0 else code
                self.exited_at = rfc3339_nano()
                self.status = "stopped"
                self.exit_deadline = time.monotonic() + OUTPUT_DRAIN_TIMEOUT

    # ------------------------------------------------------------------ output

    def _on_output(self, fd: int) -> None:
        stream = self.outputs[fd]
        try:
            data = os.read(fd, 65536)
        except BlockingIOError:
            return
        except OSError as e:
            if e.errno != errno.EIO:  # EIO: the pty's last slave is gone
                print(f"hafen-shim: reading output: {e}", file=sys.stderr)
            data = b""
        if not data:
            self._close_output(fd)
            return
        if self.log is not None:
            self.log.write(stream, data)
        for conn in list(self.conns.values()):
            if conn.kind != "attach":
                continue
            if (stream == STDOUT and conn.want_stdout) or (stream == STDERR and conn.want_stderr):
                self._send(conn, frame(stream, data))

    def _close_output(self, fd: int) -> None:
        stream = self.outputs.pop(fd)
        self.sel.unregister(fd)
        if fd != self.master:
            os.close(fd)
        if self.log is not None:
            self.log.end(stream)

    # ------------------------------------------------------------------ stdin

    def _feed_stdin(self, data: bytes) -> None:
        if self.stdin_fd is None:
            return
        self.stdin_buf += data
        self._flush_stdin()

    def _flush_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        try:
            while self.stdin_buf:
                n = os.write(fd, self.stdin_buf)
                del self.stdin_buf[:n]
        except BlockingIOError:
            pass
        except OSError:
            # the container closed its stdin (EPIPE) or the pty is gone: input is moot
            self.stdin_buf.clear()
            self._close_stdin()
            return
        registered = fd in self.sel.get_map()
        if self.stdin_buf and not registered:
            self.sel.register(fd, selectors.EVENT_WRITE, ("stdin", None))
        elif not self.stdin_buf and registered:
            self.sel.unregister(fd)
        if not self.stdin_buf and self.stdin_close_pending:
            self._close_stdin()
        # input may resume from clients throttled while the buffer was full
        if len(self.stdin_buf) < STDIN_BUFFER_LIMIT:
            for conn in list(self.conns.values()):
                if conn.want_stdin:
                    self._update(conn)

    def _close_stdin(self) -> None:
        fd = self.stdin_fd
        if fd is None:
            return
        self.stdin_fd = None
        self.stdin_close_pending = False
        if fd in self.sel.get_map():
            self.sel.unregister(fd)
        os.close(fd)

    # ------------------------------------------------------------------ clients

    def _accept(self) -> None:
        while True:
            try:
                sock, _ = self.listener.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as e:  # EMFILE and the like: the next event retries
                print(f"hafen-shim: accept: {e}", file=sys.stderr)
                return
            sock.setblocking(False)
            conn = _Conn(sock)
            self.conns[conn.fd] = conn
            self._update(conn)

    def _update(self, conn: _Conn) -> None:
        """Register the events the connection needs now."""
        if conn.fd not in self.conns:
            return
        events = 0
        if conn.kind == "exec":
            throttled = self.execs.throttled(conn)
        else:
            throttled = conn.want_stdin and len(self.stdin_buf) >= STDIN_BUFFER_LIMIT
        if conn.reading and not throttled:
            events |= selectors.EVENT_READ
        if conn.outbuf:
            events |= selectors.EVENT_WRITE
        if events == conn.events:
            return
        if conn.events == 0:
            self.sel.register(conn.sock, events, ("conn", conn))
        elif events == 0:
            self.sel.unregister(conn.sock)
        else:
            self.sel.modify(conn.sock, events, ("conn", conn))
        conn.events = events

    def _drop(self, conn: _Conn) -> None:
        if self.conns.pop(conn.fd, None) is None:
            return
        if conn.events:
            self.sel.unregister(conn.sock)
        conn.events = 0
        if conn in self.waiters:
            self.waiters.remove(conn)
        self.execs.forget_conn(conn)
        conn.sock.close()

    def _send(self, conn: _Conn, data: bytes) -> None:
        conn.outbuf += data
        if len(conn.outbuf) > CLIENT_BUFFER_LIMIT:
            print("hafen-shim: dropping a client that does not keep up", file=sys.stderr)
            self._drop(conn)
            return
        self._flush_conn(conn)

    def _flush_conn(self, conn: _Conn) -> None:
        try:
            while conn.outbuf:
                n = conn.sock.send(conn.outbuf)
                del conn.outbuf[:n]
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:  # the client went away
            self._drop(conn)
            return
        if not conn.outbuf and conn.close_after_flush:
            if conn.kind in ("attach", "exec") and not conn.peer_eof:
                self._half_close(conn)
            else:
                self._drop(conn)
            return
        self._update(conn)

    def _end_stream(self, conn: _Conn) -> None:
        """No more input taken; the connection ends once what it has buffered is sent."""
        conn.close_after_flush = True
        conn.reading = False
        self._flush_conn(conn)

    def _half_close(self, conn: _Conn) -> None:
        """End a stream with EOF but keep reading until the client closes.

        A client may still be sending input when its stream ends; closing the socket then
        makes its write fail (EPIPE), and asyncio hands that error to the client's reader
        before the frames still buffered there: an exec's exit frame was lost that way.
        """
        try:
            conn.sock.shutdown(socket.SHUT_WR)
        except OSError:
            self._drop(conn)
            return
        conn.close_after_flush = False
        conn.draining = True
        conn.reading = True
        conn.want_stdin = False
        self._update(conn)

    def _reply(self, conn: _Conn, obj: dict[str, Any], close: bool = True) -> None:
        if close:
            conn.close_after_flush = True
            conn.reading = False
        self._send(conn, json.dumps(obj).encode() + b"\n")

    def _on_conn(self, conn: _Conn, mask: int) -> None:
        if mask & selectors.EVENT_WRITE:
            self._flush_conn(conn)
            if conn.fd not in self.conns:
                return
        if not mask & selectors.EVENT_READ:
            return
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._drop(conn)
            return
        if not data:
            self._on_client_eof(conn)
            return
        if conn.draining:
            return
        if conn.kind == "attach":
            if conn.want_stdin:
                self._feed_stdin(data)
            return
        if conn.kind == "exec":
            self.execs.on_client_data(conn, data)
            return
        if conn.kind != "request":
            return  # nothing more is expected from a waiter
        conn.inbuf += data
        nl = conn.inbuf.find(b"\n")
        if nl < 0:
            if len(conn.inbuf) > REQUEST_LIMIT:
                self._reply(conn, {"error": "request line too long"})
            return
        line = bytes(conn.inbuf[:nl])
        rest = bytes(conn.inbuf[nl + 1 :])
        conn.inbuf.clear()
        self._dispatch(conn, line, rest)

    def _on_client_eof(self, conn: _Conn) -> None:
        conn.peer_eof = True
        conn.reading = False
        if conn.draining:
            self._drop(conn)
            return
        if conn.kind == "attach":
            if conn.want_stdin and self.opts.stdin_once and not self.opts.tty:
                self.stdin_close_pending = True
                if not self.stdin_buf:
                    self._close_stdin()
            self._update(conn)
        elif conn.kind == "exec":
            self.execs.on_client_eof(conn)
            self._update(conn)
        else:
            # a half-sent request, or a waiter that gave up (a daemon going away)
            self._drop(conn)

    # ------------------------------------------------------------------ requests

    def _dispatch(self, conn: _Conn, line: bytes, rest: bytes) -> None:
        try:
            req = json.loads(line)
            if not isinstance(req, dict):
                raise ValueError("not an object")
        except ValueError as e:
            self._reply(conn, {"error": f"bad request: {e}"})
            return
        op = req.get("op")
        try:
            if op == "start":
                self._op_start(conn)
            elif op == "attach":
                self._op_attach(conn, req, rest)
            elif op == "resize":
                self._op_resize(conn, req)
            elif op == "exec":
                self.execs.start(conn, req, rest)
            elif op == "kill":
                self._op_kill(conn, req)
            elif op == "kill_exec":
                signum = int(req.get("signal", signal.SIGKILL))
                if not 0 < signum < signal.NSIG:
                    raise ValueError(f"invalid signal {signum}")
                error = self.execs.kill(str(req["exec_id"]), signum)
                self._reply(conn, {"error": error} if error else {"ok": True})
            elif op == "wait":
                conn.kind = "wait"
                # answered once exit.json is written (finish), and ended (EOF) once the
                # runtime's state is deleted: a waiter that took the exit earlier (the
                # daemon) might delete the state dir under either
                if self.exit_recorded:
                    self._reply(conn, self.exit_record())
                else:
                    self.waiters.append(conn)
            elif op == "state":
                self._reply(conn, {"pid": self.pid, "status": self.status})
            else:
                self._reply(conn, {"error": f"unknown op {op!r}"})
        except (ValueError, TypeError) as e:
            self._reply(conn, {"error": f"bad {op} request: {e}"})

    def _op_start(self, conn: _Conn) -> None:
        error = self.start()
        self._reply(conn, {"error": error} if error else {"ok": True})

    def start(self) -> str:
        """``<runtime> start``; what went wrong, or "" once the container runs."""
        if self.status == "stopped":
            return f"container {self.opts.id} has already exited"
        res = self.runtime.run(["start", self.opts.id], timeout=VERB_TIMEOUT)
        self.reap_pending = True
        if not res.ok:
            return res.message or "start failed"
        if self.status == "created":
            self.status = "running"
        return ""

    def adopt_attach(self, fd: int, stdin: bool, stdout: bool, stderr: bool) -> None:
        """Serve the connected socket ``fd`` as an attach stream (the launch's report
        connection, whose report line stood for the attach reply)."""
        conn = _Conn(socket.socket(fileno=fd))
        conn.sock.setblocking(False)
        conn.kind = "attach"
        conn.want_stdin = stdin and self.stdin_fd is not None
        conn.want_stdout = stdout
        conn.want_stderr = stderr
        self.conns[conn.fd] = conn
        self._update(conn)

    def _op_attach(self, conn: _Conn, req: dict[str, Any], rest: bytes) -> None:
        conn.kind = "attach"
        conn.want_stdin = bool(req.get("stdin", False)) and self.stdin_fd is not None
        conn.want_stdout = bool(req.get("stdout", False))
        conn.want_stderr = bool(req.get("stderr", False))
        self._reply(conn, {"ok": True}, close=False)
        if conn.fd not in self.conns:
            return
        if rest and conn.want_stdin:
            self._feed_stdin(rest)
        if self.exit_code is not None and not self.outputs:
            self._end_stream(conn)  # nothing will ever come

    def _op_resize(self, conn: _Conn, req: dict[str, Any]) -> None:
        if req.get("exec_id"):
            height, width = int(req["height"]), int(req["width"])
            if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
                raise ValueError(f"terminal size {height}x{width} out of range")
            error = self.execs.resize(str(req["exec_id"]), height, width)
            self._reply(conn, {"error": error} if error else {"ok": True})
            return
        if self.master is None:
            self._reply(conn, {"error": f"container {self.opts.id} has no terminal"})
            return
        import fcntl
        import termios

        height, width = int(req["height"]), int(req["width"])
        if not (0 <= height <= 0xFFFF and 0 <= width <= 0xFFFF):
            raise ValueError(f"terminal size {height}x{width} out of range")
        fcntl.ioctl(self.master, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        self._reply(conn, {"ok": True})

    def _op_kill(self, conn: _Conn, req: dict[str, Any]) -> None:
        signum = int(req.get("signal", signal.SIGTERM))
        if not 0 < signum < signal.NSIG:
            raise ValueError(f"invalid signal {signum}")
        args = ["kill", *(["--all"] if req.get("all") else []), self.opts.id, str(signum)]
        res = self.runtime.run(args, timeout=VERB_TIMEOUT)
        self.reap_pending = True
        self._reply(conn, {"ok": True} if res.ok else {"error": res.message})

    # ------------------------------------------------------------------ exit

    def exit_record(self) -> dict[str, Any]:
        return {
            "exit_code": self.exit_code,
            "exited_at": self.exited_at,
            "oom_killed": self.oom_killed,
        }

    def finish(self) -> None:
        """Record the exit, release the runtime's state, hand over to clients, leave."""
        for fd in list(self.outputs):
            self._close_output(fd)
        self.execs.finish_all()
        if self.log is not None:
            self.log.close()
        self._close_stdin()
        # every byte of output is read: attached clients get their EOF now, not after the
        # runtime's delete (a `docker run` waits for both its attach and its wait)
        for conn in list(self.conns.values()):
            if conn.kind == "attach":
                self._end_stream(conn)
        # read before delete: the cgroup goes with the runtime's state
        self.oom_killed = oom_kill_count(self.oom_file) > self.oom_baseline
        record = self.exit_record()
        _write_json_atomic(self._path(EXIT_FILE_NAME), record)
        self.exit_recorded = True
        # Waiters have the exit now; their connection ends once the runtime's state is
        # deleted too (runc and crun log in the state dir on every call): the daemon
        # unmounts the rootfs meanwhile and takes the state dir only after that EOF.
        for conn in self.waiters:
            self._reply(conn, record, close=False)
        res = self.runtime.run(["delete", self.opts.id], timeout=VERB_TIMEOUT)
        if not res.ok:
            res = self.runtime.run(["delete", "--force", self.opts.id], timeout=VERB_TIMEOUT)
            if not res.ok:
                print(f"hafen-shim: runtime delete: {res.message}", file=sys.stderr)
        # no new clients from here on: a late one finds exit.json instead
        self.sel.unregister(self.listener)
        self.listener.close()
        _unlink(self._path(SOCKET_NAME))
        for conn in list(self.waiters):
            self._end_stream(conn)
        self.waiters.clear()
        for conn in list(self.conns.values()):
            if conn.kind != "wait":
                self._end_stream(conn)
        deadline = time.monotonic() + CLIENT_FLUSH_TIMEOUT
        while self.conns and time.monotonic() < deadline:
            for key, mask in self.sel.select(max(0.0, deadline - time.monotonic())):
                kind, obj = key.data
                if kind == "conn":
                    self._on_conn(obj, mask)
                elif kind == "wake":
                    _drain(self.wake_r)
                    self._reap()
        for conn in list(self.conns.values()):
            self._drop(conn)
        if self.master is not None:
            os.close(self.master)
            self.master = None
        self._reap()


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _redirect_stdio(state_dir: str) -> None:
    null = os.open(os.devnull, os.O_RDONLY)
    log = os.open(
        os.path.join(state_dir, SHIM_LOG_NAME), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640
    )
    os.dup2(null, 0)
    os.dup2(log, 1)
    os.dup2(log, 2)
    os.close(null)
    os.close(log)


def _bundle_ready(fd: int) -> bool:
    """Wait for the daemon's BUNDLE_READY byte on the report connection; False when it
    closes its end instead."""
    try:
        return os.read(fd, 1) == BUNDLE_READY  # retried on EINTR by Python itself
    except OSError:
        return False


def _report(fd: int, obj: dict[str, Any]) -> bool:
    """Write the report line; False when the daemon is gone (it died during the launch:
    the shim carries on, and the next daemon asks it how far the launch got)."""
    data = json.dumps(obj).encode() + b"\n"
    try:
        while data:
            n = os.write(fd, data)
            data = data[n:]
    except OSError as e:
        print(f"hafen-shim: reporting to the daemon: {e.strerror or e}", file=sys.stderr)
        return False
    return True


def _undo(shim: Shim, listener: socket.socket, ready_fd: int, verb: str, message: str) -> int:
    """A failed create or start: undo everything, report the error; the exit status."""
    print(f"hafen-shim: {verb} failed: {message}", file=sys.stderr)
    try:
        shim.abort()
    finally:
        listener.close()
        # ready_fd stays open until this process exits: the reader's EOF then means the
        # shim is gone, with everything it made
        _report(ready_fd, {"error": message})
    return 1


def run_shim(opts: ShimOptions, listener: socket.socket, ready_fd: int) -> int:
    """The forked shim: detach, create the container, report on ``ready_fd``, serve."""
    os.setsid()
    set_process_name(f"shim-{opts.id[:10]}")
    _redirect_stdio(opts.state_dir)
    os.chdir("/")
    shim = Shim(opts, listener)
    shim.install_signals()
    try:
        set_subreaper()
        if opts.await_bundle and not _bundle_ready(ready_fd):
            # the daemon could not make the bundle, and reports that itself
            shim.abort()
            listener.close()
            return 1
        shim.create()
    except Exception as e:  # every failure becomes the launcher's {"error": ...}
        message = str(e) if isinstance(e, CreateError) else f"shim: {e}"
        return _undo(shim, listener, ready_fd, "create", message)
    if opts.start:
        error = shim.start()
        if error:
            return _undo(shim, listener, ready_fd, "start", error)
    reported = _report(ready_fd, {"pid": shim.pid, "shim_pid": os.getpid(), "started": opts.start})
    if reported and opts.report_attach is not None:
        shim.adopt_attach(ready_fd, *opts.report_attach)
    else:
        os.close(ready_fd)
    shim.serve()
    return 0
