"""Thin foreign-call wrappers for the Linux syscalls the runtime needs and ``os`` lacks.

Owns: unshare, setns, mount, umount2, pivot_root, sethostname/setdomainname, prctl,
capget/capset, clone3 into a cgroup and the numeric constants they use. Every wrapper
raises ``OSError`` with errno and a message naming the call and its arguments, so that
the init can report "mount proc on /proc: Operation not permitted" to ``create``.

Loaded only by the process that sets up a container; calls go through ``_ffi`` (the C
module of ctypes, without ctypes' ~3 ms of import).
"""

from __future__ import annotations

import sys

from hafen.runtime import _ffi, _files
from hafen.runtime import _os as os

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NoReturn

_libc = _ffi.Library()
_pylibc = _ffi.Library(python_api=True)
_pylibc.syscall.restype = _ffi.c_long

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

CLONE_INTO_CGROUP = 0x200000000
_RLIM_MASK = (1 << 64) - 1
_SIGCHLD = 17  # the same on x86_64 and aarch64
_SYS_CLONE3 = 435  # one number on every architecture (the unified syscall table)

_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(os.uname().machine, 155)
_SYS_SETNS = {"x86_64": 308, "aarch64": 268}.get(os.uname().machine, 308)

_libc.mount.argtypes = [
    _ffi.c_char_p,
    _ffi.c_char_p,
    _ffi.c_char_p,
    _ffi.c_ulong,
    _ffi.c_char_p,
]
_libc.umount2.argtypes = [_ffi.c_char_p, _ffi.c_int]
_libc.unshare.argtypes = [_ffi.c_int]
_libc.sethostname.argtypes = [_ffi.c_char_p, _ffi.c_size_t]
_libc.setdomainname.argtypes = [_ffi.c_char_p, _ffi.c_size_t]
_libc.prctl.argtypes = [
    _ffi.c_int,
    _ffi.c_ulong,
    _ffi.c_ulong,
    _ffi.c_ulong,
    _ffi.c_ulong,
]


def _fail(what: str) -> NoReturn:
    """Raise the failed call's errno as an OSError naming ``what``. Callers build
    ``what`` only on failure: a mount's message alone cost ~1 us, on ~40 mounts a start."""
    err = _ffi.get_errno()
    raise OSError(err, f"{what}: {os.strerror(err)}")


def _b(s: str | None) -> bytes | None:
    return None if s is None else os.fsencode(s)


def inet_dgram_socket() -> int:
    """socket(AF_INET, SOCK_DGRAM|SOCK_CLOEXEC) as a bare fd (for interface ioctls)."""
    fd: int = _libc.socket(2, 2 | 0o2000000, 0)
    if fd < 0:
        _fail("socket(AF_INET, SOCK_DGRAM)")
    return fd


def unshare(flags: int) -> None:
    if _libc.unshare(flags) < 0:
        _fail(f"unshare({flags:#x})")


def setns(fd: int, nstype: int, what: str = "") -> None:
    if _libc.syscall(_SYS_SETNS, fd, nstype) < 0:
        _fail(f"setns {what}")


def mount(
    source: str | None, target: str, fstype: str | None, flags: int, data: str | None
) -> None:
    if _libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)) < 0:
        _fail(
            f"mount {source or 'none'} on {target} (type {fstype}, flags {flags:#x}, data {data!r})"
        )


def umount2(target: str, flags: int) -> None:
    if _libc.umount2(_b(target), flags) < 0:
        _fail(f"umount2 {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, _b(new_root), _b(put_old)) < 0:
        _fail(f"pivot_root {new_root}")


def setrlimit(kind: int, soft: int, hard: int) -> None:
    """setrlimit(2), through prlimit64 (``resource`` is one more shared library to load
    on the start path). Unlimited is RLIM_INFINITY, 2**64-1 (or -1, as ``resource``)."""
    limits = (_ffi.c_uint64 * 2)(soft & _RLIM_MASK, hard & _RLIM_MASK)
    if _libc.prlimit64(0, kind, limits, None) < 0:
        _fail(f"setrlimit {kind} to {soft}/{hard}")


def statfs_type(path: str) -> int:
    """The f_type of the filesystem holding ``path`` (statfs(2); os.statvfs has none)."""
    buf = _ffi.string_buffer(b"", 128)  # struct statfs (120 bytes): f_type comes first
    if _libc.statfs(_b(path), buf) < 0:
        _fail(f"statfs {path}")
    return int.from_bytes(buf.raw[:8], sys.byteorder)


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) < 0:
        _fail(f"sethostname {name!r}")


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) < 0:
        _fail(f"setdomainname {name!r}")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        _fail(f"prctl({option}, {arg2})")
    return ret


class _CapHeader(_ffi.Structure):
    _fields_ = [("version", _ffi.c_uint32), ("pid", _ffi.c_int)]


class _CapData(_ffi.Structure):
    _fields_ = [
        ("effective", _ffi.c_uint32),
        ("permitted", _ffi.c_uint32),
        ("inheritable", _ffi.c_uint32),
    ]


_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def capset(effective: int, permitted: int, inheritable: int) -> None:
    """Set the calling thread's capability sets (64-bit masks)."""
    hdr = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(_ffi.byref(hdr), data) < 0:
        _fail("capset")


def last_cap() -> int:
    """The highest capability number this kernel knows."""
    try:
        return int(_files.read_text("/proc/sys/kernel/cap_last_cap"))
    except OSError:
        return 40


_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(os.uname().machine, 317)
SECCOMP_SET_MODE_FILTER = 1
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2


class _SockFprog(_ffi.Structure):
    _fields_ = [("len", _ffi.c_ushort), ("filter", _ffi.c_void_p)]


def seccomp_set_filter(program: bytes) -> None:
    """Install a classic BPF program (8 bytes per instruction) as this thread's filter."""
    buf = _ffi.string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, _ffi.addressof(buf))
    ret = _libc.syscall(_SYS_SECCOMP, SECCOMP_SET_MODE_FILTER, 0, _ffi.byref(prog))
    if ret < 0 and _ffi.get_errno() == 38:  # ENOSYS: kernels before 3.17
        ret = _libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, _ffi.addressof(prog), 0, 0)
    if ret < 0:
        _fail("seccomp(SECCOMP_SET_MODE_FILTER)")


class _CloneArgs(_ffi.Structure):
    """``struct clone_args`` up to ``cgroup`` (CLONE_ARGS_SIZE_VER2, 88 bytes)."""

    _fields_ = [
        (name, _ffi.c_uint64)
        for name in (
            "flags",
            "pidfd",
            "child_tid",
            "parent_tid",
            "exit_signal",
            "stack",
            "stack_size",
            "tls",
            "set_tid",
            "set_tid_size",
            "cgroup",
        )
    ]


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
    flags = namespaces | (CLONE_INTO_CGROUP if cgroup_fd is not None else 0)
    args = _CloneArgs(flags=flags, exit_signal=_SIGCHLD, cgroup=cgroup_fd or 0)
    api = _pylibc
    api.PyOS_BeforeFork()
    # PyDLL keeps the GIL across the call, as os.fork does around fork().
    pid = _pylibc.syscall(_SYS_CLONE3, _ffi.byref(args), _ffi.sizeof(args))
    if pid == 0:
        api.PyOS_AfterFork_Child()
        return 0
    err = _ffi.get_errno()
    api.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, f"clone3: {os.strerror(err)}")
    return int(pid)
