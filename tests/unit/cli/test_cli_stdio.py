"""The local end of an attach: detach keys and output copying."""

from __future__ import annotations

import io
import os
import socket
import threading

from hafen.cli._stdio import AttachedSession, DetachScanner
from hafen.client import STDERR, STDOUT, Hijacked, encode_frame


def test_detach_scanner_finds_the_sequence_across_reads() -> None:
    scanner = DetachScanner()
    assert scanner.feed(b"ab\x10") == (b"ab", False)
    assert scanner.feed(b"\x11rest") == (b"", True)


def test_detach_scanner_releases_a_false_start() -> None:
    scanner = DetachScanner()
    assert scanner.feed(b"\x10x") == (b"\x10x", False)
    assert scanner.feed(b"\x10\x10\x11") == (b"\x10", True)


def _session(
    payload: bytes, tty: bool, stdin: bytes | None = None
) -> tuple[bytes, bytes, bytes, bool]:
    ours, theirs = socket.socketpair()
    out, err = io.BytesIO(), io.BytesIO()
    stdin_fd = None
    if stdin is not None:
        r, w = os.pipe()
        os.write(w, stdin)
        os.close(w)
        stdin_fd = r
    session = AttachedSession(
        Hijacked(ours, buffered=payload[:3]),
        tty=tty,
        forward_stdin=stdin is not None,
        stdin_fd=stdin_fd,
        stdout=out,
        stderr=err,
    )
    result: list[bool] = []
    runner = threading.Thread(target=lambda: result.append(session.run()))
    runner.start()
    received = b""
    if stdin is not None:
        theirs.settimeout(10)
        while chunk := theirs.recv(4096):  # ends when the session half-closes
            received += chunk
    try:
        theirs.sendall(payload[3:])
    except OSError:
        pass  # the session hung up after a detach
    theirs.close()
    runner.join(10)
    detached = result[0]
    if stdin_fd is not None:
        os.close(stdin_fd)
    return out.getvalue(), err.getvalue(), received, detached


def test_session_demuxes_buffered_and_socket_bytes() -> None:
    payload = encode_frame(STDOUT, b"out\n") + encode_frame(STDERR, b"err\n")
    out, err, _sent, detached = _session(payload, tty=False)
    assert (out, err, detached) == (b"out\n", b"err\n", False)


def test_session_copies_raw_output_with_a_tty() -> None:
    out, err, _sent, _detached = _session(b"raw bytes\r\n", tty=True)
    assert (out, err) == (b"raw bytes\r\n", b"")


def test_session_forwards_stdin_and_half_closes_at_eof() -> None:
    _out, _err, sent, _detached = _session(
        encode_frame(STDOUT, b"x"), tty=False, stdin=b"in\x10\x11put"
    )
    # Without a TTY, detach keys are ordinary bytes.
    assert sent == b"in\x10\x11put"


def test_session_detaches_on_ctrl_p_ctrl_q_with_a_tty() -> None:
    _out, _err, sent, detached = _session(b"", tty=True, stdin=b"ls\x10\x11more")
    assert detached is True
    assert sent == b"ls"
