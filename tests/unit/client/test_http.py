"""The client's HTTP/1.1 connection against a scripted peer on a socket pair: requests
as written on the wire, and bodies framed by Content-Length, chunked and end of stream."""

from __future__ import annotations

import socket
import threading

import pytest

from hafen.client._http import Connection, HTTPException
from hafen.errors import InvalidArgument


def exchange(
    reply: bytes, send: tuple[str, str, object] = ("GET", "/x", None)
) -> tuple[bytes, Connection]:
    """Send one request to a peer that answers ``reply`` and closes; (request bytes, conn)."""
    ours, theirs = socket.socketpair()
    seen: list[bytes] = []

    def peer() -> None:
        data = b""
        theirs.settimeout(5)
        try:
            while chunk := theirs.recv(65536):
                data += chunk
                head, sep, body = data.partition(b"\r\n\r\n")
                if not sep:
                    continue
                if b"chunked" in head:
                    if body.endswith(b"0\r\n\r\n"):
                        break
                elif b"Content-Length: " in head:
                    size = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
                    if len(body) >= size:
                        break
                else:
                    break
        finally:
            seen.append(data)
            theirs.sendall(reply)
            theirs.close()

    thread = threading.Thread(target=peer)
    thread.start()
    conn = Connection(ours)
    method, url, body = send
    conn.request(method, url, body, {"Host": "docker"})
    thread.join(5)
    return seen[0], conn


def test_bytes_body_goes_with_its_length_and_a_sized_body_is_read_exactly() -> None:
    wire, conn = exchange(
        b'HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n{"a":1}extra',
        ("POST", "/v1.45/containers/create", b'{"Image":"busybox"}'),
    )
    assert wire.startswith(b"POST /v1.45/containers/create HTTP/1.1\r\n")
    assert b"Content-Length: 19\r\n" in wire and wire.endswith(b'\r\n\r\n{"Image":"busybox"}')
    resp = conn.getresponse()
    assert (resp.status, resp.reason) == (201, "Created")
    assert ("Content-Type", "application/json") in resp.getheaders()
    assert resp.read() == b'{"a":1}'
    assert resp.read1() == b""
    conn.close()


def test_streamed_body_is_sent_chunked_and_a_chunked_reply_is_reassembled() -> None:
    wire, conn = exchange(
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nTrailer: x\r\n\r\n",
        ("POST", "/build", iter([b"abc", b"", b"defgh"])),
    )
    assert b"Transfer-Encoding: chunked\r\n" in wire
    assert wire.endswith(b"\r\n\r\n3\r\nabc\r\n5\r\ndefgh\r\n0\r\n\r\n")
    resp = conn.getresponse()
    pieces = []
    while piece := resp.read1(4):
        pieces.append(piece)
    assert b"".join(pieces) == b"hello, world" and max(map(len, pieces)) <= 4
    conn.close()


def test_body_without_length_runs_to_the_end_of_the_stream() -> None:
    _, conn = exchange(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it")
    assert conn.getresponse().read() == b"all of it"
    conn.close()


def test_no_body_for_304_and_head() -> None:
    _, conn = exchange(b"HTTP/1.1 304 Not Modified\r\n\r\n")
    assert conn.getresponse().read() == b""
    conn.close()
    _, conn = exchange(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n", ("HEAD", "/_ping", None))
    assert conn.getresponse().read() == b""
    conn.close()


@pytest.mark.parametrize(
    "reply",
    [
        b"",  # closed before answering
        b"SSH-2.0-OpenSSH\r\n\r\n",  # not HTTP
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",  # body cut off
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",  # bad chunk size
        b"HTTP/1.1 200 OK\r\nContent-Length: ten\r\n\r\n",
    ],
)
def test_malformed_or_cut_responses_raise(reply: bytes) -> None:
    _, conn = exchange(reply)
    with pytest.raises(HTTPException):
        conn.getresponse().read()
    conn.close()


def test_query_and_path_escaping_match_urllib() -> None:
    # the client escapes by itself (urllib.parse costs CLI start-up); same bytes out
    from urllib.parse import quote, urlencode

    from hafen.client._client import _encode_params, _q

    for text in ["abc", "a b/c", "ünï", '{"label":["a=b"]}', "x:y@z/w", "~._-", "", "a+b&c=%"]:
        assert _q(text) == quote(text, safe=":@"), text
    params = {"filters": {"label": ["a=b c"]}, "all": True, "names": ("a b", "c/d"), "q": "é&="}
    expected = urlencode(
        [
            ("filters", '{"label":["a=b c"]}'),
            ("all", "1"),
            ("names", "a b"),
            ("names", "c/d"),
            ("q", "é&="),
        ]
    )
    assert _encode_params(params) == expected


def test_unix_hosts_parse_without_urllib() -> None:
    from hafen.client._transport import parse_host

    assert parse_host("unix:///run/hafen/hafen.sock").address == "/run/hafen/hafen.sock"
    assert parse_host("unix://rel.sock").address == "rel.sock"
    assert parse_host("/abs.sock").url == "unix:///abs.sock"
    tcp = parse_host("tcp://127.0.0.1:2376")
    assert (tcp.scheme, tcp.address, tcp.port) == ("tcp", "127.0.0.1", 2376)
    with pytest.raises(InvalidArgument, match="no socket path"):
        parse_host("unix://")
