"""The real docker CLI (client only) against hafend, with API version negotiation."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import Hafend

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")


def docker(
    d: Hafend, tmp: Path, *args: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "DOCKER_CONFIG": str(tmp / "docker-config"), "DOCKER_CLI_HINTS": "false"}
    env.pop("DOCKER_API_VERSION", None)
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=60, env=env)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} exited {result.returncode}: {result.stderr}")
    return result


def test_docker_version_negotiates_the_api(hafend: Hafend, tmp_path: Path) -> None:
    out = docker(hafend, tmp_path, "version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    assert out == "1.45"


def test_docker_run_rm_prints_output(hafend: Hafend, tmp_path: Path) -> None:
    result = docker(hafend, tmp_path, "run", "--rm", "busybox", "echo", "hi")
    assert result.stdout == "hi\n"


def test_docker_run_exit_code_and_stderr(hafend: Hafend, tmp_path: Path) -> None:
    result = docker(
        hafend, tmp_path, "run", "--rm", "busybox", "sh", "-c", "echo oops >&2; exit 3", check=False
    )
    assert result.returncode == 3
    assert result.stderr == "oops\n"


@pytest.mark.parametrize("flags", [(), ("-i",), ("-t",)], ids=["plain", "stdin", "tty"])
def test_docker_run_rm_of_a_missing_command_exits_127_and_removes_the_container(
    hafend: Hafend, tmp_path: Path, flags: tuple[str, ...]
) -> None:
    name = f"missing-cmd-{len(flags)}-{flags[0][1] if flags else 'p'}"
    result = docker(
        hafend, tmp_path, "run", "--rm", "--name", name, *flags, "busybox", "/nonexistent",
        check=False,
    )  # fmt: skip
    assert result.returncode == 127
    assert '"/nonexistent"' in result.stderr and "no such file or directory" in result.stderr
    listed = docker(hafend, tmp_path, "ps", "-aq", "--filter", f"name=^{name}$").stdout
    assert listed.strip() == ""


def test_docker_detached_ps_logs_inspect_rm(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(
        hafend,
        tmp_path,
        "run",
        "-d",
        "--name",
        "dockerized",
        "busybox",
        "sh",
        "-c",
        "echo ready; sleep 1000",
    ).stdout.strip()
    assert len(cid) == 64
    ps = docker(hafend, tmp_path, "ps", "-a").stdout
    assert "dockerized" in ps and cid[:12] in ps and "Up " in ps
    for _ in range(50):
        if docker(hafend, tmp_path, "logs", "dockerized").stdout == "ready\n":
            break
    assert docker(hafend, tmp_path, "logs", "dockerized").stdout == "ready\n"
    info = json.loads(docker(hafend, tmp_path, "inspect", "dockerized").stdout)[0]
    assert info["Id"] == cid and info["State"]["Running"] is True and info["Name"] == "/dockerized"
    fmt = docker(
        hafend, tmp_path, "inspect", "-f", "{{.State.Status}} {{.Config.Image}}", cid
    ).stdout
    assert fmt.strip() == "running busybox"
    docker(hafend, tmp_path, "rm", "-f", "dockerized")
    assert "dockerized" not in docker(hafend, tmp_path, "ps", "-a").stdout


def test_docker_images_lists_busybox(hafend: Hafend, tmp_path: Path) -> None:
    out = docker(hafend, tmp_path, "images").stdout
    assert out.splitlines()[0].split()[:2] == ["REPOSITORY", "TAG"]
    assert any(line.split()[:2] == ["busybox", "latest"] for line in out.splitlines()[1:])
    image = json.loads(docker(hafend, tmp_path, "image", "inspect", "busybox").stdout)[0]
    assert image["Config"]["Cmd"] == ["sh"] and image["RootFS"]["Type"] == "layers"


def test_docker_run_interactive_stdin(hafend: Hafend, tmp_path: Path) -> None:
    env = {**hafend.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")}
    result = subprocess.run(
        [DOCKER, "run", "-i", "--rm", "busybox", "wc", "-l"],
        input="a\nb\nc\n", capture_output=True, text=True, timeout=60, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3"


def test_docker_exec_flags_and_exit_codes(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "busybox", "sleep", "300").stdout.strip()
    try:
        r = docker(
            hafend, tmp_path, "exec", cid, "sh", "-c", "echo o; echo e >&2; exit 3", check=False
        )
        assert (r.returncode, r.stdout, r.stderr) == (3, "o\n", "e\n")
        r = subprocess.run(
            [DOCKER, "exec", "-i", "-u", "nobody", "-w", "/tmp", "-e", "K=v", cid,
             "sh", "-c", "read x; echo $x $K; id -u; pwd"],
            input="in\n", capture_output=True, text=True, timeout=60,
            env={**hafend.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")},
        )  # fmt: skip
        assert r.stdout.split() == ["in", "v", "65534", "/tmp"]
        r = docker(hafend, tmp_path, "exec", cid, "nosuch", check=False)
        assert r.returncode == 126 and "nosuch" in r.stdout + r.stderr
        docker(hafend, tmp_path, "exec", "-d", cid, "sh", "-c", "echo x > /tmp/d")
        inner = f"stty rows 20 cols 70; {DOCKER} exec -it {cid} stty size"
        r = subprocess.run(
            ["script", "-eqc", inner, "/dev/null"], capture_output=True, text=True, timeout=60,
            env={**hafend.env, "DOCKER_CONFIG": str(tmp_path / "docker-config")},
        )  # fmt: skip
        assert "20 70" in r.stdout
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid, check=False)


def test_docker_events_since_until_filter_format(hafend: Hafend, tmp_path: Path) -> None:
    import time

    since = f"{time.time():.3f}"
    docker(hafend, tmp_path, "run", "--rm", "--name", "dk-ev", "busybox", "true")
    until = f"{time.time() + 0.3:.3f}"
    out = docker(
        hafend, tmp_path, "events", "--since", since, "--until", until,
        "--filter", "container=dk-ev", "--format", "{{.Type}} {{.Action}} {{.Actor.Attributes.name}}",
    ).stdout.splitlines()  # fmt: skip
    assert out == [
        "container create dk-ev",
        "container attach dk-ev",
        "container start dk-ev",
        "container die dk-ev",
        "container destroy dk-ev",
    ]


def test_docker_cp_both_ways(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "busybox", "sleep", "300").stdout.strip()
    try:
        (tmp_path / "in.txt").write_text("payload\n")
        docker(hafend, tmp_path, "cp", str(tmp_path / "in.txt"), f"{cid}:/tmp/renamed.txt")
        assert (
            docker(hafend, tmp_path, "exec", cid, "cat", "/tmp/renamed.txt").stdout == "payload\n"
        )
        docker(hafend, tmp_path, "cp", f"{cid}:/tmp/renamed.txt", str(tmp_path / "out.txt"))
        assert (tmp_path / "out.txt").read_text() == "payload\n"
        r = docker(hafend, tmp_path, "cp", f"{cid}:/missing", str(tmp_path), check=False)
        assert r.returncode == 1
        assert "Could not find the file /missing in container" in r.stderr
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid, check=False)


def test_docker_lifecycle_verbs(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "--name", "dk-life", "--restart", "on-failure:1",
                 "busybox", "sh", "-c", "echo started; sleep 300").stdout.strip()  # fmt: skip
    try:
        docker(hafend, tmp_path, "rename", "dk-life", "dk-renamed")
        docker(hafend, tmp_path, "restart", "-t", "0", "dk-renamed")
        assert docker(hafend, tmp_path, "inspect", "-f", "{{.State.Running}} {{.Name}}",
                      cid).stdout.strip() == "true /dk-renamed"  # fmt: skip
        logs = docker(hafend, tmp_path, "logs", "-t", "--tail", "1", "dk-renamed").stdout
        assert logs.endswith("started\n") and logs.split()[0].endswith("Z")
        rows = docker(hafend, tmp_path, "ps", "--filter", "name=dk-renamed", "--format",
                      "{{json .}}").stdout.splitlines()  # fmt: skip
        assert json.loads(rows[0])["Names"] == "dk-renamed"
        docker(hafend, tmp_path, "stop", "-t", "0", "dk-renamed")
        assert docker(hafend, tmp_path, "wait", "dk-renamed").stdout.strip() == "137"
        out = docker(hafend, tmp_path, "container", "prune", "-f").stdout
        assert cid in out
        assert "TYPE" in docker(hafend, tmp_path, "system", "df").stdout
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid, check=False)
