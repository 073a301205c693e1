"""``POST /build`` options beyond the Dockerfile, against a real hafend: ``--secret``
mounts (a tmpfs file for one RUN only: not in a layer, not on disk, not in the cache
key), Docker's rm/forcerm rules for intermediate containers, RUN container resources
(memory, shm size, extra hosts) and the parameters hafen refuses instead of ignoring."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import HAFEN, Hafend
from tests.integration.test_build import ctx_dir, run_in

docker = pytest.importorskip("docker")


@pytest.fixture(autouse=True, scope="module")
def _leave_only_busybox(hafend: Hafend) -> Iterator[None]:
    """The session daemon is shared: this module's images and build cache go at its end."""
    yield
    keep = hafend.cli("images", "-q", "--no-trunc", "busybox").stdout.split()
    ids = hafend.cli("images", "-a", "-q", "--no-trunc").stdout.split()
    for image_id in ids:
        if image_id not in keep:
            hafend.cli("rmi", "-f", image_id, check=False)
    hafend.cli("builder", "prune", "-f", check=False)


@pytest.fixture
def api(hafend: Hafend) -> Iterator[Any]:
    client = docker.APIClient(base_url=hafend.host, timeout=120)
    try:
        yield client
    finally:
        client.close()


def _running_ids(output: str) -> list[str]:
    return [line.split()[-1] for line in output.splitlines() if "---> Running in" in line]


def test_secret_is_a_tmpfs_file_for_one_run_only(hafend: Hafend, tmp_path: Path) -> None:
    secret = "hafen-" + os.urandom(8).hex()
    (tmp_path / "tok").write_text(secret)
    dockerfile = (
        "FROM busybox\n"
        "RUN --mount=type=secret,id=tok,required sha256sum /run/secrets/tok > /tok.sum"
        " && grep '/run/secrets/tok tmpfs ro' /proc/mounts\n"
        "RUN --mount=type=secret,id=envtok,target=/etc/app.key,mode=0440,uid=7 "
        "stat -c '%a %u' /etc/app.key > /key.stat && wc -c < /etc/app.key > /key.len\n"
        "RUN ls /run/secrets /etc/app.key > /after 2>&1 || true\n"
    )
    ctx = ctx_dir(tmp_path / "c", dockerfile)
    env = {**hafend.env, "APP_KEY": "k" * 33}
    out = subprocess.run(
        [HAFEN, "-H", hafend.host, "build", "--progress", "plain", "-t", "secret-test",
         "--secret", f"id=tok,src={tmp_path / 'tok'}", "--secret", "id=envtok,env=APP_KEY",
         str(ctx)], env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert "Successfully tagged secret-test:latest" in out
    want = hashlib.sha256(secret.encode()).hexdigest()
    shown = run_in(hafend, "secret-test", "cat /tok.sum /key.stat /key.len /after")
    assert shown.startswith(want) and "440 7\n33\n" in shown
    assert "No such file or directory" in shown  # later steps see neither mount
    assert (
        run_in(hafend, "secret-test", "ls /run 2>&1; ls /etc/app.key 2>&1; true").count("No such")
        == 2
    )
    # the secret's bytes are nowhere in the daemon's data: not in a layer, config or log
    found = subprocess.run(["grep", "-rlF", secret, str(hafend.data_root)], capture_output=True)
    assert found.returncode == 1, found.stdout
    # nor in the cache key: another value still hits the cache
    (tmp_path / "tok").write_text("another")
    again = subprocess.run(
        [HAFEN, "-H", hafend.host, "build", "--progress", "plain", "--secret",
         f"id=tok,src={tmp_path / 'tok'}", "--secret", "id=envtok,env=APP_KEY", str(ctx)],
        env=env, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    assert again.count("Using cache") == 3


def test_missing_or_bad_secrets_are_refused(hafend: Hafend, tmp_path: Path) -> None:
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nRUN --mount=type=secret,id=need,required true\n")
    result = hafend.cli("build", str(ctx), check=False)
    assert result.returncode != 0
    assert "secret need not found: pass it with --secret id=need,src=PATH" in result.stderr
    result = hafend.cli("build", "--secret", "src=/etc/hostname", str(ctx), check=False)
    assert result.returncode != 0 and "invalid secret" in result.stderr
    result = hafend.cli("build", "--secret", "id=need,src=/nonexistent/x", str(ctx), check=False)
    assert result.returncode != 0 and "cannot read /nonexistent/x" in result.stderr
    optional = ctx_dir(tmp_path / "o", "FROM busybox\nRUN --mount=type=secret,id=opt "
                       "test ! -e /run/secrets/opt\n")  # fmt: skip
    hafend.cli("build", "-q", str(optional))  # an optional secret not given: no mount


def test_rm_and_forcerm_decide_which_step_containers_stay(hafend: Hafend, tmp_path: Path) -> None:
    def exists(container: str) -> bool:
        return hafend.cli("container", "inspect", container, check=False).returncode == 0

    ok = ctx_dir(tmp_path / "ok", "FROM busybox\nRUN echo kept > /k\n")
    out = hafend.cli("build", "--no-cache", "--rm=false", "--progress", "plain", str(ok)).stdout
    [kept] = _running_ids(out)
    assert "Removing intermediate container" not in out and exists(kept)
    out = hafend.cli("build", "--no-cache", "--progress", "plain", str(ok)).stdout
    [removed] = _running_ids(out)
    assert "Removing intermediate container" in out and not exists(removed)
    failing = ctx_dir(tmp_path / "fail", "FROM busybox\nRUN exit 4\n")
    result = hafend.cli("build", "--progress", "plain", str(failing), check=False)
    [failed] = _running_ids(result.stdout)
    assert result.returncode == 4 and exists(failed)  # Docker keeps a failed step's container
    result = hafend.cli("build", "--force-rm", "--progress", "plain", str(failing), check=False)
    [forced] = _running_ids(result.stdout)
    assert result.returncode == 4 and not exists(forced)
    hafend.cli("rm", "-f", kept, failed)


def test_resources_apply_to_run_containers(api: Any, tmp_path: Path) -> None:
    ctx = ctx_dir(
        tmp_path / "c",
        "FROM busybox\nRUN grep buildhost /etc/hosts && df -k /dev/shm | tail -1 && "
        "(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || "
        "cat /sys/fs/cgroup/memory.max)\n",
    )
    lines = [
        m.get("stream", "") + m.get("error", "")
        for m in api.build(path=str(ctx), decode=True, nocache=True, shmsize=16 * 1024 * 1024,
                           container_limits={"memory": 96 * 1024 * 1024},
                           extra_hosts={"buildhost": "10.9.8.7"})
    ]  # fmt: skip
    text = "".join(lines)
    assert "10.9.8.7\tbuildhost" in text
    assert " 16384 " in text  # /dev/shm of 16 MiB
    assert str(96 * 1024 * 1024) in text


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"platform": "linux/s390x"}, "cannot be built here"),
        ({"platform": "nonsense"}, "invalid platform"),
        ({"squash": "1"}, "squashing build layers"),
        ({"outputs": "type=local,dest=out"}, "BuildKit feature"),
        ({"version": "3"}, "unknown builder version"),
        ({"extrahosts": "nocolon"}, "invalid extra host"),
        ({"shmsize": "-1"}, "shmsize: must not be negative"),
        ({"cgroupparent": "/custom"}, "cgroupparent is not supported"),
        ({"ulimits": '[{"Name":"nofile","Soft":1,"Hard":2}]'}, "ulimits is not supported"),
        ({"memory": "lots"}, "is not an integer"),
    ],
)
def test_unsupported_or_bad_parameters_are_refused(
    api: Any, tmp_path: Path, params: dict[str, str], message: str
) -> None:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        info = tarfile.TarInfo("Dockerfile")
        info.size = 13
        archive.addfile(info, io.BytesIO(b"FROM busybox\n"))
    response = api.post(api._url("/build"), params=params, data=buf.getvalue(),
                        headers={"Content-Type": "application/x-tar"})  # fmt: skip
    assert response.status_code == 400, response.text
    assert message in json.loads(response.text)["message"]


def test_zero_values_mean_not_set(api: Any, tmp_path: Path) -> None:
    """Debian's docker 20.10 CLI sends shmsize=0, memory=0, cpushares=0… on every build."""
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nRUN df -k /dev/shm | tail -1\n")
    params = {"shmsize": "0", "memory": "0", "memswap": "0", "cpushares": "0", "cpuquota": "0",
              "cpuperiod": "0", "cpusetcpus": "", "extrahosts": "", "nocache": "1",
              "cgroupparent": "", "cpusetmems": "", "ulimits": "null"}  # fmt: skip
    text = "".join(m.get("stream", "") + m.get("error", "")
                   for m in api._stream_helper(api.post(api._url("/build"), params=params,
                        data=_tar_of(ctx), headers={"Content-Type": "application/x-tar"},
                        stream=True), decode=True))  # fmt: skip
    assert " 65536 " in text and "Successfully built" in text  # the default 64 MiB /dev/shm


def _tar_of(ctx: Path) -> bytes:
    import io
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as archive:
        archive.add(str(ctx / "Dockerfile"), arcname="Dockerfile")
    return buf.getvalue()


def test_platform_of_this_host_is_accepted(api: Any, tmp_path: Path) -> None:
    from hafen.distribution.manifests import host_platform

    host = host_platform()
    ctx = ctx_dir(tmp_path / "c", "FROM busybox\nENV P=1\n")
    out = list(api.build(path=str(ctx), decode=True, platform=f"linux/{host.architecture}"))
    assert any("aux" in m for m in out), out
