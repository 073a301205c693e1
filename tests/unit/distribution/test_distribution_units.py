"""Pure logic of the registry client: challenges, credentials, manifests, platforms, hosts."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from hafen.distribution.auth import parse_challenges
from hafen.distribution.credentials import (
    DOCKER_HUB_KEY,
    Credentials,
    CredentialStore,
    decode_auth_header,
    encode_auth_header,
    registry_key,
)
from hafen.distribution.errors import registry_message
from hafen.distribution.hosts import RegistryConfig, RegistryHosts
from hafen.distribution.manifests import (
    OCI_INDEX,
    Platform,
    parse_index,
    parse_manifest,
    parse_platform,
    select_platform,
    sniff_media_type,
)
from hafen.errors import InvalidArgument, InvalidConfig, NotFound

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64


def test_bearer_challenge_with_quoted_commas() -> None:
    header = 'Bearer realm="https://auth.docker.io/token",service="registry.docker.io",scope="repository:library/busybox:pull,push"'
    [challenge] = parse_challenges(header)
    assert challenge.scheme == "bearer"
    assert challenge.params == {
        "realm": "https://auth.docker.io/token",
        "service": "registry.docker.io",
        "scope": "repository:library/busybox:pull,push",
    }


def test_basic_challenge_and_several_schemes() -> None:
    challenges = parse_challenges('Basic realm="Registry Realm", Bearer realm="http://t/token"')
    assert [c.scheme for c in challenges] == ["basic", "bearer"]
    assert challenges[1].params["realm"] == "http://t/token"


def test_registry_key_spells_docker_hub_as_docker_does() -> None:
    assert registry_key("docker.io") == DOCKER_HUB_KEY
    assert registry_key("index.docker.io") == DOCKER_HUB_KEY
    assert registry_key("https://localhost:5000/v2/") == "localhost:5000"


def test_config_json_round_trip_and_compatible_auth(tmp_path: Path) -> None:
    store = CredentialStore(tmp_path)
    store.store("localhost:5000", Credentials("user", "pa:ss"))
    data = json.loads((tmp_path / "config.json").read_text())
    assert base64.b64decode(data["auths"]["localhost:5000"]["auth"]) == b"user:pa:ss"
    assert (tmp_path / "config.json").stat().st_mode & 0o777 == 0o600
    assert store.get("http://localhost:5000") == Credentials("user", "pa:ss")
    assert store.get("other:1").empty
    assert store.erase("localhost:5000")
    assert store.get("localhost:5000").empty
    assert not store.erase("localhost:5000")


def test_config_json_keeps_unknown_keys(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"psFormat": "x", "auths": {}}))
    CredentialStore(tmp_path).store("r:1", Credentials("a", "b"))
    assert json.loads((tmp_path / "config.json").read_text())["psFormat"] == "x"


def test_bad_config_json_names_the_file(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text("{nope")
    with pytest.raises(InvalidConfig, match=r"config\.json: invalid JSON"):
        CredentialStore(tmp_path).get("r:1")
    (tmp_path / "config.json").write_text(json.dumps({"auths": {"r:1": {"auth": "bm9jb2xvbg=="}}}))
    with pytest.raises(InvalidConfig, match="must encode user:password"):
        CredentialStore(tmp_path).get("r:1")


def test_credential_helper_protocol(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "log"
    helper = tmp_path / "docker-credential-fake"
    helper.write_text(
        f'#!/bin/sh\nin=$(cat); echo "$1 $in" >> {log}\n'
        'if [ "$1" = get ]; then echo \'{"ServerURL":"x","Username":"u","Secret":"s"}\'; fi\n'
    )
    helper.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path}:/usr/bin:/bin")
    (tmp_path / "config.json").write_text(json.dumps({"credsStore": "fake"}))
    store = CredentialStore(tmp_path)
    assert store.get("reg:1") == Credentials("u", "s")
    store.store("reg:1", Credentials("u", "s"))
    lines = log.read_text().splitlines()
    assert lines[0] == "get reg:1"
    assert json.loads(lines[1].split(" ", 1)[1]) == {
        "ServerURL": "reg:1",
        "Username": "u",
        "Secret": "s",
    }
    data = json.loads((tmp_path / "config.json").read_text())
    assert data["auths"]["reg:1"] == {}  # the secret is the helper's


def test_missing_helper_is_a_clear_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    (tmp_path / "config.json").write_text(json.dumps({"credHelpers": {"r:1": "nothere"}}))
    with pytest.raises(Exception, match="docker-credential-nothere is not installed"):
        CredentialStore(tmp_path).get("r:1")


def test_x_registry_auth_round_trip() -> None:
    header = encode_auth_header(Credentials("u", "p"), "r:1")
    assert decode_auth_header(header) == Credentials("u", "p")
    # docker CLI's padding-less URL-safe base64, and standard base64 both decode
    assert decode_auth_header(
        base64.b64encode(b'{"username":"a","password":"b"}').decode()
    ) == Credentials("a", "b")
    with pytest.raises(InvalidConfig):
        decode_auth_header("!!!")


def _manifest(layer_type: str = "application/vnd.oci.image.layer.v1.tar+gzip") -> bytes:
    return json.dumps({
        "schemaVersion": 2,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": D1, "size": 10},
        "layers": [{"mediaType": layer_type, "digest": D2, "size": 20}],
    }).encode()  # fmt: skip


def test_oci_manifest_without_media_type_is_sniffed() -> None:
    data = _manifest()
    media_type = sniff_media_type(data, None)
    manifest = parse_manifest(data, media_type)
    assert manifest.config.digest == D1 and manifest.layers[0].size == 20


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m.update(schemaVersion=1), "schemaVersion"),
        (lambda m: m["layers"][0].update(digest="md5:abc"), r"layers\[0\]: unsupported digest"),
        (lambda m: m["layers"][0].update(size=-1), "size must be"),
        (lambda m: m["config"].update(mediaType="text/plain"), "not an image config"),
        (lambda m: m.update(layers="x"), "layers must be a list"),
    ],
)
def test_bad_manifests_name_the_field(mutate: object, message: str) -> None:
    doc = json.loads(_manifest())
    mutate(doc)  # type: ignore[operator]
    with pytest.raises(InvalidArgument, match=message):
        parse_manifest(json.dumps(doc).encode(), "application/vnd.oci.image.manifest.v1+json")


def test_schema1_is_refused_with_a_reason() -> None:
    with pytest.raises(InvalidArgument, match="schema 1"):
        sniff_media_type(json.dumps({"schemaVersion": 1, "fsLayers": []}).encode(), None)


def _index(*platforms: tuple[str, str, str | None]) -> bytes:
    return json.dumps({
        "schemaVersion": 2, "mediaType": OCI_INDEX,
        "manifests": [
            {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "sha256:" + f"{i:064x}",
             "size": 1, "platform": {"os": o, "architecture": a, **({"variant": v} if v else {})}}
            for i, (o, a, v) in enumerate(platforms)
        ],
    }).encode()  # fmt: skip


def test_platform_selection() -> None:
    index = parse_index(
        _index(
            ("linux", "arm", "v6"),
            ("linux", "arm", "v7"),
            ("linux", "amd64", None),
            ("linux", "arm64", "v8"),
            ("windows", "amd64", None),
        )
    )
    assert select_platform(index, Platform("linux", "amd64")).digest.endswith("2")
    assert select_platform(index, Platform("linux", "arm", "v7")).digest.endswith("1")
    assert select_platform(index, Platform("linux", "arm", "v8")).digest.endswith("1")
    assert select_platform(index, Platform("linux", "arm64")).digest.endswith("3")
    with pytest.raises(NotFound, match="no matching manifest for linux/s390x"):
        select_platform(index, Platform("linux", "s390x"))


def test_parse_platform() -> None:
    assert parse_platform("linux/x86_64") == Platform("linux", "amd64")
    assert parse_platform("linux/arm/v7") == Platform("linux", "arm", "v7")
    with pytest.raises(InvalidArgument, match="os/architecture"):
        parse_platform("amd64")


def test_plain_http_only_for_loopback_and_listed_registries() -> None:
    hosts = RegistryHosts(RegistryConfig(insecure_registries=["reg.local:5000", "10.1.0.0/16"]))
    assert hosts.allows_plain_http("127.0.0.1:5000")
    assert hosts.allows_plain_http("localhost")
    assert hosts.allows_plain_http("[::1]:5000")
    assert hosts.allows_plain_http("reg.local:5000")
    assert hosts.allows_plain_http("10.1.2.3:80")
    assert not hosts.allows_plain_http("reg.local:5001")
    assert not hosts.allows_plain_http("example.com")
    [endpoint] = hosts.endpoints("example.com")
    assert endpoint.base_url == "https://example.com" and endpoint.verify_tls
    [endpoint] = hosts.endpoints("127.0.0.1:5000")
    assert endpoint.scheme == "https" and not endpoint.verify_tls
    assert hosts.fallback(endpoint) is not None
    assert hosts.endpoints("127.0.0.1:5000")[0].scheme == "http"  # remembered
    assert hosts.fallback(hosts.endpoints("example.com")[0]) is None


def test_mirrors_serve_docker_hub_pulls_only() -> None:
    hosts = RegistryHosts(RegistryConfig(registry_mirrors=["https://mirror.example:5000/"]))
    pull = hosts.endpoints("docker.io")
    assert [e.base_url for e in pull] == [
        "https://mirror.example:5000",
        "https://registry-1.docker.io",
    ]
    assert [e.base_url for e in hosts.endpoints("docker.io", pull=False)] == [
        "https://registry-1.docker.io"
    ]
    assert len(hosts.endpoints("quay.io")) == 1
    plain = RegistryHosts(
        RegistryConfig(registry_mirrors=["http://mirror.example", "http://127.0.0.1:5000"])
    )
    assert [e.base_url for e in plain.endpoints("docker.io")] == [
        "http://127.0.0.1:5000",
        "https://registry-1.docker.io",
    ]  # a plain-HTTP mirror must be loopback or listed insecure
    with pytest.raises(InvalidConfig, match="must be a URL"):
        RegistryConfig(registry_mirrors=["mirror.example"])


def test_registry_error_bodies_read_as_docker_prints_them() -> None:
    body = b'{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}'
    assert registry_message(401, body) == "unauthorized: authentication required"
    assert (
        registry_message(502, b"<html>bad gateway</html>") == "status 502: <html>bad gateway</html>"
    )


def test_registry_config_header_of_post_build() -> None:
    """X-Registry-Config: every registry's credentials, keyed as config.json keys them;
    ``auth`` (base64 user:password) counts; empty entries are dropped; junk is refused."""
    import base64 as b64
    import json as js

    from hafen.distribution.credentials import decode_registry_config

    value = b64.urlsafe_b64encode(js.dumps({
        "https://index.docker.io/v1/": {"username": "hub", "password": "pw"},
        "localhost:5000": {"auth": b64.b64encode(b"me:secret").decode()},
        "empty.example": {},
    }).encode()).decode()  # fmt: skip
    assert decode_registry_config(value) == {
        "https://index.docker.io/v1/": Credentials("hub", "pw"),
        "localhost:5000": Credentials("me", "secret"),
    }
    assert decode_registry_config("") == {}
    assert decode_registry_config(b64.b64encode(b"{}").decode()) == {}
    with pytest.raises(InvalidConfig, match="X-Registry-Config"):
        decode_registry_config("not base64 json!")


def test_tag_list_pages_follow_the_link_header() -> None:
    from hafen.distribution.client import _next_link

    assert _next_link('</v2/a/tags/list?n=2&last=b>; rel="next"') == "/v2/a/tags/list?n=2&last=b"
    assert _next_link('<https://r/x>; rel="prev", <https://r/y>; rel="next"') == "https://r/y"
    assert _next_link("") is None
    assert _next_link('</v2/a/tags/list>; rel="prev"') is None
