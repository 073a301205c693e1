"""runtime/_ffi.py: the runtime's foreign calls without ctypes' Python layer behave as
ctypes' own (they are the same C objects)."""

from __future__ import annotations

import ctypes
import errno
import os

import pytest

from hafen.runtime import _ffi, _linux_ctypes


@pytest.mark.parametrize(
    ("data", "size"), [(b"Apache", None), (b"ab", 5), (b"", 16), (b"\x01\x02", 2)]
)
def test_string_buffer_is_create_string_buffer(data: bytes, size: int | None) -> None:
    ours = _ffi.string_buffer(data, size)
    theirs = ctypes.create_string_buffer(data, size) if size else ctypes.create_string_buffer(data)
    assert (ours.raw, len(ours)) == (theirs.raw, len(theirs))
    assert ours.value == theirs.value


def test_calls_return_results_and_keep_errno() -> None:
    libc = _ffi.Library()
    assert libc.getpid() == os.getpid()
    libc.umount2.argtypes = [_ffi.c_char_p, _ffi.c_int]
    assert libc.umount2(b"/nonexistent/hafen-ffi", 0) == -1
    assert _ffi.get_errno() == errno.ENOENT
    libc.syscall.restype = _ffi.c_long
    assert libc.syscall(39 if os.uname().machine == "x86_64" else 172) == os.getpid()


def test_structures_have_the_kernels_layout() -> None:
    assert _ffi.sizeof(_linux_ctypes._CloneArgs) == 88  # CLONE_ARGS_SIZE_VER2
    assert _ffi.sizeof(_linux_ctypes._SockFprog) == 16
    assert _ffi.sizeof(_linux_ctypes._CapHeader) == 8
    assert _ffi.sizeof(_linux_ctypes._CapData) == 12
