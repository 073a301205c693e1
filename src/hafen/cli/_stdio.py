"""The local end of an attached container: terminal raw mode, stdin forwarding with
detach keys, output copying (demultiplexed without a TTY, raw with one), terminal
resizes on SIGWINCH, and signal proxying, as docker's ``hijack.go`` does them.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading

from hafen.client import STDERR, STDOUT, Hijacked, demux

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from typing import IO, Any

# ctrl-p ctrl-q, docker's default detach sequence.
DETACH_SEQUENCE = b"\x10\x11"


def stdin_is_tty() -> bool:
    try:
        return os.isatty(sys.stdin.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def stdout_is_tty() -> bool:
    try:
        return os.isatty(sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        return False


def terminal_size() -> tuple[int, int] | None:
    """(height, width) of the terminal on stdout, or None when it is not a terminal."""
    if not stdout_is_tty():
        return None
    try:
        size = os.get_terminal_size(sys.stdout.fileno())
    except OSError:
        return None
    if not size.lines or not size.columns:
        return None  # a fresh pty reports 0x0: nothing worth telling the daemon
    return size.lines, size.columns


@contextlib.contextmanager
def raw_terminal(enabled: bool) -> Iterator[None]:
    """Put stdin in raw mode for the duration (when ``enabled`` and it is a terminal);
    the previous mode is always restored."""
    if not enabled or not stdin_is_tty():
        yield
        return
    import termios
    import tty

    fd = sys.stdin.fileno()
    saved = termios.tcgetattr(fd)
    try:
        tty.setraw(fd, termios.TCSANOW)
        yield
    finally:
        termios.tcsetattr(fd, termios.TCSADRAIN, saved)


class DetachScanner:
    """Finds the detach sequence in a byte stream that may split it across reads.

    ``feed`` returns the bytes to forward and whether the sequence was completed; a
    partial match is held back until the next byte decides it.
    """

    def __init__(self, sequence: bytes = DETACH_SEQUENCE) -> None:
        self.sequence = sequence
        self._held = b""

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        out = bytearray()
        for byte in data:
            candidate = self._held + bytes([byte])
            if self.sequence.startswith(candidate):
                self._held = candidate
                if candidate == self.sequence:
                    self._held = b""
                    return bytes(out), True
            else:
                out += self._held
                self._held = b""
                if self.sequence.startswith(bytes([byte])):
                    self._held = bytes([byte])
                else:
                    out.append(byte)
        return bytes(out), False


def _binary(stream: IO[Any]) -> IO[bytes]:
    return getattr(stream, "buffer", stream)


class AttachedSession:
    """Copies a hijacked connection to the local stdio until the container's output ends
    or the user detaches."""

    def __init__(
        self,
        conn: Hijacked,
        tty: bool,
        forward_stdin: bool,
        detach_keys: bytes | None = DETACH_SEQUENCE,
        stdin_fd: int | None = None,
        stdout: IO[bytes] | None = None,
        stderr: IO[bytes] | None = None,
    ) -> None:
        self.conn = conn
        self.tty = tty
        self.forward_stdin = forward_stdin
        # Detach keys apply to a TTY session only: piped binary input must pass untouched.
        self.detach_keys = detach_keys if tty else None
        self.stdin_fd = sys.stdin.fileno() if stdin_fd is None and forward_stdin else stdin_fd
        self.stdout = stdout or _binary(sys.stdout)
        self.stderr = stderr or _binary(sys.stderr)
        self.detached = threading.Event()

    def _stdin_loop(self) -> None:
        assert self.stdin_fd is not None
        scanner = DetachScanner(self.detach_keys) if self.detach_keys else None
        while True:
            try:
                data = os.read(self.stdin_fd, 65536)
            except OSError:
                data = b""
            if not data:
                # EOF on our stdin: half-close so the container sees EOF on its stdin.
                self.conn.close_write()
                return
            if scanner is not None:
                data, detach = scanner.feed(data)
                if detach:
                    if data:
                        self._send(data)
                    self.detached.set()
                    self._hang_up()
                    return
            if data and not self._send(data):
                return

    def _send(self, data: bytes) -> bool:
        try:
            self.conn.sendall(data)
            return True
        except OSError:
            return False

    def _hang_up(self) -> None:
        import socket

        try:
            self.conn.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass

    def run(self) -> bool:
        """Pump until the output ends; returns True if the user detached."""
        if self.forward_stdin and self.stdin_fd is not None:
            threading.Thread(target=self._stdin_loop, name="hafen-stdin", daemon=True).start()
        try:
            if self.tty:
                while chunk := self._recv():
                    self.stdout.write(chunk)
                    self.stdout.flush()
            else:
                for stream, payload in demux(self._recv):
                    out = self.stdout if stream == STDOUT else self.stderr
                    if stream not in (STDOUT, STDERR):
                        out = self.stderr
                    out.write(payload)
                    out.flush()
        except BrokenPipeError:
            pass
        finally:
            self.conn.close()
        return self.detached.is_set()

    def _recv(self, size: int = 65536) -> bytes:
        try:
            return self.conn.recv(size)
        except OSError:
            return b""


@contextlib.contextmanager
def resize_on_sigwinch(resize: Callable[[int, int], None], enabled: bool) -> Iterator[None]:
    """Send the terminal size now and on every SIGWINCH while inside the block."""
    if not enabled or terminal_size() is None:
        yield
        return

    def push() -> None:
        size = terminal_size()
        if size is not None:
            with contextlib.suppress(Exception):
                resize(size[0], size[1])

    def handler(_signum: int, _frame: object) -> None:
        threading.Thread(target=push, daemon=True).start()

    previous = signal.signal(signal.SIGWINCH, handler)
    push()
    try:
        yield
    finally:
        signal.signal(signal.SIGWINCH, previous)


_PROXIED = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")


@contextlib.contextmanager
def proxy_signals(kill: Callable[[str], None], enabled: bool) -> Iterator[None]:
    """Forward the signals the CLI receives to the container (docker's --sig-proxy)."""
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield
        return

    def handler(signum: int, _frame: object) -> None:
        name = signal.Signals(signum).name
        threading.Thread(target=lambda: _quiet(kill, name), daemon=True).start()

    saved: dict[int, Any] = {}
    for name in _PROXIED:
        sig = getattr(signal, name)
        saved[sig] = signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, previous in saved.items():
            signal.signal(sig, previous)


def _quiet(fn: Callable[[str], None], arg: str) -> None:
    with contextlib.suppress(Exception):
        fn(arg)
