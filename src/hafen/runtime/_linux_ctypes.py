"""``_linux``'s calls through ctypes (``_ffi``), for where that C module was not built.

``scripts/setup`` builds ``_linux`` (runtime/_linux.c); without a C compiler, or from a
source tree nobody set up, ``_sys`` falls back on this module, which makes the same
calls with the same arguments and errors, ~0.9 ms slower a container start. The shared
tests in tests/unit/runtime/test_runtime_linux.py run against both.
"""

from __future__ import annotations

import sys

from hafen.runtime import _ffi
from hafen.runtime import _os as os

API = 4  # the C module's, whose functions these are

_libc = _ffi.Library()
_pylibc = _ffi.Library(python_api=True)  # keeps the GIL: the interpreter's fork hooks
_pylibc.syscall.restype = _ffi.c_long

_MACHINE = os.uname().machine
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41}.get(_MACHINE, 155)
_SYS_SECCOMP = {"x86_64": 317, "aarch64": 277}.get(_MACHINE, 317)
_SYS_CLONE3 = 435  # one number on every architecture (the unified syscall table)
_SYS_CLOSE_RANGE = 436
_SYS_BPF = {"x86_64": 321, "aarch64": 280}.get(_MACHINE, 321)
_SIGCHLD = 17  # the same on x86_64 and aarch64
_CLONE_INTO_CGROUP = 0x200000000
_CAP_VERSION_3 = 0x20080522
_SECCOMP_SET_MODE_FILTER = 1
_PR_SET_SECCOMP = 22
_SECCOMP_MODE_FILTER = 2
_ENOSYS = 38

_libc.mount.argtypes = [_ffi.c_char_p, _ffi.c_char_p, _ffi.c_char_p, _ffi.c_ulong, _ffi.c_char_p]
_libc.umount2.argtypes = [_ffi.c_char_p, _ffi.c_int]
_libc.unshare.argtypes = [_ffi.c_int]
_libc.sethostname.argtypes = [_ffi.c_char_p, _ffi.c_size_t]
_libc.setdomainname.argtypes = [_ffi.c_char_p, _ffi.c_size_t]
_libc.prctl.argtypes = [_ffi.c_int, _ffi.c_ulong, _ffi.c_ulong, _ffi.c_ulong, _ffi.c_ulong]


def _raise() -> None:
    err = _ffi.get_errno()
    raise OSError(err, os.strerror(err))


def _path(p: str | bytes | None) -> bytes | None:
    """As the C module's converter: a C string cannot hold a NUL, and ctypes would pass
    the path cut short at it (a mount on another path than asked)."""
    if p is None:
        return None
    raw = os.fsencode(p)
    if b"\0" in raw:
        raise ValueError("embedded null byte")
    return raw


def unshare(flags: int) -> None:
    if _libc.unshare(flags) < 0:
        _raise()


def setns(fd: int, nstype: int) -> None:
    if _libc.setns(fd, nstype) < 0:
        _raise()


def mount(
    source: str | bytes | None,
    target: str | bytes,
    fstype: str | bytes | None,
    flags: int,
    data: str | bytes | None,
) -> None:
    if _libc.mount(_path(source), _path(target), _path(fstype), flags, _path(data)) < 0:
        _raise()


def umount2(target: str | bytes, flags: int) -> None:
    if _libc.umount2(_path(target), flags) < 0:
        _raise()


def pivot_root(new_root: str | bytes, put_old: str | bytes) -> None:
    if _libc.syscall(_SYS_PIVOT_ROOT, _path(new_root), _path(put_old)) < 0:
        _raise()


def setrlimit(resource: int, soft: int, hard: int) -> None:
    limits = (_ffi.c_uint64 * 2)(soft, hard)
    if _libc.prlimit64(0, resource, limits, None) < 0:
        _raise()


def statfs_type(path: str | bytes) -> int:
    buf = _ffi.string_buffer(b"", 128)  # struct statfs (120 bytes): f_type comes first
    if _libc.statfs(_path(path), buf) < 0:
        _raise()
    return int.from_bytes(buf.raw[:8], sys.byteorder)


def sethostname(name: str) -> None:
    raw = name.encode()
    if _libc.sethostname(raw, len(raw)) < 0:
        _raise()


def setdomainname(name: str) -> None:
    raw = name.encode()
    if _libc.setdomainname(raw, len(raw)) < 0:
        _raise()


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0, arg5: int = 0) -> int:
    ret: int = _libc.prctl(option, arg2, arg3, arg4, arg5)
    if ret < 0:
        _raise()
    return ret


class _CapHeader(_ffi.Structure):
    _fields_ = [("version", _ffi.c_uint32), ("pid", _ffi.c_int)]


class _CapData(_ffi.Structure):
    _fields_ = [
        ("effective", _ffi.c_uint32),
        ("permitted", _ffi.c_uint32),
        ("inheritable", _ffi.c_uint32),
    ]


def capset(effective: int, permitted: int, inheritable: int) -> None:
    header = _CapHeader(_CAP_VERSION_3, 0)
    data = (_CapData * 2)()
    for i in range(2):
        shift = 32 * i
        data[i].effective = (effective >> shift) & 0xFFFFFFFF
        data[i].permitted = (permitted >> shift) & 0xFFFFFFFF
        data[i].inheritable = (inheritable >> shift) & 0xFFFFFFFF
    if _libc.capset(_ffi.byref(header), data) < 0:
        _raise()


class _SockFprog(_ffi.Structure):
    _fields_ = [("len", _ffi.c_ushort), ("filter", _ffi.c_void_p)]


def seccomp_set_filter(program: bytes) -> None:
    if len(program) % 8 or len(program) // 8 > 0xFFFF:
        raise ValueError("a BPF program is 1 to 65535 8-byte instructions")
    buf = _ffi.string_buffer(program, len(program))
    prog = _SockFprog(len(program) // 8, _ffi.addressof(buf))
    ret = _libc.syscall(_SYS_SECCOMP, _SECCOMP_SET_MODE_FILTER, 0, _ffi.byref(prog))
    if ret < 0 and _ffi.get_errno() == _ENOSYS:  # kernels before 3.17
        ret = _libc.prctl(_PR_SET_SECCOMP, _SECCOMP_MODE_FILTER, _ffi.addressof(prog), 0, 0)
    if ret < 0:
        _raise()


def inet_dgram_socket() -> int:
    fd: int = _libc.socket(2, 2 | 0o2000000, 0)
    if fd < 0:
        _raise()
    return fd


def close_range(first: int, last: int, flags: int) -> None:
    if (
        _libc.syscall(_SYS_CLOSE_RANGE, _ffi.c_uint(first), _ffi.c_uint(last), _ffi.c_uint(flags))
        < 0
    ):
        _raise()


def bpf(cmd: int, attr: bytes) -> int:
    if len(attr) > 256:
        raise ValueError("bpf attr is longer than 256 bytes")
    buf = _ffi.string_buffer(attr, len(attr))
    ret = int(_libc.syscall(_SYS_BPF, cmd, buf, len(attr)))
    if ret < 0:
        _raise()
    return ret


def buffer_address(buf: bytearray) -> int:
    if not isinstance(buf, bytearray):
        raise TypeError("buffer_address takes a bytearray")
    return _ffi.addressof((_ffi.c_char * len(buf)).from_buffer(buf)) if buf else 0


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


def clone_fork(flags: int, cgroup_fd: int) -> int:
    if cgroup_fd >= 0:
        flags |= _CLONE_INTO_CGROUP
    args = _CloneArgs(flags=flags, exit_signal=_SIGCHLD, cgroup=max(cgroup_fd, 0))
    sys.audit("os.fork")
    _pylibc.PyOS_BeforeFork()
    pid = _pylibc.syscall(_SYS_CLONE3, _ffi.byref(args), _ffi.sizeof(args))
    if pid == 0:
        _pylibc.PyOS_AfterFork_Child()
        return 0
    err = _ffi.get_errno()
    _pylibc.PyOS_AfterFork_Parent()
    if pid < 0:
        raise OSError(err, os.strerror(err))
    return int(pid)
