"""The container's terminal: a pty from the container's own devpts, handed to the caller.

Owns: allocating the pty inside the container (after /dev/pts is mounted and the rootfs
pivoted), sending its master over ``--console-socket`` with SCM_RIGHTS (one message whose
payload is the slave's name, as runc sends it), and making the slave the init's stdio and
controlling terminal. ``recv_console`` is the receiving half, for callers and tests.
"""

from __future__ import annotations

import fcntl
import os
import socket
import struct
import termios

_TIOCGPTN = 0x80045430
_TIOCSPTLCK = 0x40045431


def open_pty() -> tuple[int, str]:
    """Open a new pty in the mounted devpts; return (master fd, slave path)."""
    ptmx = "/dev/pts/ptmx" if os.path.exists("/dev/pts/ptmx") else "/dev/ptmx"
    master = os.open(ptmx, os.O_RDWR | os.O_NOCTTY | os.O_CLOEXEC)
    fcntl.ioctl(master, _TIOCSPTLCK, struct.pack("i", 0))
    (num,) = struct.unpack("I", fcntl.ioctl(master, _TIOCGPTN, b"\0\0\0\0"))
    return master, f"/dev/pts/{num}"


def send_console(sock: socket.socket, master: int, name: str) -> None:
    socket.send_fds(sock, [name.encode()], [master])


def recv_console(sock: socket.socket) -> tuple[int, str]:
    """Receive (master fd, slave name) sent by ``send_console`` (the caller's side)."""
    msg, fds, _flags, _addr = socket.recv_fds(sock, 4096, 1)
    if not fds:
        raise OSError("console socket: no file descriptor received")
    return fds[0], msg.decode(errors="replace")


def setup_console(sock: socket.socket, height: int = 0, width: int = 0) -> str:
    """Allocate the pty, send its master, make the slave stdio + controlling tty."""
    master, name = open_pty()
    slave = os.open(name, os.O_RDWR | os.O_NOCTTY)
    try:
        if height and width:
            fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", height, width, 0, 0))
        send_console(sock, master, name)
    finally:
        os.close(master)
    for fd in (0, 1, 2):
        os.dup2(slave, fd)
    if slave > 2:
        os.close(slave)
    # The init is a session leader (setsid); this makes the pty its controlling tty.
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)
    return name


def proxy(master: int) -> None:
    """Copy our stdin to the pty and the pty to our stdout until the process hangs up.

    Used by ``exec -t`` and ``run`` without ``--console-socket`` (runc holds the pty
    itself then). Our own terminal, if stdin is one, is put in raw mode meanwhile.
    """
    import select
    import tty

    saved = None
    if os.isatty(0):
        saved = termios.tcgetattr(0)
        tty.setraw(0)
        try:
            size = fcntl.ioctl(0, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(master, termios.TIOCSWINSZ, size)
        except OSError:
            pass
    watch = [master, 0]
    try:
        while True:
            try:
                ready, _, _ = select.select(watch, [], [])
            except InterruptedError:
                continue
            if master in ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: every slave fd is closed
                    data = b""
                if not data:
                    break
                while data:
                    data = data[os.write(1, data) :]
            if 0 in ready:
                try:
                    data = os.read(0, 65536)
                except OSError:
                    data = b""
                if not data:
                    watch = [master]  # our stdin ended; keep copying output
                    continue
                os.write(master, data)
    finally:
        if saved is not None:
            termios.tcsetattr(0, termios.TCSADRAIN, saved)
        os.close(master)
