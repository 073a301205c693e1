"""The runtime's ``os``: the ``posix`` C module plus the few helpers of ``os`` it uses.

``import os`` costs ~0.7 ms of every ``hafen-runtime`` call (``os.environ`` is a
``MutableMapping``, which makes it import ``_collections_abc`` and build its ~30 ABCs),
and ``python -S`` has not imported it yet. Every function the runtime calls through
``os`` is ``posix``'s own; what ``os`` writes in Python (``makedirs``, ``fsencode`` and
the ``os.path`` functions the runtime uses) is here, with the same results on the
paths the runtime gives them (tests compare each with ``os``). Modules on the
runtime's start path import this as ``os``:

    from hafen.runtime import _os as os
"""

import posix as _posix
import sys as _sys
from posix import *  # noqa: F403 (the functions and constants os re-exports)
from posix import _exit  # noqa: F401 (a star import leaves out underscored names)

_S_IFMT = 0o170000
_S_IFDIR = 0o040000
_S_IFREG = 0o100000
_S_IFLNK = 0o120000


def fsencode(filename: str | bytes) -> bytes:
    """A path as the kernel takes it, encoded as ``os.fsencode`` does."""
    if isinstance(filename, bytes):
        return filename
    return filename.encode(_sys.getfilesystemencoding(), _sys.getfilesystemencodeerrors())


def makedirs(name: str, mode: int = 0o777, exist_ok: bool = False) -> None:
    """``os.makedirs``: ``name`` with ``mode``, and its missing parents with 0o777 (as
    ``os.makedirs`` since Python 3.7; the umask applies to both)."""
    head = path.dirname(name.rstrip("/"))
    if head and head != name and not path.exists(head):
        try:
            makedirs(head, exist_ok=exist_ok)
        except FileExistsError:
            pass  # made meanwhile by another process
    try:
        _posix.mkdir(name, mode)
    except OSError:
        if not exist_ok or not path.isdir(name):
            raise


def _mode(name: str | bytes, follow: bool) -> int:
    try:
        return _posix.stat(name, follow_symlinks=follow).st_mode & _S_IFMT
    except (OSError, ValueError):
        return -1


class path:
    """The ``os.path`` (``posixpath``) functions the runtime uses."""

    @staticmethod
    def join(a: str, *parts: str) -> str:
        for b in parts:
            if b.startswith("/"):
                a = b
            elif not a or a.endswith("/"):
                a += b
            else:
                a += "/" + b
        return a

    @staticmethod
    def dirname(p: str) -> str:
        head = p[: p.rfind("/") + 1]
        if head and head != "/" * len(head):
            head = head.rstrip("/")
        return head

    @staticmethod
    def basename(p: str) -> str:
        return p[p.rfind("/") + 1 :]

    @staticmethod
    def normpath(p: str) -> str:
        if not p:
            return "."
        # POSIX lets a leading "//" mean something else; three or more are one "/".
        initial = 2 if p.startswith("//") and not p.startswith("///") else int(p[0] == "/")
        parts: list[str] = []
        for part in p.split("/"):
            if part in ("", "."):
                continue
            if part != ".." or (not initial and not parts) or (parts and parts[-1] == ".."):
                parts.append(part)
            elif parts:
                parts.pop()
        return "/" * initial + "/".join(parts) or "."

    @staticmethod
    def abspath(p: str) -> str:
        return path.normpath(p if p.startswith("/") else path.join(_posix.getcwd(), p))

    @staticmethod
    def exists(p: str | bytes) -> bool:
        return _mode(p, True) != -1

    @staticmethod
    def lexists(p: str | bytes) -> bool:
        return _mode(p, False) != -1

    @staticmethod
    def isdir(p: str | bytes) -> bool:
        return _mode(p, True) == _S_IFDIR

    @staticmethod
    def isfile(p: str | bytes) -> bool:
        return _mode(p, True) == _S_IFREG

    @staticmethod
    def islink(p: str | bytes) -> bool:
        return _mode(p, False) == _S_IFLNK
