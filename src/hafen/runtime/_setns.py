"""What runs in the forked children of ``exec``: join the container, then exec the process.

Owns the child side of exec. The process tree, as runc's setns path builds it:

    exec (parent) ──fork──▶ intermediate: join the container's cgroups, setns into each
                                of its namespaces (user first)
                                  └──fork──▶ process (inside the pid namespace): setsid,
                                             console, rlimits, user, capabilities, cwd,
                                             no_new_privs, seccomp, execve()
    the intermediate reports the process's host pid and exits.

Messages over the ``Channel`` (see ``_init``): {"type": "pid", "pid": N} from the
intermediate, {"type": "error", "msg": "..."} from either child. The channel's write end
is close-on-exec, so the parent reads end-of-file once the process has exec'd: success
needs no message, and a failed execve is still reported.
"""

from __future__ import annotations

from hafen.records import record
from hafen.runtime import _init, _sys
from hafen.runtime import _os as os
from hafen.runtime.config import NAMESPACE_FLAGS, Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket

# /proc/<pid>/ns/<file> for each namespace type.
NS_FILES = {
    "user": "user",
    "mount": "mnt",
    "uts": "uts",
    "ipc": "ipc",
    "pid": "pid",
    "network": "net",
    "cgroup": "cgroup",
    "time": "time",
}


@record
class ExecArgs:
    process: Process
    channel: _init.Channel
    init_pid: int
    namespaces: list[str]
    cgroup_join: list[str]
    seccomp_filter: bytes | None = None
    console: socket.socket | None = None
    preserve_fds: int = 0


def run_intermediate(args: ExecArgs) -> None:
    """The first child. Never returns."""
    code = 1
    try:
        _intermediate(args)
        code = 0
    except BaseException as e:
        try:
            args.channel.send({"type": "error", "msg": _init.describe(e)})
        except BaseException:
            pass
    os._exit(code)


def _same_ns(a: str, b: str) -> bool:
    try:
        return os.stat(a).st_ino == os.stat(b).st_ino
    except OSError:
        return False


def _intermediate(args: ExecArgs) -> None:
    if args.process.oom_score_adj is not None:
        # Before joining a user namespace, where /proc/self is no longer ours to write.
        with open("/proc/self/oom_score_adj", "w") as f:
            f.write(str(args.process.oom_score_adj))
    for path in args.cgroup_join:
        try:
            with open(path, "w") as f:
                f.write("0")  # this process, which has one thread (see join_files)
        except FileNotFoundError:
            continue
    # Open every namespace before joining any (joining mnt changes what /proc means).
    order = sorted(args.namespaces, key=lambda t: 0 if t == "user" else 1)
    fds = []
    for typ in order:
        target = f"/proc/{args.init_pid}/ns/{NS_FILES[typ]}"
        if _same_ns(target, f"/proc/self/ns/{NS_FILES[typ]}"):
            continue  # setns into one's own user namespace is EINVAL; the rest are no-ops
        try:
            fd = os.open(target, os.O_RDONLY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise OSError(f"container process {args.init_pid} is gone")
        fds.append((typ, fd))
    for typ, fd in fds:
        _sys.setns(fd, NAMESPACE_FLAGS[typ], f"{typ} namespace of pid {args.init_pid}")
        os.close(fd)
    pid = os.fork()
    if pid == 0:
        run_process(args)
    args.channel.send({"type": "pid", "pid": pid})


def run_process(args: ExecArgs) -> None:
    """The exec'd process. Never returns."""
    proc = args.process
    try:
        path, argv, env = _setup(args)
    except BaseException as e:
        try:
            args.channel.send({"type": "error", "msg": _init.describe(e)})
        except BaseException:
            pass
        os._exit(1)
    try:
        os.umask(0o022 if proc.umask is None else proc.umask)
        _init.default_signals()
        os.execve(path, argv, env)
    except BaseException as e:
        try:
            args.channel.send({"type": "error", "msg": f"exec {argv[0]!r}: {_init.describe(e)}"})
        except BaseException:
            pass
    os._exit(1)


def _setup(args: ExecArgs) -> tuple[str, list[str], dict[str, str]]:
    proc = args.process
    os.setsid()
    _init.cloexec_from(3 + args.preserve_fds)
    for fd in range(3, 3 + args.preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass
    if proc.terminal:
        assert args.console is not None
        from hafen.runtime import console  # already imported by the parent

        console.setup_console(args.console, proc.console_height, proc.console_width)
        args.console.close()
    env = _init.environ(proc.env)
    for kind, soft, hard in proc.rlimits:
        _sys.setrlimit(kind, soft, hard)
    if args.seccomp_filter is not None and not proc.no_new_privileges:
        # Without no_new_privs the filter needs CAP_SYS_ADMIN: install before dropping it.
        _init.install_seccomp(args.seccomp_filter)
    _init.set_user_and_caps(proc, "user" in args.namespaces)
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise OSError(f"chdir to cwd ({proc.cwd!r}) set in process failed: {e.strerror}")
    path = _init.lookup_executable(proc.args[0], env.get("PATH", _init.DEFAULT_PATH))
    if proc.apparmor_profile:
        from hafen.runtime import apparmor  # imported by the parent when a profile is set

        apparmor.change_on_exec(proc.apparmor_profile)
    if proc.no_new_privileges:
        _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)
        if args.seccomp_filter is not None:
            _init.install_seccomp(args.seccomp_filter)
    return path, list(proc.args), env
