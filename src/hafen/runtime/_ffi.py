"""The part of ``ctypes`` the runtime uses, built on its C module ``_ctypes`` alone.

``import ctypes`` costs ~3 ms here (its Python layer defines every type, loader and
helper, and imports ``struct``), paid by every ``hafen-runtime`` verb that sets up a
process; ``_ctypes`` costs ~0.7 ms. The runtime needs little of it: a handle on the
already-loaded libc (and the interpreter's own C API), foreign calls that keep errno,
a few scalar types, structures, arrays and pointers. Those are the C module's own
objects, so they behave exactly as ``ctypes``' do.

    libc = Library()                     # dlopen(NULL): libc and the interpreter
    libc.mount.argtypes = [c_char_p, ...]
    if libc.mount(...) < 0: err = get_errno()
    python = Library(python_api=True)    # calls that keep the GIL (as ctypes.PyDLL)
"""

from __future__ import annotations

import _ctypes

from hafen.runtime import _os as os

TYPE_CHECKING = False
if TYPE_CHECKING:  # type checkers know ctypes' names; these are the same C objects
    from ctypes import (
        Array,
        Structure,
        addressof,
        byref,
        c_char,
        c_char_p,
        c_int,
        c_long,
        c_uint,
        c_uint64,
        c_ulong,
        c_ushort,
        c_void_p,
        get_errno,
        sizeof,
    )
    from typing import Any
else:
    from _ctypes import Array, Structure, addressof, byref, get_errno, sizeof

    class c_int(_ctypes._SimpleCData):
        _type_ = "i"

    class c_uint(_ctypes._SimpleCData):
        _type_ = "I"

    class c_long(_ctypes._SimpleCData):
        _type_ = "l"

    class c_ulong(_ctypes._SimpleCData):
        _type_ = "L"

    class c_ushort(_ctypes._SimpleCData):
        _type_ = "H"

    class c_uint64(_ctypes._SimpleCData):
        _type_ = "Q"

    class c_char(_ctypes._SimpleCData):
        _type_ = "c"

    class c_char_p(_ctypes._SimpleCData):
        _type_ = "z"

    class c_void_p(_ctypes._SimpleCData):
        _type_ = "P"


c_uint32 = c_uint
c_size_t = c_ulong  # LP64: the only data model the runtime runs on (x86_64, aarch64)


class _Function(_ctypes.CFuncPtr):
    """A C function returning int, errno kept for ``get_errno`` (ctypes' use_errno)."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO
    _restype_ = c_int


class _PythonFunction(_ctypes.CFuncPtr):
    """The same, called with the GIL held (ctypes.PyDLL): for the interpreter's C API."""

    _flags_ = _ctypes.FUNCFLAG_CDECL | _ctypes.FUNCFLAG_USE_ERRNO | _ctypes.FUNCFLAG_PYTHONAPI
    _restype_ = c_int


class Library:
    """The symbols of the running process (libc, the interpreter), by attribute."""

    def __init__(self, python_api: bool = False) -> None:
        self._handle: int = _ctypes.dlopen(None, os.RTLD_NOW | os.RTLD_GLOBAL)  # type: ignore[arg-type]
        self._function = _PythonFunction if python_api else _Function

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        function = self._function((name, self))  # type: ignore[arg-type]
        setattr(self, name, function)  # argtypes/restype set on it stay
        return function


def string_buffer(data: bytes, size: int | None = None) -> Array[c_char]:
    """A mutable char array holding ``data``, NUL-padded to ``size`` (by default one byte
    more than ``data``, a C string), as ctypes.create_string_buffer makes it."""
    buf = (c_char * (len(data) + 1 if size is None else size))()
    buf.raw = data.ljust(len(buf), b"\0")
    return buf


__all__ = [
    "Array",
    "Library",
    "Structure",
    "addressof",
    "byref",
    "c_char",
    "c_char_p",
    "c_int",
    "c_long",
    "c_size_t",
    "c_uint",
    "c_uint32",
    "c_uint64",
    "c_ulong",
    "c_ushort",
    "c_void_p",
    "get_errno",
    "sizeof",
    "string_buffer",
]
