"""hafen against Debian's docker-registry: push, pull and run, open, with htpasswd Basic
auth and with token auth; digests agree with what the registry says it holds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.compat.registries import PASSWORD, REGISTRY, USER, DockerRegistry
from tests.conftest import HAFEN, Hafend

pytestmark = pytest.mark.skipif(
    not Path(REGISTRY).exists(), reason="Debian's docker-registry is not installed"
)


def run_hafen(
    d: Hafend, config: Path, *args: str, input: str | None = None, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "HAFEN_CONFIG": str(config)}
    result = subprocess.run(
        [HAFEN, "-H", d.host, *args], input=input, capture_output=True, text=True, timeout=120,
        env=env,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"hafen {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def _pushed_digest(output: str, tag: str) -> str:
    match = re.search(
        rf"^{re.escape(tag)}: digest: (sha256:[0-9a-f]{{64}}) size: (\d+)$", output, re.M
    )
    assert match, output
    return match.group(1)


def _registry_digest(
    registry: DockerRegistry, path: str, tag: str, headers: dict[str, str] | None = None
) -> str:
    accept = "application/vnd.docker.distribution.manifest.v2+json"
    status, _, resp_headers = registry.get(
        f"/v2/{path}/manifests/{tag}", {"Accept": accept, **(headers or {})}
    )
    assert status == 200
    return resp_headers["Docker-Content-Digest"]


def _push_pull_run(
    hafend: Hafend, empty: Hafend, registry: DockerRegistry, config: Path, repo: str
) -> str:
    target = f"{registry.host}/{repo}:v1"
    run_hafen(hafend, config, "tag", "busybox:latest", target)
    pushed = run_hafen(hafend, config, "push", target).stdout
    assert f"The push refers to repository [{registry.host}/{repo}]" in pushed
    digest = _pushed_digest(pushed, "v1")
    pulled = run_hafen(empty, config, "pull", target).stdout
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {target}" in pulled
    out = run_hafen(empty, config, "run", "--rm", target, "echo", "pulled and running").stdout
    assert out == "pulled and running\n"
    inspect = json.loads(run_hafen(empty, config, "image", "inspect", target).stdout)[0]
    assert f"{registry.host}/{repo}@{digest}" in inspect["RepoDigests"]
    source = json.loads(run_hafen(hafend, config, "image", "inspect", "busybox").stdout)[0]
    assert inspect["Id"] == source["Id"]
    run_hafen(hafend, config, "rmi", target)
    return digest


def test_push_pull_run_against_an_open_registry(
    hafend: Hafend, empty_hafend: Hafend, open_registry: DockerRegistry, tmp_path: Path
) -> None:
    digest = _push_pull_run(hafend, empty_hafend, open_registry, tmp_path, "open/busybox")
    assert _registry_digest(open_registry, "open/busybox", "v1") == digest
    # Pulling again: up to date, nothing downloaded.
    again = run_hafen(empty_hafend, tmp_path, "pull", f"{open_registry.host}/open/busybox:v1")
    assert "Image is up to date" in again.stdout
    run_hafen(empty_hafend, tmp_path, "rmi", f"{open_registry.host}/open/busybox:v1")
    # By digest (the docker CLI sends fromImage=name&tag=sha256:...).
    by_digest = f"{open_registry.host}/open/busybox@{digest}"
    pulled = run_hafen(empty_hafend, tmp_path, "pull", by_digest).stdout
    assert f"Digest: {digest}" in pulled and pulled.rstrip().endswith(by_digest)
    listed = run_hafen(empty_hafend, tmp_path, "images", "--digests").stdout
    assert digest in listed
    run_hafen(empty_hafend, tmp_path, "rmi", by_digest)
    listed = run_hafen(empty_hafend, tmp_path, "images", "--digests").stdout
    assert f"{open_registry.host}/open/busybox" not in listed


def test_second_push_finds_layers_present_and_mounts_across_repositories(
    hafend: Hafend, open_registry: DockerRegistry, tmp_path: Path
) -> None:
    first = f"{open_registry.host}/mount/source:v1"
    run_hafen(hafend, tmp_path, "tag", "busybox", first)
    run_hafen(hafend, tmp_path, "push", first)
    again = run_hafen(hafend, tmp_path, "push", first).stdout
    assert "Layer already exists" in again
    other = f"{open_registry.host}/mount/other:v1"
    run_hafen(hafend, tmp_path, "tag", "busybox", other)
    mounted = run_hafen(hafend, tmp_path, "push", other).stdout
    assert "Mounted from " in mounted  # mount/source, or another repo known to hold it
    run_hafen(hafend, tmp_path, "rmi", first, other)


def test_basic_auth_needs_login_and_logout_forgets(
    hafend: Hafend, empty_hafend: Hafend, basic_registry: DockerRegistry, tmp_path: Path
) -> None:
    target = f"{basic_registry.host}/basic/busybox:v1"
    run_hafen(hafend, tmp_path, "tag", "busybox", target)
    refused = run_hafen(hafend, tmp_path, "push", target, check=False)
    assert refused.returncode == 1
    assert "unauthorized" in refused.stderr
    wrong = run_hafen(
        hafend, tmp_path, "login", "-u", USER, "--password-stdin", basic_registry.host,
        input="nope\n", check=False,
    )  # fmt: skip
    assert wrong.returncode != 0 and "unauthorized" in wrong.stderr.lower()
    login = run_hafen(
        hafend, tmp_path, "login", "-u", USER, "--password-stdin", basic_registry.host,
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert "Login Succeeded" in login.stdout
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auths"][basic_registry.host]["auth"]
    run_hafen(hafend, tmp_path, "rmi", target)
    _push_pull_run(hafend, empty_hafend, basic_registry, tmp_path, "basic/busybox")
    out = run_hafen(hafend, tmp_path, "logout", basic_registry.host).stdout
    assert f"Removing login credentials for {basic_registry.host}" in out
    assert basic_registry.host not in json.loads((tmp_path / "config.json").read_text())["auths"]


def test_token_auth_flow(
    hafend: Hafend, empty_hafend: Hafend, token_registry: DockerRegistry, tmp_path: Path
) -> None:
    assert token_registry.token_server is not None
    run_hafen(
        hafend, tmp_path, "login", "-u", USER, "--password-stdin", token_registry.host,
        input=PASSWORD,
    )  # fmt: skip
    _push_pull_run(hafend, empty_hafend, token_registry, tmp_path, "token/busybox")
    scopes = [s for r in token_registry.token_server.requests for s in r["scopes"]]  # type: ignore[attr-defined]
    assert "repository:token/busybox:pull,push" in scopes
    assert "repository:token/busybox:pull" in scopes


def test_credential_helper_supplies_credentials(
    hafend: Hafend, basic_registry: DockerRegistry, tmp_path: Path
) -> None:
    """A docker-credential-* helper on PATH answers ``get`` for the registry."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-hafentest"
    secret = json.dumps({"ServerURL": basic_registry.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(
        '#!/bin/sh\ncase "$1" in get) cat >/dev/null; echo \'' + secret + "';;\n"
        "store|erase) cat >/dev/null;; esac\n"
    )
    helper.chmod(0o755)
    config = tmp_path / "cfg"
    config.mkdir()
    (config / "config.json").write_text(
        json.dumps({"credHelpers": {basic_registry.host: "hafentest"}})
    )
    target = f"{basic_registry.host}/helper/busybox:v1"
    env_path = f"{bindir}:{os.environ.get('PATH', '')}"
    run_hafen(hafend, config, "tag", "busybox", target)
    result = subprocess.run(
        [HAFEN, "-H", hafend.host, "push", target], capture_output=True, text=True, timeout=120,
        env={**hafend.env, "HAFEN_CONFIG": str(config), "PATH": env_path},
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert "v1: digest: sha256:" in result.stdout
    run_hafen(hafend, config, "rmi", target)


DOCKER = shutil.which("docker") or "/usr/local/bin/docker"


def docker(
    d: Hafend, config: Path, *args: str, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "DOCKER_CONFIG": str(config), "DOCKER_CLI_HINTS": "false"}
    result = subprocess.run(
        [DOCKER, *args], input=input, capture_output=True, text=True, timeout=120, env=env
    )
    assert result.returncode == 0, f"docker {' '.join(args)}: {result.stderr}"
    return result


@pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")
def test_docker_cli_login_push_pull_through_hafend(
    hafend: Hafend, empty_hafend: Hafend, basic_registry: DockerRegistry, tmp_path: Path
) -> None:
    login = docker(
        hafend, tmp_path, "login", "-u", USER, "--password-stdin", basic_registry.host,
        input=PASSWORD,
    )  # fmt: skip
    assert "Login Succeeded" in login.stdout
    target = f"{basic_registry.host}/docker/busybox:cli"
    docker(hafend, tmp_path, "tag", "busybox", target)
    pushed = docker(hafend, tmp_path, "push", target).stdout
    digest = _pushed_digest(pushed, "cli")
    pulled = docker(empty_hafend, tmp_path, "pull", target).stdout
    assert f"Digest: {digest}" in pulled
    assert f"Status: Downloaded newer image for {target}" in pulled
    listed = docker(empty_hafend, tmp_path, "images", "--digests", "--format", "{{.Digest}}").stdout
    assert digest in listed
    assert docker(empty_hafend, tmp_path, "run", "--rm", target, "echo", "ok").stdout == "ok\n"
    docker(empty_hafend, tmp_path, "rmi", target)
    docker(hafend, tmp_path, "rmi", target)


def test_registry_mirror_serves_docker_hub_names(
    hafend: Hafend, open_registry: DockerRegistry, tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    """With registry-mirrors in daemon.json, `pull busybox` (docker.io/library/busybox)
    comes from the mirror (Docker Hub itself is unreachable here)."""
    mirror_ref = f"{open_registry.host}/library/busybox:latest"
    run_hafen(hafend, tmp_path, "tag", "busybox", mirror_ref)
    digest = _pushed_digest(run_hafen(hafend, tmp_path, "push", mirror_ref).stdout, "latest")
    run_hafen(hafend, tmp_path, "rmi", mirror_ref)
    mirrored = Hafend(tmp_path_factory.mktemp("hafend-mirror"))
    mirrored.root.mkdir(parents=True, exist_ok=True)
    (mirrored.root / "daemon.json").write_text(
        json.dumps({"registry-mirrors": [f"http://{open_registry.host}"]})
    )
    try:
        mirrored.start()
        pulled = run_hafen(mirrored, tmp_path, "pull", "busybox").stdout
        assert f"Digest: {digest}" in pulled
        assert "Status: Downloaded newer image for busybox:latest" in pulled
        ran = run_hafen(mirrored, tmp_path, "run", "--rm", "busybox", "echo", "mirrored")
        assert ran.stdout == "mirrored\n"
    finally:
        mirrored.cleanup()


def test_push_pull_over_tls(
    hafend: Hafend, empty_hafend: Hafend, tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:  # fmt: skip
    """A loopback registry speaking HTTPS (self-signed): hafen tries TLS first and uses it."""
    registry = DockerRegistry(tmp_path_factory.mktemp("registry-tls"), tls=True).start()
    try:
        # The registry speaks only TLS on its port: success means hafen used HTTPS.
        _push_pull_run(hafend, empty_hafend, registry, tmp_path, "tls/busybox")
        run_hafen(empty_hafend, tmp_path, "rmi", f"{registry.host}/tls/busybox:v1")
    finally:
        registry.stop()


def test_pull_all_tags_fetches_every_tag_of_the_repository(
    hafend: Hafend, empty_hafend: Hafend, open_registry: DockerRegistry, tmp_path: Path
) -> None:
    repo = f"{open_registry.host}/alltags/busybox"
    for tag in ("v1", "v2"):
        run_hafen(hafend, tmp_path, "tag", "busybox:latest", f"{repo}:{tag}")
    run_hafen(hafend, tmp_path, "push", "--all-tags", repo)
    refused = run_hafen(empty_hafend, tmp_path, "pull", "-a", f"{repo}:v1", check=False)
    assert refused.returncode != 0 and "tag can't be used with --all-tags" in refused.stderr
    pulled = run_hafen(empty_hafend, tmp_path, "pull", "-a", repo).stdout
    assert "v1: Pulling from alltags/busybox" in pulled
    assert "v2: Pulling from alltags/busybox" in pulled
    ids = {
        json.loads(run_hafen(empty_hafend, tmp_path, "image", "inspect", f"{repo}:{t}").stdout)[0][
            "Id"
        ]
        for t in ("v1", "v2")
    }
    assert len(ids) == 1
    if Path(DOCKER).exists():  # the docker CLI sends fromImage=<repo> with no tag for -a
        run_hafen(empty_hafend, tmp_path, "rmi", f"{repo}:v1", f"{repo}:v2")
        out = docker(empty_hafend, tmp_path, "pull", "-a", repo).stdout
        assert "v1" in out and "v2" in out
        listed = docker(empty_hafend, tmp_path, "images", "--format", "{{.Tag}}", repo).stdout
        assert sorted(listed.split()) == ["v1", "v2"]
    run_hafen(empty_hafend, tmp_path, "rmi", f"{repo}:v1", f"{repo}:v2")
    run_hafen(hafend, tmp_path, "rmi", f"{repo}:v1", f"{repo}:v2")
