"""``DOCKER_BUILDKIT=0 docker build`` against hafend: the semantics of the built images."""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Hafend

DOCKER = shutil.which("docker") or "/usr/local/bin/docker"
pytestmark = pytest.mark.skipif(not Path(DOCKER).exists(), reason="the docker CLI is not installed")


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


def docker(
    d: Hafend, tmp: Path, *args: str, check: bool = True, input: str | None = None
) -> subprocess.CompletedProcess[str]:
    env = {**d.env, "DOCKER_CONFIG": str(tmp / "docker-config"), "DOCKER_CLI_HINTS": "false",
           "DOCKER_BUILDKIT": "0"}  # fmt: skip
    env.pop("DOCKER_API_VERSION", None)
    result = subprocess.run(
        [DOCKER, *args], capture_output=True, text=True, timeout=120, env=env, input=input
    )
    if check and result.returncode != 0:
        raise AssertionError(
            f"docker {' '.join(args)} exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
        )
    return result


def make_context(root: Path, dockerfile: str, files: dict[str, str] | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "Dockerfile").write_text(dockerfile)
    for name, text in (files or {}).items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def inspect(d: Hafend, tmp: Path, ref: str) -> dict[str, Any]:
    out = docker(d, tmp, "image", "inspect", ref).stdout
    result: dict[str, Any] = json.loads(out)[0]
    return result


def run_in(d: Hafend, tmp: Path, image: str, script: str) -> str:
    return docker(d, tmp, "run", "--rm", image, "sh", "-c", script).stdout


def image_config(d: Hafend, image_id: str) -> dict[str, Any]:
    """The stored image config blob itself (history lives there)."""
    blob = d.data_root / "content" / "blobs" / "sha256" / image_id.removeprefix("sha256:")
    result: dict[str, Any] = json.loads(blob.read_text())
    return result


def test_image_config_fields_match_the_reference(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        """FROM busybox
MAINTAINER someone <a@b.c>
ENV PATH=/opt/bin:$PATH GREETING="hello world"
LABEL org.example.name="demo app" version=1
EXPOSE 80 53/udp 9000-9001
VOLUME /data /cache
VOLUME ["/json vol"]
WORKDIR /srv
WORKDIR sub
USER 1000:1000
STOPSIGNAL SIGQUIT
HEALTHCHECK --interval=5s --timeout=2s --retries=4 CMD wget -q localhost || exit 1
SHELL ["/bin/sh", "-ec"]
ONBUILD RUN echo triggered
ENTRYPOINT ["/bin/echo"]
CMD echo $GREETING
""",
    )
    docker(hafend, tmp_path, "build", "-t", "cfg:test", str(ctx))
    info = inspect(hafend, tmp_path, "cfg:test")
    cfg = info["Config"]
    assert cfg["Env"] == ["PATH=/opt/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                          "GREETING=hello world"]  # fmt: skip
    assert cfg["Labels"] == {"org.example.name": "demo app", "version": "1"}
    assert cfg["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}, "9000/tcp": {}, "9001/tcp": {}}
    assert cfg["Volumes"] == {"/data": {}, "/cache": {}, "/json vol": {}}
    assert cfg["WorkingDir"] == "/srv/sub"
    assert cfg["User"] == "1000:1000"
    assert cfg["StopSignal"] == "SIGQUIT"
    assert cfg["Healthcheck"] == {
        "Test": ["CMD-SHELL", "wget -q localhost || exit 1"],
        "Interval": 5_000_000_000,
        "Timeout": 2_000_000_000,
        "Retries": 4,
    }
    assert cfg["Shell"] == ["/bin/sh", "-ec"]
    assert cfg["OnBuild"] == ["RUN echo triggered"]
    assert cfg["Entrypoint"] == ["/bin/echo"]
    assert cfg["Cmd"] == ["/bin/sh", "-ec", "echo $GREETING"]  # shell form uses SHELL
    assert info["Author"] == "someone <a@b.c>"
    history = image_config(hafend, info["Id"])["history"]
    ours = history[-15:]
    assert [h.get("empty_layer", False) for h in ours] == [
        True, True, True, True, True, True,  # MAINTAINER ENV LABEL EXPOSE VOLUME VOLUME
        False, False,  # WORKDIR /srv, WORKDIR sub: each creates its directory
        True, True, True, True, True, True, True,
    ]  # fmt: skip
    assert ours[0]["created_by"] == "/bin/sh -c #(nop)  MAINTAINER someone <a@b.c>"
    assert ours[-1]["created_by"] == '/bin/sh -c #(nop)  CMD ["/bin/sh" "-ec" "echo $GREETING"]'


def test_env_expansion_user_and_workdir_reach_later_runs(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        """FROM busybox
ENV BASE=/opt/app NAME=demo
ENV DIR=${BASE}/${NAME:-none} UNSET=${NOPE:-fallback} LIT=\\$BASE
WORKDIR $DIR
RUN pwd > /tmp/pwd && id -u >> /tmp/pwd && mkdir -p /home/u && chown 1234 /home/u
USER 1234
WORKDIR /home/u
RUN id -u > who && pwd >> who && echo "$UNSET $LIT" >> who
""",
    )
    docker(hafend, tmp_path, "build", "-t", "envuser:test", str(ctx))
    out = run_in(hafend, tmp_path, "envuser:test", "cat /tmp/pwd /home/u/who")
    assert out == "/opt/app/demo\n0\n1234\n/home/u\nfallback $BASE\n"


def test_arg_scoping_build_args_and_args_before_from(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        """ARG TAG=latest
ARG UNUSED_META=x
FROM busybox:${TAG} AS one
ARG TAG
ARG GREETING=hi
ARG EMPTY
RUN echo "tag=$TAG greeting=$GREETING empty=[$EMPTY]" > /args
FROM one
RUN echo "second=[$GREETING][$TAG]" >> /args
""",
    )
    result = docker(
        hafend, tmp_path, "build", "--build-arg", "GREETING=hello", "--build-arg", "NOT_DECLARED=1",
        "-t", "args:test", str(ctx),
    )  # fmt: skip
    assert "[Warning] One or more build-args [NOT_DECLARED] were not consumed" in result.stdout
    out = run_in(hafend, tmp_path, "args:test", "cat /args; env | grep -c GREETING || true")
    assert out == "tag=latest greeting=hello empty=[]\nsecond=[][]\n0\n"
    info = inspect(hafend, tmp_path, "args:test")
    history = image_config(hafend, info["Id"])["history"]
    assert any(h["created_by"].startswith("|2 GREETING=hello TAG=latest /bin/sh -c echo")
               for h in history)  # fmt: skip


def test_multistage_copy_from_target_and_skipped_stages(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        """FROM busybox AS build
RUN mkdir -p /out && echo built > /out/artifact && echo extra > /out/extra
FROM busybox AS broken
RUN exit 7
FROM scratch AS final
COPY --from=build /out/artifact /artifact
COPY --from=0 /bin/busybox /bin/sh
FROM busybox AS other
COPY --from=final /artifact /copied
""",
    )
    result = docker(hafend, tmp_path, "build", "--target", "final", "-t", "multi:final", str(ctx))
    assert "exit 7" not in result.stdout  # the broken stage is not needed by the target
    info = inspect(hafend, tmp_path, "multi:final")
    assert len(info["RootFS"]["Layers"]) == 2
    assert docker(hafend, tmp_path, "run", "--rm", "multi:final", "/bin/sh", "--help",
                  check=False).returncode in (0, 1)  # fmt: skip
    docker(hafend, tmp_path, "build", "--target", "other", "-t", "multi:other", str(ctx))
    assert run_in(hafend, tmp_path, "multi:other", "cat /copied") == "built\n"
    missing = docker(hafend, tmp_path, "build", "--target", "nope", str(ctx), check=False)
    assert missing.returncode != 0
    assert "failed to reach build target nope" in missing.stderr


def test_copy_rules_chown_chmod_wildcards_and_dirs(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        """FROM busybox
COPY a.txt b.txt /multi/
COPY *.txt /glob/
COPY dir /contents
COPY dir /named/dir/
COPY a.txt /renamed
COPY --chown=1:2 --chmod=640 a.txt /owned
COPY <<EOF /inline.txt
value=$HOSTNAME_NOT_SET-end
EOF
""",
        {"a.txt": "A", "b.txt": "B", "dir/sub/f": "F", "dir/top": "T"},
    )
    docker(hafend, tmp_path, "build", "-t", "copy:test", str(ctx))
    out = run_in(
        hafend,
        tmp_path,
        "copy:test",
        "ls /multi /glob /contents /contents/sub /named/dir; cat /renamed; echo; "
        "stat -c '%u:%g %a' /owned /multi/a.txt; cat /inline.txt",
    )
    assert out == (
        "/contents:\nsub\ntop\n\n/contents/sub:\nf\n\n/glob:\na.txt\nb.txt\n\n/multi:\na.txt\n"
        "b.txt\n\n/named/dir:\nsub\ntop\nA\n1:2 640\n0:0 644\nvalue=-end\n"
    )
    bad = make_context(tmp_path / "bad", "FROM busybox\nCOPY a.txt b.txt /notadir\n",
                       {"a.txt": "A", "b.txt": "B"})  # fmt: skip
    result = docker(hafend, tmp_path, "build", str(bad), check=False)
    assert result.returncode != 0 and "must be a directory and end with a /" in result.stderr


def test_dockerignore_rules(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        "FROM busybox\nCOPY . /ctx/\n",
        {
            ".dockerignore": "**/*.log\nsecret/\n!secret/keep.txt\ntmp*\n# comment\n",
            "app.py": "x",
            "debug.log": "x",
            "deep/nested/trace.log": "x",
            "deep/nested/code.py": "x",
            "secret/key.pem": "x",
            "secret/keep.txt": "x",
            "tmpfile": "x",
        },
    )
    docker(hafend, tmp_path, "build", "-t", "ignore:test", str(ctx))
    out = run_in(hafend, tmp_path, "ignore:test", "cd /ctx && find . -type f | sort")
    assert out.split() == [
        "./.dockerignore", "./Dockerfile", "./app.py", "./deep/nested/code.py", "./secret/keep.txt",
    ]  # fmt: skip


def test_onbuild_triggers_run_in_the_child(hafend: Hafend, tmp_path: Path) -> None:
    base = make_context(
        tmp_path / "base",
        "FROM busybox\nONBUILD COPY msg /msg\nONBUILD RUN echo triggered >> /msg\n",
    )
    docker(hafend, tmp_path, "build", "-t", "onbuild-base:test", str(base))
    child = make_context(
        tmp_path / "child", "FROM onbuild-base:test\nRUN cat /msg\n", {"msg": "from child\n"}
    )
    result = docker(hafend, tmp_path, "build", "-t", "onbuild-child:test", str(child))
    assert "Executing 2 build triggers" in result.stdout
    assert run_in(hafend, tmp_path, "onbuild-child:test", "cat /msg") == "from child\ntriggered\n"
    assert inspect(hafend, tmp_path, "onbuild-child:test")["Config"].get("OnBuild") in (None, [])


def test_cache_hits_and_misses(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx",
        "FROM busybox\nARG V=1\nRUN echo $V > /v\nCOPY f /f\nRUN cat /f /v > /both\n",
        {"f": "one"},
    )
    first = docker(hafend, tmp_path, "build", "-t", "cache:test", str(ctx)).stdout
    assert "Using cache" not in first.split("Step 3/5")[1]
    id1 = inspect(hafend, tmp_path, "cache:test")["Id"]
    second = docker(hafend, tmp_path, "build", "-t", "cache:test", str(ctx)).stdout
    assert second.count("Using cache") == 4 and "Running in" not in second
    assert inspect(hafend, tmp_path, "cache:test")["Id"] == id1
    (ctx / "f").write_text("two")
    third = docker(hafend, tmp_path, "build", "-t", "cache:test", str(ctx)).stdout
    assert third.count("Using cache") == 2  # ARG and the first RUN; COPY and later miss
    layers1 = image_config(hafend, id1)["rootfs"]["diff_ids"]
    layers3 = inspect(hafend, tmp_path, "cache:test")["RootFS"]["Layers"]
    assert layers3[:2] == layers1[:2] and layers3[2:] != layers1[2:]  # the reused RUN layer
    assert run_in(hafend, tmp_path, "cache:test", "cat /both") == "two1\n"
    changed_arg = docker(hafend, tmp_path, "build", "--build-arg", "V=2", str(ctx)).stdout
    assert changed_arg.count("Using cache") == 1  # only ARG itself
    no_cache = docker(hafend, tmp_path, "build", "--no-cache", str(ctx)).stdout
    assert "Using cache" not in no_cache


def test_failing_run_stops_the_build_and_tags_nothing(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(
        tmp_path / "ctx", "FROM busybox\nRUN echo before-fail && exit 3\nRUN echo never\n"
    )
    result = docker(hafend, tmp_path, "build", "-t", "fail:test", str(ctx), check=False)
    assert result.returncode == 3 or result.returncode == 1
    assert "before-fail" in result.stdout
    assert "returned a non-zero code: 3" in result.stderr
    assert "never" not in result.stdout
    assert docker(hafend, tmp_path, "image", "inspect", "fail:test", check=False).returncode != 0


def test_bad_input_errors(hafend: Hafend, tmp_path: Path) -> None:
    syntax = make_context(tmp_path / "syntax", "FROM busybox\n\nRUNN echo\n")
    result = docker(hafend, tmp_path, "build", str(syntax), check=False)
    assert result.returncode != 0 and "Dockerfile:3: unknown instruction: RUNN" in result.stderr
    outside = make_context(tmp_path / "outside", "FROM busybox\nCOPY ../etc/passwd /x\n")
    result = docker(hafend, tmp_path, "build", str(outside), check=False)
    assert result.returncode != 0
    assert "Dockerfile:2: forbidden path outside the build context: ../etc/passwd" in result.stderr
    missing = make_context(tmp_path / "missing", "FROM busybox\nCOPY nothere /x\n")
    result = docker(hafend, tmp_path, "build", str(missing), check=False)
    assert result.returncode != 0
    assert "Dockerfile:2: file not found in build context" in result.stderr and "nothere" in (
        result.stderr
    )
    no_stage = make_context(tmp_path / "nostage", "FROM busybox\nCOPY --from=ghost /a /b\n")
    result = docker(hafend, tmp_path, "build", str(no_stage), check=False)
    assert result.returncode != 0
    assert "Dockerfile:2: No such image: ghost (the --from stage or image)" in result.stderr
    bad_args = make_context(tmp_path / "args", "FROM busybox\n\nCOPY onlyone\n")
    result = docker(hafend, tmp_path, "build", str(bad_args), check=False)
    assert result.returncode != 0
    assert "Dockerfile:3: COPY requires at least two arguments" in result.stderr
    result = docker(hafend, tmp_path, "build", "--target", "nosuch", str(no_stage), check=False)
    assert result.returncode != 0 and "failed to reach build target nosuch" in result.stderr


def test_dockerfile_outside_context_and_from_stdin(hafend: Hafend, tmp_path: Path) -> None:
    ctx = make_context(tmp_path / "ctx", "FROM busybox\n", {"data": "payload"})
    (ctx / "Dockerfile").unlink()
    outside = tmp_path / "elsewhere.Dockerfile"
    outside.write_text("FROM busybox\nCOPY data /data\n")
    docker(hafend, tmp_path, "build", "-f", str(outside), "-t", "outside:test", str(ctx))
    assert run_in(hafend, tmp_path, "outside:test", "cat /data") == "payload"
    docker(hafend, tmp_path, "build", "-f", "-", "-t", "stdin:test", str(ctx),
           input="FROM busybox\nCOPY data /from-stdin\n")  # fmt: skip
    assert run_in(hafend, tmp_path, "stdin:test", "cat /from-stdin") == "payload"
    docker(hafend, tmp_path, "build", "-t", "nocontext:test", "-", input="FROM busybox\nENV X=1\n")
    assert inspect(hafend, tmp_path, "nocontext:test")["Config"]["Env"][-1] == "X=1"


def test_buildkit_requests_are_refused_clearly(hafend: Hafend, tmp_path: Path) -> None:
    import urllib.parse

    from tests.integration.test_api import call

    status, body, _ = call(hafend, "POST", "/build?" + urllib.parse.urlencode({"version": "2"}))
    assert status == 400 and "DOCKER_BUILDKIT=0" in body["message"]
