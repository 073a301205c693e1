"""The shim zygote: a pre-imported ``hafen-shim`` that forks shims on request.

Starting a container would otherwise begin with a fresh interpreter for the launcher
(start-up plus the shim's and the runtime's imports, ~20-40 ms). The daemon instead keeps
one zygote per shim command line (``python3 -S -m hafen.shim --zygote FD``), started on
the first launch, with everything imported. Lifecycle and protocol:

- The daemon passes one end of a ``SOCK_SEQPACKET`` socketpair as ``FD``; the zygote
  imports the shim and the runtime, sends ``ready`` and then waits on it.
- A launch is one message: the shim's command line as a JSON list, with one fd attached
  (SCM_RIGHTS), a fresh stream socket of the daemon's. It is taken by the *spare*: a
  child the zygote forked ahead of time, which has already done what every shim does
  first (signals back to their defaults, stdio on /dev/null) and waits on the same
  socket. The spare tells the zygote it has taken a request (a byte on a pipe; the
  zygote forks the next spare at once) and becomes the shim itself
  (``main.become_shim``): it listens, creates the container and writes the report line
  an exec'd launcher would print (``{"pid", "shim_pid"}`` or ``{"error"}``) to that
  socket and closes it (or, for ``--report-attach``, keeps it as an attach stream); the
  daemon reads it as it reads an exec'd launcher's report. No launcher process sits between them (one fork fewer on every start), and
  the fork itself is off the start's path (~0.9 ms). The shim calls ``setsid`` itself;
  it is the zygote's child until the zygote leaves, and then re-parented like every
  other orphan.
- The zygote never runs container code itself and holds no state: it reaps nothing
  (SIGCHLD ignored, its exited children are reaped by the kernel). When the daemon's end
  closes, the spare reads EOF and exits, and so does the zygote, so a killed or
  restarted daemon leaves no zygote behind, while the shims and containers it started
  run on and are re-adopted as before.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import sys

READY = b"ready"
MAX_REQUEST = 1 << 20
MAX_SPARE_FAILURES = 5  # spares dying one after another without a request: give up


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
    failures = 0
    while failures < MAX_SPARE_FAILURES:
        taken_r, taken_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            os.close(taken_r)
            _spare(ctl, taken_w)
        os.close(taken_w)
        try:
            taken = os.read(taken_r, 1)  # until the spare takes a request, or exits
        finally:
            os.close(taken_r)
        if taken:
            failures = 0
        elif _daemon_gone(ctl):
            return 0
        else:
            failures += 1  # a spare that died on its own: fork another, a few times
    return 1


def _daemon_gone(ctl: socket.socket) -> bool:
    """Whether the daemon closed its end (EOF), without taking a waiting request."""
    try:
        return ctl.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) == b""
    except BlockingIOError:
        return False
    except OSError:
        return True


def _spare(ctl: socket.socket, taken: int) -> None:
    """The forked child: made ready for any shim, it waits for a launch and becomes that
    shim, reporting on the fd that came with it. Never returns."""
    code = 1
    try:
        from hafen.shim.monitor import set_process_name

        set_process_name("hafen-spare")
        # the dispositions of a freshly started interpreter, as an exec'd launcher has
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        signal.signal(signal.SIGHUP, signal.SIG_DFL)
        null = os.open(os.devnull, os.O_RDWR)
        for target in (0, 1, 2):  # until the shim moves its output to its log
            os.dup2(null, target)
        os.close(null)
        from hafen.shim.main import become_shim

        msg, fds, _flags, _addr = socket.recv_fds(ctl, MAX_REQUEST, 4)
        if not msg and not fds:
            os._exit(0)  # the daemon closed its end: the zygote leaves too
        os.write(taken, b"t")  # the zygote forks the next spare now
        os.close(taken)
        ctl.close()
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            os._exit(1)  # nowhere to report: the daemon gave no socket
        conn = fds[0]
        # not for the runtimes and containers it starts (a received fd is inheritable)
        os.set_inheritable(conn, False)
        try:
            argv = json.loads(msg)
            if not isinstance(argv, list) or not all(isinstance(a, str) for a in argv):
                raise ValueError("not a list of strings")
        except ValueError as e:
            os.write(conn, json.dumps({"error": f"shim zygote: bad request: {e}"}).encode())
            os._exit(1)
        code = become_shim(argv, conn)
    except BaseException:
        try:
            import traceback

            traceback.print_exc()
            sys.stderr.flush()
        except BaseException:
            pass
    os._exit(code)
