"""What runs in the forked children of ``create``: namespaces, then the container init.

Owns the child side of create. The process tree, as runc builds it:

    create (parent) ──fork──▶ intermediate: join cgroup, setns/unshare, [uid/gid maps]
                                  └──fork──▶ init (pid 1 of the new pid namespace):
                                             mounts, pivot_root, hostname, console, sysctl,
                                             masked/ro paths, rlimits, user, capabilities,
                                             lookup of the executable → "ready",
                                             blocks opening exec.fifo, then execve()
    the intermediate exits at once, so the init is re-parented to the caller's subreaper.

Where no namespace is joined by path and there is no user namespace, the init is
instead born in its new namespaces by one clone3 (``direct_namespaces``, ``run_direct``,
as crun does): it joins its cgroup and makes its cgroup namespace itself, and is the
caller's own child until the caller exits. One process fewer per start (~1.5 ms). Where
it can (``container._can_share_memory``), that init shares the caller's memory instead of
being a copy of it (``_sys.clone_vm_run``): ``prepare_direct`` is its Python, up to
"ready"; it returns the exec plan to C rather than exec'ing.

Both children talk to the parent over a pair of pipes (a ``Channel``; pipes rather than
a socketpair because ``socket`` costs start-up time), one JSON object per line:
{"type": "userns"} (parent writes uid/gid maps, answers {"type": "ack"}),
{"type": "pid", "pid": N}, {"type": "ready"}, {"type": "error", "msg": "..."}.
Forked children never return into the caller's code: they leave with os._exit.
"""

from __future__ import annotations

import _struct as struct
import fcntl

# Everything the children need is imported here, before the fork: after a uid change or
# pivot_root the interpreter's own files may be unreadable or gone. (``console`` is
# imported by the parent before the fork when the process wants a terminal.)
from hafen.records import record
from hafen.runtime import _files, _sys, rootfs
from hafen.runtime import _os as os
from hafen.runtime._fastjson import dumps, loads
from hafen.runtime.config import CAP_NUMBERS, NAMESPACE_FLAGS, Process, Spec

TYPE_CHECKING = False
if TYPE_CHECKING:
    import socket
    from typing import NoReturn

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@record
class InitArgs:
    spec: Spec
    channel: Channel
    state_dir_fd: int
    fifo_name: str
    cgroup_paths: dict[str, str]
    cgroup_join: list[str]
    console: socket.socket | None = None  # connected --console-socket
    no_pivot: bool = False
    preserve_fds: int = 0
    debug: bool = False
    seccomp_filter: bytes | None = None
    container_id: str = ""
    # Create/start hooks exist: stop before pivot_root for the parent's hooks.
    hooks_sync: bool = False
    # create called in a caller's own process (the shim's): the container's stdio, which
    # the child makes its 0-2 before it drops everything else of the caller's
    stdio: tuple[int, int, int] | None = None


class Channel:
    """Newline-delimited JSON messages over a pair of pipe ends."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd
        self.buf = b""

    def send(self, msg: dict[str, object]) -> None:
        data = dumps(msg).encode() + b"\n"
        while data:
            data = data[os.write(self.write_fd, data) :]

    def read(self) -> dict[str, object] | None:
        while b"\n" not in self.buf:
            chunk = os.read(self.read_fd, 65536)
            if not chunk:
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        msg: dict[str, object] = loads(line)
        return msg

    def close(self) -> None:
        for fd in (self.read_fd, self.write_fd):
            try:
                os.close(fd)
            except OSError:
                pass


def cloexec_from(lowest: int) -> None:
    """Mark every fd >= lowest close-on-exec, so only stdio (and preserved fds) leak in."""
    if _sys.cloexec_from(lowest):
        return
    for name in os.listdir("/proc/self/fd"):  # kernels before 5.11
        fd = int(name)
        if fd >= lowest:
            try:
                os.set_inheritable(fd, False)
            except OSError:
                pass


def take_stdio(stdio: tuple[int, int, int]) -> None:
    """Make ``stdio`` this process's fds 0-2 (inheritable, for what it execs) and put every
    signal back to its default, unblocked, with no wake-up fd: what a process forked from
    a long-lived one (the shim) needs before it runs or execs anything of a container's."""
    from hafen.runtime._signals import signal

    signal.set_wakeup_fd(-1)
    for sig in range(1, signal.NSIG):
        if sig not in (signal.SIGKILL, signal.SIGSTOP):
            try:
                signal.signal(sig, signal.SIG_DFL)
            except (OSError, ValueError):
                pass  # glibc's internal signals: never set by the caller either
    signal.pthread_sigmask(signal.SIG_SETMASK, [])
    for target, fd in enumerate(stdio):
        if fd == target:
            os.set_inheritable(fd, True)
        else:
            os.dup2(fd, target)  # the copy is inheritable


def adopt_stdio(args: InitArgs) -> None:
    """Make the first child of an in-process create what the child of a runtime CLI is:
    the container's stdio as fds 0-2, none of the caller's other fds (the shim's report
    pipe held until exec would keep the daemon waiting for a start it has not asked for
    yet), and every signal at its default, unblocked, with no wake-up fd (the shim's
    handlers and its SIGCHLD pipe are not the container's)."""
    import gc

    gc.disable()  # no finalizer of the caller's objects may run here
    assert args.stdio is not None
    take_stdio(args.stdio)
    keep = {args.channel.read_fd, args.channel.write_fd, args.state_dir_fd}
    if args.console is not None:
        keep.add(args.console.fileno())
    low = 3
    for fd in sorted(keep):
        os.closerange(low, fd)
        low = max(low, fd + 1)
    os.closerange(low, 1 << 20)


def run_intermediate(args: InitArgs) -> None:
    """The first child. Never returns."""
    try:
        if args.stdio is not None:
            adopt_stdio(args)
        _intermediate(args)
    except BaseException as e:
        _fail(args, e)
    os._exit(0)


def _fail(args: InitArgs, e: BaseException) -> NoReturn:
    """Tell the parent what went wrong (as far as the channel still works), and leave."""
    try:
        args.channel.send({"type": "error", "msg": describe(e)})
    except BaseException:
        pass
    os._exit(1)


def describe(e: BaseException) -> str:
    if isinstance(e, OSError) and e.strerror and e.filename is None and e.args[1:]:
        return str(e.args[1])
    return str(e) or type(e).__name__


def direct_namespaces(spec: Spec) -> int | None:
    """The CLONE_NEW* flags the init can be born in (clone3, no intermediate), or None
    when it needs the intermediate: for a user namespace (the parent writes its id maps
    between the unshare and the fork) or a namespace joined by path (joining a pid
    namespace only takes effect for children). The cgroup namespace is left out: it is
    made after the cgroup is joined, so that its root is the container's cgroup."""
    flags = 0
    for ns in spec.namespaces:
        if ns.path or ns.type == "user":
            return None
        flags |= NAMESPACE_FLAGS[ns.type]
    return flags & ~_sys.CLONE_NEWCGROUP


def run_direct(args: InitArgs) -> None:
    """The container init, born in the namespaces ``direct_namespaces`` gave: what the
    intermediate does before its fork, then the init. Never returns."""
    try:
        if args.stdio is not None:
            adopt_stdio(args)
        _born_direct(args)
    except BaseException as e:
        _fail(args, e)
    run_init(args)


def _born_direct(args: InitArgs) -> None:
    """What an init born in its namespaces does before the init proper: what the
    intermediate would have done (cgroup, cgroup namespace, loopback)."""
    _enter_cgroup(args)
    if args.spec.has_namespace("cgroup"):
        _sys.unshare(_sys.CLONE_NEWCGROUP)
    if args.spec.has_namespace("network"):
        _loopback_up()


ExecPlan = tuple[bytes, list[bytes], list[bytes], int, int, bytes, list[int]]


def prepare_direct(args: InitArgs) -> ExecPlan | None:
    """``run_direct`` for an init that shares the runtime's memory (``_sys.clone_vm_run``):
    the same set-up up to "ready", then the plan its C side execs (path, argv, environment,
    umask, the state dir's fd, the exec fifo's name, the signals Python catches, which it
    resets first) instead of the exec itself; None once an error is reported. It changes
    nothing the runtime holds, only this process's own fds, namespaces and attributes."""
    try:
        _born_direct(args)
        path, argv, env = _init(args)
        args.channel.send({"type": "ready"})
        args.channel.close()
        from hafen.runtime._signals import signal

        caught = [
            sig
            for sig in range(1, signal.NSIG)
            if signal.getsignal(sig) not in (signal.SIG_DFL, signal.SIG_IGN, None)
        ]
        return (
            os.fsencode(path),
            [os.fsencode(a) for a in argv],
            [os.fsencode(f"{k}={v}") for k, v in env.items()],
            _exec_umask(args),
            args.state_dir_fd,
            os.fsencode(args.fifo_name),
            # and the two Python ignores, as default_signals
            [*caught, signal.SIGPIPE, signal.SIGXFSZ],
        )
    except BaseException as e:
        try:
            args.channel.send({"type": "error", "msg": describe(e)})
        except BaseException:
            pass
        return None


def _enter_cgroup(args: InitArgs) -> None:
    proc = args.spec.process
    if proc is not None and proc.oom_score_adj is not None:
        # Before any user namespace: inside one, /proc/self is no longer ours to write.
        # The init and everything it forks inherit the value.
        try:
            _files.write_text("/proc/self/oom_score_adj", str(proc.oom_score_adj))
        except OSError as e:
            raise OSError(e.errno, f"set oom_score_adj to {proc.oom_score_adj}: {e.strerror}")
    # Join the cgroup first: everything forked from here on is accounted and limited.
    for path in args.cgroup_join:
        try:
            _files.write_text(path, "0")  # this process, which has one thread (join_files)
        except OSError as e:
            raise OSError(e.errno, f"join cgroup {os.path.dirname(path)}: {e.strerror}")


def _intermediate(args: InitArgs) -> None:
    spec = args.spec
    _enter_cgroup(args)
    # Open every namespace path before joining any: joining a mount ns changes lookups.
    joins = []
    for ns in spec.namespaces:
        if ns.path:
            fd = os.open(ns.path, os.O_RDONLY | os.O_CLOEXEC)
            joins.append((0 if ns.type == "user" else 1, fd, NAMESPACE_FLAGS[ns.type], ns))
    for _order, fd, flag, ns in sorted(joins, key=lambda j: j[0]):
        _sys.setns(fd, flag, f"{ns.type} namespace {ns.path}")
        os.close(fd)
    flags = 0
    for ns in spec.namespaces:
        if not ns.path:
            flags |= NAMESPACE_FLAGS[ns.type]
    if flags:
        _sys.unshare(flags)
    if flags & _sys.CLONE_NEWUSER:
        args.channel.send({"type": "userns", "pid": os.getpid()})
        reply = args.channel.read()
        if not reply or reply.get("type") != "ack":
            raise RuntimeError("user namespace: parent did not write the id mappings")
    if spec.has_namespace("user"):
        os.setresgid(0, 0, 0)
        os.setresuid(0, 0, 0)
    if flags & _sys.CLONE_NEWNET:
        _loopback_up()
    pid = os.fork()
    if pid == 0:
        run_init(args)
    args.channel.send({"type": "pid", "pid": pid})


def _loopback_up() -> None:
    """Bring up ``lo`` in the container's own, new network namespace (runc does too)."""
    siocgifflags, siocsifflags, iff_up = 0x8913, 0x8914, 0x1
    fd = _sys.inet_dgram_socket()
    try:
        req = struct.pack("16sH14x", b"lo", 0)
        (flags,) = struct.unpack("16xH14x", fcntl.ioctl(fd, siocgifflags, req))
        fcntl.ioctl(fd, siocsifflags, struct.pack("16sH14x", b"lo", flags | iff_up))
    finally:
        os.close(fd)


def _exec_umask(args: InitArgs) -> int:
    """The umask the container's process starts with: its own, else runc's 022."""
    umask = args.spec.process.umask if args.spec.process else None
    return 0o022 if umask is None else umask


def default_signals() -> None:
    """Undo what the Python interpreter did at start-up: it ignores SIGPIPE and SIGXFSZ,
    and ignored signals survive execve, so the container's processes would never die of
    them (``yes | head`` would spin forever). A container starts with every default."""
    from hafen.runtime._signals import signal

    for sig in (signal.SIGPIPE, signal.SIGXFSZ):
        signal.signal(sig, signal.SIG_DFL)


def run_init(args: InitArgs) -> None:
    """The container init. Never returns: it execs the user process or exits."""
    try:
        path, argv, env = _init(args)
    except BaseException as e:
        _fail(args, e)
    try:
        args.channel.send({"type": "ready"})
        args.channel.close()
        # Blocks until `start` opens the fifo for reading.
        fifo = os.open(args.fifo_name, os.O_WRONLY | os.O_CLOEXEC, dir_fd=args.state_dir_fd)
        os.write(fifo, b"0")
        os.close(fifo)
        os.close(args.state_dir_fd)
        _run_hooks(args, "startContainer", "created")
        os.umask(_exec_umask(args))
        default_signals()
        os.execve(path, argv, env)
    except OSError as e:
        os.write(2, f"exec {argv[0]!r} failed: {e.strerror}\n".encode())
        os._exit(127 if e.errno == 2 else 126)
    except BaseException as e:
        os.write(2, f"container init failed: {e}\n".encode())
    os._exit(1)


def _init(args: InitArgs) -> tuple[str, list[str], dict[str, str]]:
    spec = args.spec
    proc = spec.process
    assert proc is not None
    os.setsid()
    os.umask(0)
    cloexec_from(3 + args.preserve_fds)
    for fd in range(3, 3 + args.preserve_fds):
        try:
            os.set_inheritable(fd, True)
        except OSError:
            pass

    def before_pivot() -> None:
        if not args.hooks_sync:
            return
        # The parent runs prestart + createRuntime in the runtime's namespaces now.
        args.channel.send({"type": "hooks"})
        reply = args.channel.read()
        if not reply or reply.get("type") != "ack":
            raise RuntimeError("create hooks failed")
        _hook_state_pid[0] = int(str(reply.get("pid") or 0))
        _run_hooks(args, "createContainer", "creating")

    if spec.has_namespace("mount"):
        rootfs.prepare_rootfs(
            spec,
            args.cgroup_paths,
            no_pivot=args.no_pivot,
            in_userns=spec.has_namespace("user"),
            before_pivot=before_pivot,
        )
    else:
        before_pivot()
    if spec.hostname:
        _sys.sethostname(spec.hostname)
    if spec.domainname:
        _sys.setdomainname(spec.domainname)
    if proc.terminal:
        assert args.console is not None
        from hafen.runtime import console  # already imported by the parent

        name = console.setup_console(args.console, proc.console_height, proc.console_width)
        args.console.close()
        _bind_console(name)
    if spec.has_namespace("mount"):
        rootfs.write_sysctls(spec.sysctl)
        rootfs.finalize_rootfs(spec)
    elif spec.sysctl:
        rootfs.write_sysctls(spec.sysctl)
    env = environ(proc.env)
    for kind, soft, hard in proc.rlimits:
        _sys.setrlimit(kind, soft, hard)
    if args.seccomp_filter is not None and not proc.no_new_privileges:
        # Without no_new_privs loading a filter needs CAP_SYS_ADMIN: before the caps drop.
        install_seccomp(args.seccomp_filter)
    set_user_and_caps(proc, spec.has_namespace("user"))
    try:
        os.chdir(proc.cwd)
    except OSError as e:
        raise OSError(f"chdir to cwd ({proc.cwd!r}) set in config.json failed: {e.strerror}")
    path = lookup_executable(proc.args[0], env.get("PATH", DEFAULT_PATH))
    if proc.apparmor_profile:
        from hafen.runtime import apparmor  # imported by create when a profile is set

        apparmor.change_on_exec(proc.apparmor_profile)
    if proc.no_new_privileges:
        _sys.prctl(_sys.PR_SET_NO_NEW_PRIVS, 1)
        if args.seccomp_filter is not None:
            install_seccomp(args.seccomp_filter)  # last, as runc: fewest syscalls after it
    return path, list(proc.args), env


_hook_state_pid = [0]


def _run_hooks(args: InitArgs, kind: str, status: str) -> None:
    entries = args.spec.hooks.get(kind)
    if not entries:
        return
    from hafen.runtime import hooks  # imported by create before the fork

    state = {
        "ociVersion": args.spec.oci_version or "1.0.2",
        "id": args.container_id,
        "status": status,
        "pid": _hook_state_pid[0],
        "bundle": args.spec.bundle,
        "annotations": args.spec.annotations,
    }
    hooks.run_all(entries, state, kind)


def install_seccomp(program: bytes) -> None:
    """Load the container's compiled seccomp filter into this process."""
    if program:
        _sys.seccomp_set_filter(program)


def _bind_console(slave: str) -> None:
    """Make /dev/console the container's pty, as runc does."""
    try:
        if not os.path.lexists("/dev/console"):
            os.close(os.open("/dev/console", os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o600))
        _sys.mount(slave, "/dev/console", None, _sys.MS_BIND, None)
    except OSError:
        # Best effort: a read-only /dev without a console entry is not fatal.
        pass


def environ(entries: list[str]) -> dict[str, str]:
    env: dict[str, str] = {}
    for entry in entries:
        key, sep, value = entry.partition("=")
        if sep:
            env[key] = value
    return env


def lookup_executable(name: str, path_var: str) -> str:
    """Find ``name`` the way runc (Go's exec.LookPath) does, in the container's root."""

    def usable(p: str) -> bool:
        return os.path.isfile(p) and os.access(p, os.X_OK)

    if "/" in name:
        if not os.path.exists(name):
            raise OSError(f'exec: "{name}": stat {name}: no such file or directory')
        if not usable(name):
            raise OSError(f'exec: "{name}": permission denied')
        return name
    for d in path_var.split(":"):
        candidate = os.path.join(d or ".", name)
        if usable(candidate):
            return candidate
    raise OSError(f'exec: "{name}": executable file not found in $PATH')


def _mask(names: list[str]) -> int:
    """Capability names -> a bit mask, without the ones this kernel does not know (runc
    ignores those too: a config written for a newer kernel still runs)."""
    mask = 0
    for n in names:
        mask |= 1 << CAP_NUMBERS[n]
    return mask & ((1 << (_sys.last_cap() + 1)) - 1)


def set_user_and_caps(proc: Process, in_userns: bool) -> None:
    """Bounding set, groups, uid/gid, then the other capability sets (runc's order)."""
    caps = proc.capabilities
    if caps is not None:
        bounding = _mask(caps.bounding)
        for cap in range(_sys.last_cap() + 1):
            if not bounding & (1 << cap):
                _sys.prctl(_sys.PR_CAPBSET_DROP, cap)
    # Keep permitted caps across the uid change; capset below sets the final sets.
    _sys.prctl(_sys.PR_SET_KEEPCAPS, 1)
    if not (in_userns and _setgroups_denied()):
        os.setgroups(proc.additional_gids)
    os.setresgid(proc.gid, proc.gid, proc.gid)
    os.setresuid(proc.uid, proc.uid, proc.uid)
    _sys.prctl(_sys.PR_SET_KEEPCAPS, 0)
    if caps is not None:
        _sys.capset(_mask(caps.effective), _mask(caps.permitted), _mask(caps.inheritable))
        _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_CLEAR_ALL)
        for name in caps.ambient:
            try:
                _sys.prctl(_sys.PR_CAP_AMBIENT, _sys.PR_CAP_AMBIENT_RAISE, CAP_NUMBERS[name])
            except OSError:
                # runc ignores ambient caps that are not also permitted+inheritable.
                pass


def _setgroups_denied() -> bool:
    try:
        with open("/proc/self/setgroups") as f:
            return f.read().strip() == "deny"
    except OSError:
        return False
