"""The Engine API over the real unix socket: versioned and bare paths, Docker's JSON shapes."""

from __future__ import annotations

import http.client
import json
import socket
from typing import Any

from tests.conftest import Hafend


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str) -> None:
        super().__init__("localhost", timeout=30)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.connect(self.unix_path)
        self.sock = sock


def call(d: Hafend, method: str, path: str, body: Any = None) -> tuple[int, Any, dict[str, str]]:
    conn = UnixHTTPConnection(str(d.socket))
    try:
        payload = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if payload is not None else {}
        conn.request(method, path, body=payload, headers=headers)
        response = conn.getresponse()
        raw = response.read()
        data = json.loads(raw) if raw and "json" in response.getheader("Content-Type", "") else raw
        return response.status, data, dict(response.getheaders())
    finally:
        conn.close()


def test_ping_answers_ok_with_api_version_headers(hafend: Hafend) -> None:
    status, body, headers = call(hafend, "GET", "/_ping")
    assert status == 200 and body == b"OK"
    assert headers["Api-Version"] == "1.45"
    assert call(hafend, "HEAD", "/v1.41/_ping")[0] == 200


def test_paths_work_with_and_without_a_version_prefix(hafend: Hafend) -> None:
    bare = call(hafend, "GET", "/version")[1]
    versioned = call(hafend, "GET", "/v1.43/version")[1]
    assert bare["ApiVersion"] == versioned["ApiVersion"] == "1.45"
    assert bare["MinAPIVersion"] == "1.24"
    assert bare["Os"] == "linux"


def test_api_version_outside_the_supported_range_is_refused(hafend: Hafend) -> None:
    status, body, _ = call(hafend, "GET", "/v1.99/version")
    assert status == 400
    assert "1.99" in body["message"]
    status, body, _ = call(hafend, "GET", "/v1.12/version")
    assert status == 400


def test_info_counts_containers_and_images(hafend: Hafend) -> None:
    hafend.cli("run", "--name", "api-info", "busybox", "true")
    try:
        info = call(hafend, "GET", "/info")[1]
        assert info["Containers"] >= 1 and info["ContainersStopped"] >= 1
        assert info["Images"] >= 1
        assert info["Driver"] in ("overlay2", "vfs")
        assert info["DockerRootDir"] == str(hafend.data_root)
    finally:
        hafend.cli("rm", "-f", "api-info")


def test_create_start_wait_inspect_delete_through_the_api(hafend: Hafend) -> None:
    status, created, _ = call(
        hafend,
        "POST",
        "/v1.45/containers/create?name=api-flow",
        {"Image": "busybox", "Cmd": ["sh", "-c", "echo out; exit 4"]},
    )
    assert status == 201, created
    cid = created["Id"]
    assert len(cid) == 64 and created["Warnings"] == []
    assert call(hafend, "POST", f"/containers/{cid}/start")[0] == 204
    status, waited, _ = call(hafend, "POST", f"/containers/{cid}/wait")
    assert status == 200 and waited["StatusCode"] == 4
    inspected = call(hafend, "GET", "/containers/api-flow/json")[1]
    assert inspected["Id"] == cid and inspected["Name"] == "/api-flow"
    assert inspected["State"]["Status"] == "exited" and inspected["State"]["ExitCode"] == 4
    listed = call(hafend, "GET", "/containers/json?all=1")[1]
    assert any(c["Id"] == cid and c["Names"] == ["/api-flow"] for c in listed)
    assert not any(c["Id"] == cid for c in call(hafend, "GET", "/containers/json")[1])
    status, logs, _ = call(hafend, "GET", f"/containers/{cid}/logs?stdout=1")
    assert status == 200 and logs == b"\x01\x00\x00\x00\x00\x00\x00\x04out\n"
    assert call(hafend, "DELETE", f"/containers/{cid}")[0] == 204
    status, body, _ = call(hafend, "GET", f"/containers/{cid}/json")
    assert status == 404 and "No such container" in body["message"]


def test_a_wait_whose_client_left_ends_quietly(hafend: Hafend) -> None:
    # docker run interrupted while it waits: the exit has nobody to go to, and that is
    # no error of the daemon's (it used to log a traceback per abandoned wait)
    status, created, _ = call(
        hafend,
        "POST",
        "/containers/create?name=api-left",
        {"Image": "busybox", "Cmd": ["sleep", "1"]},
    )
    assert status == 201, created
    try:
        before = hafend.log_path.read_text()
        conn = UnixHTTPConnection(str(hafend.socket))
        conn.request("POST", "/containers/api-left/wait?condition=next-exit")
        assert conn.getresponse().status == 200  # headers only, until the exit
        conn.close()
        assert call(hafend, "POST", "/containers/api-left/start")[0] == 204
        assert call(hafend, "POST", "/containers/api-left/wait")[1]["StatusCode"] == 0
        assert call(hafend, "GET", "/_ping")[0] == 200
        logged = hafend.log_path.read_text()[len(before) :]
        assert "Error handling request" not in logged and "Traceback" not in logged, logged
    finally:
        call(hafend, "DELETE", "/containers/api-left?force=1")


def test_images_list_inspect_and_tag_through_the_api(hafend: Hafend) -> None:
    images = call(hafend, "GET", "/images/json")[1]
    busybox = next(i for i in images if "busybox:latest" in i["RepoTags"])
    assert busybox["Id"].startswith("sha256:") and busybox["Size"] > 0
    inspected = call(hafend, "GET", "/images/busybox/json")[1]
    assert inspected["Id"] == busybox["Id"]
    assert inspected["Config"]["Cmd"] == ["sh"]
    assert inspected["RootFS"]["Type"] == "layers" and len(inspected["RootFS"]["Layers"]) == 1
    assert call(hafend, "POST", "/images/busybox/tag?repo=api/tagged&tag=v1")[0] == 201
    assert call(hafend, "GET", "/images/api/tagged:v1/json")[1]["Id"] == busybox["Id"]
    status, deleted, _ = call(hafend, "DELETE", "/images/api/tagged:v1")
    assert status == 200 and deleted == [{"Untagged": "api/tagged:v1"}]
    status, body, _ = call(hafend, "GET", "/images/no-such-image/json")
    assert status == 404 and body["message"] == "No such image: no-such-image:latest"


def test_malformed_json_body_is_a_clear_400(hafend: Hafend) -> None:
    conn = UnixHTTPConnection(str(hafend.socket))
    conn.request(
        "POST",
        "/containers/create",
        body=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    assert response.status == 400
    assert "JSON" in body["message"] or "json" in body["message"]


def test_concurrent_creates_of_one_name_give_one_container_and_conflicts(
    hafend: Hafend,
) -> None:
    # the record's name is UNIQUE: a race between two creates must not end in a 500
    from concurrent.futures import ThreadPoolExecutor

    hafend.bootstrap()
    body = {"Image": "busybox", "Cmd": ["true"]}
    with ThreadPoolExecutor(6) as pool:
        results = list(
            pool.map(
                lambda _: call(hafend, "POST", "/containers/create?name=racer", body), range(6)
            )
        )
    statuses = sorted(status for status, _, _ in results)
    assert statuses == [201, 409, 409, 409, 409, 409], results
    winner = next(payload["Id"] for status, payload, _ in results if status == 201)
    for status, payload, _ in results:
        if status == 409:
            assert '"/racer" is already in use by container' in payload["message"]
    assert call(hafend, "DELETE", f"/containers/{winner}")[0] == 204
