"""``exec``: run another process inside a created or running container (runc's verb).

Owns the parent half of exec (the children are in ``_setns``): building the process from
``--process process.json`` or from the container's own config.json process with runc's
overrides (args, ``--env``, ``--cwd``, ``--user``, ``--additional-gids``, ``--cap``,
``--no-new-privs``, ``--tty``), refusing stopped and paused containers, the pid file, and
waiting for the process (signals forwarded, its exit status returned) unless detached.
A detached process is re-parented to the caller's subreaper (the shim), as with runc.
"""

from __future__ import annotations

import errno

from hafen.errors import Conflict, InvalidArgument, InvalidConfig, RuntimeFailure
from hafen.runtime import _os as os
from hafen.runtime import cgroups
from hafen.runtime._fastjson import loads
from hafen.runtime._signals import signal
from hafen.runtime.config import Process, parse_process
from hafen.runtime.state import StateDir

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import Any

SECCOMP_FILE = "seccomp.bpf"


def load_process_file(path: str) -> Process:
    """A process.json as ``runc exec --process`` reads it (the OCI ``process`` object)."""
    try:
        if path == "-":
            import sys

            raw = loads(sys.stdin.read())
        else:
            with open(path, "rb") as f:
                raw = loads(f.read())
    except FileNotFoundError:
        raise InvalidArgument(f"process file {path!r} does not exist")
    except (ValueError, UnicodeDecodeError) as e:
        raise InvalidConfig(f"process file {path!r} is not valid JSON: {e}")
    return parse_process(raw, f"process file {path!r}")


def process_from_flags(
    bundle: str,
    args: list[str],
    env: list[str] | None = None,
    cwd: str | None = None,
    user: str | None = None,
    additional_gids: list[str] | None = None,
    caps: list[str] | None = None,
    no_new_privs: bool = False,
    tty: bool = False,
) -> Process:
    """The container's config.json process with runc exec's command-line overrides."""
    if not args:
        raise InvalidArgument("exec: command is required (or use --process)")
    try:
        with open(os.path.join(bundle, "config.json"), "rb") as f:
            raw = loads(f.read())
    except (OSError, ValueError) as e:
        raise InvalidConfig(f"exec: cannot read the container's config.json: {e}")
    base = dict(raw.get("process") or {})
    base["args"] = list(args)
    base["terminal"] = tty
    base["env"] = list(base.get("env") or []) + list(env or [])
    if cwd:
        base["cwd"] = cwd
    base["user"] = dict(base.get("user") or {})
    if user:
        uid, _, gid = user.partition(":")
        try:
            base["user"]["uid"] = int(uid)
            if gid:
                base["user"]["gid"] = int(gid)
        except ValueError:
            raise InvalidArgument(f"exec: --user {user!r}: expected uid[:gid] as numbers")
    if additional_gids:
        try:
            base["user"]["additionalGids"] = [int(g) for g in additional_gids]
        except ValueError:
            raise InvalidArgument("exec: --additional-gids takes numeric gids")
    if caps:
        have = dict(base.get("capabilities") or {})
        for key in ("bounding", "effective", "permitted", "inheritable", "ambient"):
            names = list(have.get(key) or [])
            for c in caps:
                c = c.upper() if c.upper().startswith("CAP_") else "CAP_" + c.upper()
                if c not in names:
                    names.append(c)
            have[key] = names
        base["capabilities"] = have
    if no_new_privs:
        base["noNewPrivileges"] = True
    base.pop("consoleSize", None)
    return parse_process(base, "exec process")


def exec_process(
    root: str,
    container_id: str,
    process: Process,
    detach: bool = False,
    pid_file: str | None = None,
    console_socket: str | None = None,
    preserve_fds: int = 0,
    ignore_paused: bool = False,
) -> int:
    """Start ``process`` in the container; without ``detach`` wait and return its status."""
    sd = StateDir(root, container_id)
    st = sd.load()
    status = sd.status(st)
    if status == "stopped":
        raise Conflict("cannot exec in a stopped container")
    if status == "paused" and not ignore_paused:
        raise Conflict("cannot exec in a paused container (use --ignore-paused to override)")
    if process.terminal and detach and not console_socket:
        raise InvalidArgument(
            "cannot allocate tty if hafen-runtime will detach without setting console socket"
        )
    if console_socket and not process.terminal:
        raise InvalidArgument("cannot use console socket if process.terminal is false")
    if process.apparmor_profile:
        from hafen.runtime import apparmor

        apparmor.require(process.apparmor_profile)
    manager = cgroups.manager_from_state(st.cgroup_path, st.cgroup_unified)
    seccomp_filter = _read_filter(sd)
    console: socket.socket | None = None
    proxy_end: socket.socket | None = None
    if process.terminal:
        import socket

        from hafen.runtime import console as _console  # loaded before the fork

        if console_socket:
            console = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                console.connect(console_socket)
            except OSError as e:
                raise InvalidArgument(f"console socket {console_socket}: {e.strerror}")
        else:
            # No console socket: we hold the pty ourselves and copy it to our stdio.
            console, proxy_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    if not detach:
        from hafen.runtime import _sys

        # The process is re-parented to us when the intermediate exits: we wait on it.
        _sys.prctl(_sys.PR_SET_CHILD_SUBREAPER, 1)
    try:
        pid = _spawn(st.pid, st.namespaces, manager, process, console, seccomp_filter, preserve_fds)
    finally:
        if console is not None:
            console.close()
    if pid_file:
        from hafen.runtime.container import _write_pid_file

        _write_pid_file(pid_file, pid)
    if detach:
        return 0
    if proxy_end is not None:
        from hafen.runtime import console as _console

        master, _name = _console.recv_console(proxy_end)
        proxy_end.close()
        _console.proxy(master)
    return wait_forwarding(pid)


def _read_filter(sd: StateDir) -> bytes | None:
    try:
        with open(os.path.join(sd.path, SECCOMP_FILE), "rb") as f:
            return f.read()
    except FileNotFoundError:
        return None


def _spawn(
    init_pid: int,
    namespaces: list[str],
    manager: cgroups.CgroupManager,
    process: Process,
    console: socket.socket | None,
    seccomp_filter: bytes | None,
    preserve_fds: int,
) -> int:
    from hafen.runtime import _init, _setns

    to_parent_r, to_parent_w = os.pipe()
    to_child_r, to_child_w = os.pipe()
    child_chan = _init.Channel(to_child_r, to_parent_w)
    parent_chan = _init.Channel(to_parent_r, to_child_w)
    args = _setns.ExecArgs(
        process=process,
        channel=child_chan,
        init_pid=init_pid,
        namespaces=namespaces,
        cgroup_join=[],  # the child's own, set after the fork
        seccomp_filter=seccomp_filter,
        console=console,
        preserve_fds=preserve_fds,
    )
    child, joins = manager.fork_child()
    if child == 0:
        args.cgroup_join = joins
        parent_chan.close()
        _setns.run_intermediate(args)
    child_chan.close()
    pid = 0
    error = ""
    try:
        # Read to end-of-file: the process's copy of the channel closes when it execs.
        while True:
            msg = parent_chan.read()
            if msg is None:
                break
            if msg.get("type") == "pid":
                pid = int(str(msg["pid"]))
            elif msg.get("type") == "error":
                error = str(msg.get("msg"))
                break
    finally:
        parent_chan.close()
        _reap(child)
    if pid and not error:
        return pid
    if pid:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        _reap(pid)
    raise RuntimeFailure(
        "unable to start container process: " + (error or "exec setup exited unexpectedly")
    )


def _reap(pid: int) -> None:
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except InterruptedError:
            continue


FORWARDED = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGWINCH,
)


def wait_forwarding(pid: int) -> int:
    """Wait for ``pid`` (our child or re-parented to us), forwarding signals; its status."""

    def forward(signum: int, _frame: object) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    old: dict[int, Any] = {s: signal.signal(s, forward) for s in FORWARDED}
    code = 255
    try:
        while True:
            try:
                waited, status = os.waitpid(-1, 0)
            except ChildProcessError:
                break
            except OSError as e:
                if e.errno == errno.EINTR:
                    continue
                raise
            if waited == pid:
                code = os.waitstatus_to_exitcode(status)
                code = 128 - code if code < 0 else code
                break
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    return code
