"""APIClient against a fake daemon: version negotiation, error mapping, streams, hijack."""

from __future__ import annotations

import json
import time

import pytest
from tests.unit.client.hafen_fake_daemon import FakeDaemon, Reply, Request

from hafen import errors
from hafen.client import STDERR, STDOUT, APIClient, DaemonUnreachable, demux, encode_frame


def test_negotiates_the_lower_of_client_and_server_api_versions(fake: FakeDaemon) -> None:
    fake.api_version = "1.43"
    fake.route("GET", "/version", Reply(200, {"Version": "x"}))
    client = APIClient(fake.host)
    assert client.version() == {"Version": "x"}
    assert client.api_version == "1.43"
    assert fake.find("GET", "/version")[0].version == "1.43"


def test_caps_the_api_version_at_the_clients_own(fake: FakeDaemon) -> None:
    fake.api_version = "1.99"
    fake.route("GET", "/info", Reply(200, {"ID": "abc"}))
    client = APIClient(fake.host)
    client.info()
    assert fake.find("GET", "/info")[0].version == "1.45"


def test_falls_back_to_1_24_when_ping_has_no_version_header(fake: FakeDaemon) -> None:
    fake.route("GET", "/_ping", Reply(200, b"OK"))
    assert APIClient(fake.host).api_version == "1.24"


def test_host_defaults_to_hafen_host_env(fake: FakeDaemon, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HAFEN_HOST", fake.host)
    assert APIClient().ping().api_version == "1.45"


@pytest.mark.parametrize(
    ("status", "cls"),
    [
        (400, errors.InvalidArgument),
        (403, errors.Forbidden),
        (404, errors.NotFound),
        (409, errors.Conflict),
        (500, errors.HafenError),
        (503, errors.Unavailable),
    ],
)
def test_maps_error_status_to_hafen_errors_with_the_daemons_message(
    fake: FakeDaemon, status: int, cls: type[errors.HafenError]
) -> None:
    fake.route("GET", r"/containers/[^/]+/json", Reply(status, {"message": "No such container: x"}))
    with pytest.raises(cls) as info:
        APIClient(fake.host).inspect_container("x")
    assert str(info.value) == "No such container: x"
    assert info.value.status == status


def test_error_without_json_body_uses_the_text(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/[^/]+/start", Reply(500, b"boom\n"))
    with pytest.raises(errors.HafenError, match=r"^boom$"):
        APIClient(fake.host).start("c1")


def test_not_modified_is_not_an_error(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/[^/]+/start", Reply(304))
    APIClient(fake.host).start("c1")


def test_unreachable_socket_raises_unavailable_with_docker_wording() -> None:
    client = APIClient("unix:///nonexistent/hafen.sock")
    with pytest.raises(DaemonUnreachable) as info:
        client.ping()
    assert isinstance(info.value, errors.Unavailable)
    assert str(info.value) == (
        "Cannot connect to the hafen daemon at unix:///nonexistent/hafen.sock. "
        "Is the daemon running?"
    )


def test_create_sends_config_and_name(fake: FakeDaemon) -> None:
    fake.route("POST", "/containers/create", Reply(201, {"Id": "abc123", "Warnings": ["careful"]}))
    created = APIClient(fake.host).create_container({"Image": "busybox"}, name="web")
    assert created.id == "abc123" and created.warnings == ["careful"]
    req = fake.find("POST", "/containers/create")[0]
    assert req.query == {"name": "web"}
    assert req.body == {"Image": "busybox"}


def test_list_encodes_flags_and_filters(fake: FakeDaemon) -> None:
    fake.route("GET", "/containers/json", Reply(200, [{"Id": "a"}]))
    result = APIClient(fake.host).containers(all=True, limit=3, filters={"status": ["exited"]})
    assert result == [{"Id": "a"}]
    query = fake.find("GET", "/containers/json")[0].query
    assert query["all"] == "1" and query["limit"] == "3"
    assert json.loads(query["filters"]) == {"status": ["exited"]}


def test_path_segments_are_quoted(fake: FakeDaemon) -> None:
    fake.route("GET", r"/images/(.+)/json", lambda r: Reply(200, {"Id": r.match.group(1)}))  # type: ignore[union-attr]
    assert APIClient(fake.host).inspect_image("busybox:latest")["Id"] == "busybox:latest"


def _chunked_logs(req: Request) -> None:
    h = req.handler
    h.send_response(200)
    h.send_header("Content-Type", "application/vnd.docker.multiplexed-stream")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    for frame in (encode_frame(STDOUT, b"out\n"), encode_frame(STDERR, b"err\n")):
        h.wfile.write(f"{len(frame):x}\r\n".encode() + frame + b"\r\n")
        h.wfile.flush()
        time.sleep(0.01)
    h.wfile.write(b"0\r\n\r\n")
    h.close_connection = True


def test_logs_stream_chunked_body_and_demuxes(fake: FakeDaemon) -> None:
    fake.route("GET", r"/containers/[^/]+/logs", _chunked_logs)
    with APIClient(fake.host).logs("c1", follow=True, tail="5") as stream:
        assert "multiplexed" in stream.content_type
        frames = list(demux(stream.read))
    assert frames == [(STDOUT, b"out\n"), (STDERR, b"err\n")]
    query = fake.find("GET", "/containers/c1/logs")[0].query
    assert query == {"stdout": "1", "stderr": "1", "follow": "1", "tail": "5"}


def _hijack(req: Request) -> None:
    h = req.handler
    assert req.headers.get("Upgrade") == "tcp"
    assert req.headers.get("Connection") == "Upgrade"
    h.wfile.write(
        b"HTTP/1.1 101 UPGRADED\r\nContent-Type: application/vnd.docker.multiplexed-stream\r\n"
        b"Connection: Upgrade\r\nUpgrade: tcp\r\n\r\n" + encode_frame(STDOUT, b"ready\n")
    )
    h.wfile.flush()
    data = b""
    while not data.endswith(b"\n"):
        chunk = h.connection.recv(100)
        if not chunk:
            break
        data += chunk
    h.wfile.write(encode_frame(STDOUT, b"echo:" + data))
    h.wfile.flush()
    h.close_connection = True


def test_attach_hijacks_the_connection_and_keeps_buffered_bytes(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/[^/]+/attach", _hijack)
    conn = APIClient(fake.host).attach("c1", stdin=True)
    try:
        assert conn.upgraded
        first = next(demux(conn.recv))
        assert first == (STDOUT, b"ready\n")
        conn.sendall(b"hi\n")
        conn.close_write()
        rest = list(demux(conn.recv))
    finally:
        conn.close()
    assert rest == [(STDOUT, b"echo:hi\n")]
    query = fake.find("POST", "/containers/c1/attach")[0].query
    assert query == {"stream": "1", "stdin": "1", "stdout": "1", "stderr": "1"}


def test_attach_error_status_raises_mapped_error(fake: FakeDaemon) -> None:
    fake.route(
        "POST", r"/containers/[^/]+/attach", Reply(404, {"message": "No such container: nope"})
    )
    with pytest.raises(errors.NotFound, match="No such container: nope"):
        APIClient(fake.host).attach("nope")


def test_post_stream_yields_progress_messages(fake: FakeDaemon) -> None:
    body = b'{"status":"Unpacking"}\n{"status":"Done"}\n{"aux":{"ID":"sha256:abc"}}\n'
    fake.route("POST", "/images/bootstrap", Reply(200, body, {"Content-Type": "application/json"}))
    messages = list(
        APIClient(fake.host).post_stream(
            "/images/bootstrap", {"image": "busybox", "tag": "busybox:latest"}
        )
    )
    assert messages[-1] == {"aux": {"ID": "sha256:abc"}}
    assert fake.find("POST", "/images/bootstrap")[0].query == {
        "image": "busybox",
        "tag": "busybox:latest",
    }


def _slow_wait(req: Request) -> None:
    h = req.handler
    h.send_response(200)
    h.send_header("Content-Type", "application/json")
    h.send_header("Transfer-Encoding", "chunked")
    h.end_headers()
    h.wfile.flush()  # headers first: the wait is registered
    time.sleep(0.2)
    body = json.dumps({"StatusCode": 3, "Error": None}).encode()
    h.wfile.write(f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    h.wfile.flush()
    h.close_connection = True


def test_wait_async_reports_registration_then_the_exit_status(fake: FakeDaemon) -> None:
    fake.route("POST", r"/containers/[^/]+/wait", _slow_wait)
    pending = APIClient(fake.host).wait_async("c1", "next-exit")
    assert pending.registered(timeout=5)
    result = pending.result(timeout=5)
    assert result.status_code == 3 and result.error is None
    assert fake.find("POST", "/containers/c1/wait")[0].query == {"condition": "next-exit"}


def test_remove_image_returns_untagged_and_deleted_entries(fake: FakeDaemon) -> None:
    reply = [{"Untagged": "busybox:latest"}, {"Deleted": "sha256:abc"}]
    fake.route("DELETE", r"/images/.+", Reply(200, reply))
    assert APIClient(fake.host).remove_image("busybox", force=True) == reply
    assert fake.requests[-1].query == {"force": "1"}
