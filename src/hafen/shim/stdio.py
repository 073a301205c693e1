"""The container's stdio, wired while the runtime creates the container.

Owns the two ways a container gets its stdio, both ending in ``<runtime> create``:

- pipes (no tty): a pipe each for stdout and stderr, a pipe for stdin with ``--stdin``
  (else ``/dev/null``). They are create's own stdio, which the runtime hands to the
  container init; the shim keeps the read ends (and stdin's write end) and closes the
  others at once, so that EOF arrives when the container's processes are gone.
- a console (tty): a unix socket ``<state-dir>/console.sock`` (a short temp dir when that
  path is too long for ``sun_path``) passed as ``--console-socket``; the runtime sends the
  pty master over it with SCM_RIGHTS right after creating the container.

On success the fds are returned as a ``ContainerIO``; on failure everything opened here
is closed again and the runtime's complaint is left in ``output`` for the error message.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field

from hafen.shim.proto import CONSOLE_SOCKET_NAME, MAX_SOCKET_PATH, STDERR, STDOUT
from hafen.shim.runtime import RuntimeCommand, read_available

CREATE_TIMEOUT = 60.0


class CreateError(Exception):
    """``create`` failed; the message is the runtime's (or ours) and goes to the daemon."""


@dataclass
class ContainerIO:
    """The shim's ends of the container's stdio (all non-blocking)."""

    outputs: dict[int, int] = field(default_factory=dict)  # fd -> stream (1 or 2)
    stdin_fd: int | None = None  # pipe write end, or a dup of the pty master
    master: int | None = None  # pty master (tty only); also in ``outputs`` as stream 1


def _close(*fds: int) -> None:
    for fd in fds:
        if fd >= 0:
            os.close(fd)


def _spawn_error(runtime: RuntimeCommand, e: OSError) -> CreateError:
    return CreateError(f"cannot run runtime {runtime.prefix[0]!r}: {e}")


def create_with_pipes(
    runtime: RuntimeCommand, args: list[str], stdin: bool, output: bytearray
) -> tuple[int, ContainerIO | None]:
    """Run ``args`` (a create command line) with pipes as its stdio."""
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    if stdin:
        in_r, in_w = os.pipe()
    else:
        in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
    try:
        status = runtime.run_with_stdio(args, (in_r, out_w, err_w), CREATE_TIMEOUT)
    except OSError as e:
        _close(out_r, out_w, err_r, err_w, in_r, in_w)
        raise _spawn_error(runtime, e) from e
    # the container holds the other ends now; ours must go or EOF never comes
    _close(out_w, err_w, in_r)
    if status != 0:
        read_available(err_r, output)  # the runtime complains on what it got as stderr
        _close(out_r, err_r, in_w)
        return status, None
    io = ContainerIO()
    for fd, stream in ((out_r, STDOUT), (err_r, STDERR)):
        os.set_blocking(fd, False)
        io.outputs[fd] = stream
    if in_w >= 0:
        os.set_blocking(in_w, False)
        io.stdin_fd = in_w
    return 0, io


def _console_path(state_dir: str) -> tuple[str, str | None]:
    """Where the console socket goes, and a temp dir to remove afterwards (if any)."""
    path = os.path.join(state_dir, CONSOLE_SOCKET_NAME)
    if len(os.fsencode(path)) <= MAX_SOCKET_PATH:
        return path, None
    import tempfile

    tmp = tempfile.mkdtemp(prefix="hafen-console-")
    return os.path.join(tmp, CONSOLE_SOCKET_NAME), tmp


def create_with_console(
    runtime: RuntimeCommand,
    args: list[str],
    container_id: str,
    state_dir: str,
    stdin: bool,
    output: bytearray,
) -> tuple[int, ContainerIO | None]:
    """Run ``args`` + ``--console-socket PATH ID``; receive the pty master it sends."""
    path, tmpdir = _console_path(state_dir)
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    received: list[int] = []

    def on_console(_fd: int) -> None:
        try:
            conn, _ = console.accept()
        except BlockingIOError:
            return
        with conn:
            conn.settimeout(10)
            _msg, fds, _flags, _addr = socket.recv_fds(conn, 4096, 4)
            received.extend(fds)

    try:
        console.bind(path)
        console.listen(1)
        console.setblocking(False)
        null = os.open(os.devnull, os.O_RDWR | os.O_CLOEXEC)
        r, w = os.pipe()
        try:
            pid = runtime.spawn([*args, "--console-socket", path, container_id], (null, w, w))
        except OSError as e:
            os.close(r)
            raise _spawn_error(runtime, e) from e
        finally:
            _close(null, w)
        try:
            status = runtime.wait(
                pid,
                CREATE_TIMEOUT,
                capture=r,
                into=output,
                extra=[console.fileno()],
                on_extra=on_console,
            )
        finally:
            os.close(r)
        if status == 0 and not received:
            on_console(console.fileno())  # sent just before the runtime exited
    except BaseException:
        _close(*received)
        raise
    finally:
        console.close()
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        if tmpdir:
            os.rmdir(tmpdir)
    if status != 0:
        _close(*received)
        return status, None
    if not received:
        output += b"runtime create sent no terminal over the console socket"
        return 1, None
    _close(*received[1:])
    master = received[0]
    os.set_blocking(master, False)
    # a separate fd for input keeps read and write interest apart in the selector
    return 0, ContainerIO({master: STDOUT}, os.dup(master) if stdin else None, master)
