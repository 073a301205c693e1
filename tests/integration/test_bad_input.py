"""Bad input and rude clients: Docker's status codes, and a daemon that stays unharmed."""

from __future__ import annotations

import json
import socket
import time

from tests.conftest import Hafend
from tests.integration.test_api import call


def raw_request(d: Hafend, head: str, body: bytes = b"") -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(str(d.socket))
    s.sendall(head.encode() + body)
    return s


def post_raw(d: Hafend, path: str, body: bytes, headers: str = "") -> bytes:
    """The start of the reply to a POST of ``body`` as it is (no JSON encoding)."""
    s = raw_request(
        d,
        f"POST {path} HTTP/1.1\r\nHost: d\r\n{headers}Content-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n",
        body,
    )
    try:
        return s.recv(65536)
    finally:
        s.close()


def test_malformed_bodies_and_filters_get_400(hafend: Hafend) -> None:
    reply = post_raw(hafend, "/v1.45/containers/create", b'{"Image":')
    assert reply.startswith(b"HTTP/1.1 400") and b"invalid JSON" in reply
    status, body, _ = call(hafend, "GET", "/containers/json?filters={bad")
    assert status == 400 and "invalid filters" in body["message"]
    status, body, _ = call(hafend, "GET", '/containers/json?filters={"colour":["red"]}')
    assert status == 400 and "colour" in body["message"]
    r = hafend.cli("ps", "--format", "{{.Nope", check=False)
    assert r.returncode != 0
    status, body, _ = call(hafend, "GET", "/containers/does-not-exist/json")
    assert status == 404 and body["message"] == "No such container: does-not-exist"


def test_clients_that_leave_mid_stream_do_not_harm_the_daemon(hafend: Hafend) -> None:
    cid = hafend.cli(
        "run", "-d", "busybox", "sh", "-c", "while true; do echo tick; sleep 0.05; done"
    ).stdout.strip()
    try:
        for path in (f"/v1.45/containers/{cid}/logs?follow=1&stdout=1", "/v1.45/events"):
            s = raw_request(hafend, f"GET {path} HTTP/1.1\r\nHost: d\r\n\r\n")
            s.recv(1024)
            s.close()  # gone mid-stream
        _, body, _ = call(hafend, "POST", f"/containers/{cid}/exec",
                          {"Cmd": ["sh", "-c", "sleep 0.3; exit 4"], "AttachStdout": True})  # fmt: skip
        payload = json.dumps({"Detach": False}).encode()
        s = raw_request(
            hafend,
            f"POST /v1.45/exec/{body['Id']}/start HTTP/1.1\r\nHost: d\r\n"
            "Connection: Upgrade\r\nUpgrade: tcp\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(payload)}\r\n\r\n",
            payload,
        )
        s.recv(1024)
        s.close()  # gone before the exec ends: its exit code is still recorded
        deadline = time.monotonic() + 10
        while call(hafend, "GET", f"/exec/{body['Id']}/json")[1]["ExitCode"] is None:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        assert call(hafend, "GET", f"/exec/{body['Id']}/json")[1]["ExitCode"] == 4
        assert call(hafend, "GET", "/_ping")[0] == 200
        assert "tick" in hafend.cli("logs", "--tail", "1", cid).stdout
    finally:
        hafend.cli("rm", "-f", cid)


def test_ambiguous_prefix_is_refused(hafend: Hafend) -> None:
    ids = [hafend.cli("create", "busybox", "true").stdout.strip() for _ in range(17)]
    try:
        firsts: dict[str, list[str]] = {}
        for cid in ids:
            firsts.setdefault(cid[0], []).append(cid)
        shared = next(v for v in firsts.values() if len(v) > 1)  # 17 ids, 16 hex digits
        status, body, _ = call(hafend, "GET", f"/containers/{shared[0][0]}/json")
        assert status == 400 and "multiple IDs found" in body["message"]
    finally:
        hafend.cli("rm", "-f", *ids)


def test_a_bad_context_manifest_or_session_is_refused_by_name(hafend: Hafend) -> None:
    status, body, _ = call(hafend, "POST", "/hafen/build/context", {"Key": "k", "Entries": [
        ["a", "f", 420, 3, 1, 1, 7, ""], ["b", "q", 420, 3, 1, 1, 7, ""]]})  # fmt: skip
    assert status == 400 and "bad path or kind" in body["message"] and "'q'" in body["message"]
    reply = post_raw(hafend, "/v1.45/hafen/build/context", b'{"Key')
    assert reply.startswith(b"HTTP/1.1 400") and b"invalid JSON in the context manifest" in reply
    reply = post_raw(hafend, "/v1.45/build", b"\0" * 1024, "X-Hafen-Context-Session: 00ff\r\n")
    assert reply.startswith(b"HTTP/1.1 404") and b"unknown or expired" in reply
