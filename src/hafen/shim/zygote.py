"""The shim zygote: a pre-imported ``hafen-shim`` that forks shims on request.

Starting a container would otherwise begin with a fresh interpreter for the launcher
(start-up plus the shim's and the runtime's imports, ~20-40 ms). The daemon instead keeps
one zygote per shim command line (``python3 -S -m hafen.shim --zygote FD``), started on
the first launch, with everything imported. Lifecycle and protocol:

- The daemon passes one end of a ``SOCK_SEQPACKET`` socketpair as ``FD``; the zygote
  imports the shim and the runtime, sends ``ready`` and then waits on it.
- A launch is one message: the shim's command line as a JSON list, with one fd attached
  (SCM_RIGHTS), a fresh stream socket of the daemon's. The zygote forks, and the child
  becomes the shim itself (``main.become_shim``): it listens, creates the container and
  writes the report line an exec'd launcher would print (``{"pid", "shim_pid"}`` or
  ``{"error"}``) to that socket and closes it; the daemon reads until EOF, exactly as
  from an exec'd launcher. No launcher process sits between them: one fork fewer on
  every start (~1.5 ms). The shim calls ``setsid`` itself; it is the zygote's child
  until the zygote leaves, and then re-parented like every other orphan.
- The zygote never runs container code itself and holds no state: it reaps nothing
  (SIGCHLD ignored, its exited children are reaped by the kernel) and exits when the
  daemon's end closes (EOF), so a killed or restarted daemon leaves no zygote behind,
  while the shims and containers it started run on and are re-adopted as before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

READY = b"ready"
MAX_REQUEST = 1 << 20


def serve(fd: int) -> int:
    """Run the zygote on the daemon's socket ``fd`` until the daemon goes away."""
    from hafen.shim.monitor import set_process_name
    from hafen.shim.runtime import preload

    ctl = socket.socket(fileno=fd)
    os.set_inheritable(ctl.fileno(), False)
    preload()
    import gc

    # what is loaded now is shared by every fork: keep the collector off those pages
    # (a collection in a child would touch them all and copy them)
    gc.freeze()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # its shims are reaped by the kernel
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    set_process_name("hafen-zygote")
    ctl.send(READY)
    while True:
        try:
            msg, fds, _flags, _addr = socket.recv_fds(ctl, MAX_REQUEST, 4)
        except InterruptedError:
            continue
        except OSError:
            return 1
        if not msg and not fds:
            return 0  # the daemon closed its end
        if len(fds) != 1:
            for extra in fds:
                os.close(extra)
            continue
        try:
            argv = json.loads(msg)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise ValueError("not a list of strings")
        except ValueError as e:
            os.write(fds[0], json.dumps({"error": f"shim zygote: bad request: {e}"}).encode())
            os.close(fds[0])
            continue
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            _shim(ctl, fds[0], argv)
        os.close(fds[0])


def _shim(ctl: socket.socket, conn: int, argv: list[str]) -> None:
    """The forked child: the shim, reporting on ``conn``."""
    code = 1
    try:
        ctl.close()
        # not for the runtimes and containers it starts (a received fd is inheritable)
        os.set_inheritable(conn, False)
        # the dispositions of a freshly started interpreter, as an exec'd launcher has
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):  # until the shim moves its output to its log
            os.dup2(null, target)
        os.close(null)
        from hafen.shim.main import become_shim

        code = become_shim(argv, conn)
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(code)
