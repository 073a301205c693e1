"""The Linux calls the runtime needs and ``os`` lacks, with errors that name the call.

Owns: unshare, setns, mount, umount2, pivot_root, sethostname/setdomainname, prctl,
capset, seccomp, rlimits, clone3 into namespaces and a cgroup, and the numeric constants
they use. Every wrapper raises ``OSError`` with errno and a message naming the call and
its arguments, so that the init can report "mount proc on /proc: Operation not
permitted" to ``create``.

The calls themselves are the C module ``_linux`` (runtime/_linux.c, built by
scripts/setup); where it was not built, ``_linux_ctypes`` makes the same calls through
ctypes. Loaded only by the processes that set up a container.
"""

from __future__ import annotations

import errno

from hafen.runtime import _files
from hafen.runtime import _os as os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

# The C module's functions this module calls; one built from older sources (a checkout
# updated without scripts/setup) lacks some, and is not used.
LINUX_API = 4

try:
    from hafen.runtime import _linux

    if _linux.API != LINUX_API:
        raise ImportError(f"runtime/_linux.c is built at API {_linux.API}, not {LINUX_API}")
except ImportError:  # not built: the same calls through ctypes, ~0.9 ms a start slower
    from hafen.runtime import _linux_ctypes as _linux  # type: ignore[no-redef]

# clone(2) namespace flags.
CLONE_NEWTIME = 0x00000080
CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

# mount(2) flags.
MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_SYNCHRONOUS = 0x10
MS_REMOUNT = 0x20
MS_MANDLOCK = 0x40
MS_DIRSYNC = 0x80
MS_NOSYMFOLLOW = 0x100
MS_NOATIME = 0x400
MS_NODIRATIME = 0x800
MS_BIND = 0x1000
MS_MOVE = 0x2000
MS_REC = 0x4000
MS_SILENT = 0x8000
MS_UNBINDABLE = 0x20000
MS_PRIVATE = 0x40000
MS_SLAVE = 0x80000
MS_SHARED = 0x100000
MS_RELATIME = 0x200000
MS_STRICTATIME = 0x1000000
MS_LAZYTIME = 0x2000000

MNT_DETACH = 0x2

# prctl(2) options.
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_CAPBSET_READ = 23
PR_CAPBSET_DROP = 24
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_RAISE = 2
PR_CAP_AMBIENT_CLEAR_ALL = 4

_RLIM_MASK = (1 << 64) - 1


def _named(e: OSError, what: str) -> OSError:
    """The failed call's ``OSError`` with a message naming ``what``. Callers build
    ``what`` only on failure: a mount's message alone cost ~1 us, on ~40 mounts a start."""
    return OSError(e.errno, f"{what}: {e.strerror}")


def inet_dgram_socket() -> int:
    """socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC) as a bare fd (for interface ioctls)."""
    try:
        return _linux.inet_dgram_socket()
    except OSError as e:
        raise _named(e, "socket(AF_INET, SOCK_DGRAM)") from None


def unshare(flags: int) -> None:
    try:
        _linux.unshare(flags)
    except OSError as e:
        raise _named(e, f"unshare({flags:#x})") from None


def setns(fd: int, nstype: int, what: str = "") -> None:
    try:
        _linux.setns(fd, nstype)
    except OSError as e:
        raise _named(e, f"setns {what}") from None


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    try:
        _linux.mount(source, target, fstype, flags, data)
    except OSError as e:
        raise _named(
            e,
            f"mount {source or 'none'} on {target} (type {fstype}, flags {flags:#x}, data {data!r})",
        ) from None


def umount2(target: str, flags: int) -> None:
    try:
        _linux.umount2(target, flags)
    except OSError as e:
        raise _named(e, f"umount2 {target}") from None


def pivot_root(new_root: str, put_old: str) -> None:
    try:
        _linux.pivot_root(new_root, put_old)
    except OSError as e:
        raise _named(e, f"pivot_root {new_root}") from None


def setrlimit(kind: int, soft: int, hard: int) -> None:
    """setrlimit(2), through prlimit64 (``resource`` is one more shared library to load
    on the start path). Unlimited is RLIM_INFINITY, 2**64-1 (or -1, as ``resource``)."""
    try:
        _linux.setrlimit(kind, soft & _RLIM_MASK, hard & _RLIM_MASK)
    except OSError as e:
        raise _named(e, f"setrlimit {kind} to {soft}/{hard}") from None


def statfs_type(path: str) -> int:
    """The f_type of the filesystem holding ``path`` (statfs(2); os.statvfs has none)."""
    try:
        return _linux.statfs_type(path)
    except OSError as e:
        raise _named(e, f"statfs {path}") from None


def sethostname(name: str) -> None:
    try:
        _linux.sethostname(name)
    except OSError as e:
        raise _named(e, f"sethostname {name!r}") from None


def setdomainname(name: str) -> None:
    try:
        _linux.setdomainname(name)
    except OSError as e:
        raise _named(e, f"setdomainname {name!r}") from None


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    try:
        return _linux.prctl(option, arg2, arg3, arg4, arg5)
    except OSError as e:
        raise _named(e, f"prctl({option}, {arg2})") from None


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks)."""
    try:
        _linux.capset(effective, permitted, inheritable)
    except OSError as e:
        raise _named(e, "capset") from None


_last_cap: list[int] = []


def last_cap() -> int:
    """The highest capability number this kernel knows (read once: the init asks five
    times while it sets its capabilities)."""
    if not _last_cap:
        try:
            _last_cap.append(int(_files.read_text("/proc/sys/kernel/cap_last_cap")))
        except OSError:
            return 40
    return _last_cap[0]


def seccomp_set_filter(program: bytes) -> None:
    """Install a classic BPF program (8 bytes per instruction) as this thread's filter."""
    try:
        _linux.seccomp_set_filter(program)
    except OSError as e:
        raise _named(e, "seccomp(SECCOMP_SET_MODE_FILTER)") from None


def bpf(cmd: int, attr: bytes, what: str) -> int:
    """bpf(2) ``cmd`` with ``attr`` (union bpf_attr); its result (a fd for loads)."""
    try:
        return _linux.bpf(cmd, attr)
    except OSError as e:
        raise _named(e, what) from None


def buffer_address(buf: bytearray) -> int:
    """The address of ``buf``'s bytes, for a pointer in an ``attr`` given to ``bpf``
    (valid while ``buf`` lives and keeps its size)."""
    return _linux.buffer_address(buf)


_CLOSE_RANGE_CLOEXEC = 1 << 2
_UINT_MAX = (1 << 32) - 1


def cloexec_from(lowest: int) -> bool:
    """Mark every fd >= ``lowest`` close-on-exec in one call (close_range(2) with
    CLOSE_RANGE_CLOEXEC); False where the kernel has no such call (before 5.11)."""
    try:
        _linux.close_range(lowest, _UINT_MAX, _CLOSE_RANGE_CLOEXEC)
    except OSError as e:
        if e.errno in (errno.ENOSYS, errno.EINVAL):
            return False
        raise _named(e, f"close_range({lowest}, ~0, CLOSE_RANGE_CLOEXEC)") from None
    return True


def can_share_memory() -> bool:
    """Whether ``clone_vm_run`` is here (the C module, built for x86_64 or aarch64) and this
    process has one thread (another one would run beside the child's Python)."""
    return hasattr(_linux, "clone_vm_run") and len(os.listdir("/proc/self/task")) == 1


def clone_vm_run(flags: int, init: Callable[[], object], cleanup: list[bytes]) -> tuple[int, bool]:
    """An init that shares this process's memory (runtime/_linux.c): born in ``flags``'
    namespaces, it runs ``init`` here, on this thread's state, while this process waits,
    then execs the plan ``init`` returned once ``start`` opens the exec fifo. Returns its
    pid and whether it took a plan (False: ``init`` reported an error and the child left).
    Should the child die inside ``init``, this process execs ``cleanup`` instead of
    returning."""
    try:
        return _linux.clone_vm_run(flags, init, cleanup)
    except OSError as e:
        raise _named(e, "clone(CLONE_VM)") from None


def clone_fork(namespaces: int = 0, cgroup_fd: int | None = None) -> int:
    """``os.fork()`` whose child is born in new ``namespaces`` (CLONE_NEW* flags) and, with
    ``cgroup_fd``, in that cgroup v2 directory (CLONE_INTO_CGROUP, Linux 5.7): clone3,
    as crun does. Born in its cgroup, the child never migrates there, so it never waits
    on the kernel's global threadgroup lock, whose first taking after a quiet spell waits
    for an RCU grace period (5-15 ms); born in its namespaces (a new pid namespace makes
    it pid 1), it needs no intermediate process that unshares and forks again. Python's
    own fork bookkeeping runs around the call as ``os.fork`` runs it (before/after-fork
    hooks, the child's interpreter state). Raises ``OSError`` (ENOSYS on older kernels,
    EPERM, EINVAL) with no child made.
    """
    try:
        return _linux.clone_fork(namespaces, -1 if cgroup_fd is None else cgroup_fd)
    except OSError as e:
        raise _named(e, "clone3") from None
