"""run/create flags -> the create JSON docker would send."""

from __future__ import annotations

from pathlib import Path

import pytest

from hafen.cli.runopts import (
    RunOptions,
    build_create_body,
    familiar_tagged,
    parse_env,
    parse_publish,
    parse_restart,
    parse_volumes,
    split_repo_tag,
)
from hafen.errors import InvalidArgument


def test_minimal_run_attaches_stdout_and_stderr_only() -> None:
    body = build_create_body(RunOptions(image="busybox", command=["echo", "hi"]), environ={})
    assert body["Image"] == "busybox"
    assert body["Cmd"] == ["echo", "hi"]
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, True, True)
    assert body["OpenStdin"] is False and body["StdinOnce"] is False and body["Tty"] is False
    assert body["Entrypoint"] is None
    assert body["HostConfig"]["NetworkMode"] == "default"
    assert body["HostConfig"]["AutoRemove"] is False
    assert body["HostConfig"]["RestartPolicy"] == {"Name": "", "MaximumRetryCount": 0}


def test_no_command_leaves_cmd_null_for_the_image_default() -> None:
    assert build_create_body(RunOptions(image="busybox"), environ={})["Cmd"] is None


def test_detached_run_attaches_nothing() -> None:
    body = build_create_body(RunOptions(image="busybox", detach=True, interactive=True), environ={})
    assert not (body["AttachStdin"] or body["AttachStdout"] or body["AttachStderr"])
    assert body["OpenStdin"] is True and body["StdinOnce"] is False


def test_interactive_tty_opens_and_attaches_stdin_once() -> None:
    opts = RunOptions(image="busybox", interactive=True, tty=True, console_size=(40, 120))
    body = build_create_body(opts, environ={})
    assert body["AttachStdin"] and body["OpenStdin"] and body["StdinOnce"] and body["Tty"]
    assert body["HostConfig"]["ConsoleSize"] == [40, 120]


def test_explicit_attach_streams() -> None:
    body = build_create_body(RunOptions(image="b", attach=["STDERR"]), environ={})
    assert (body["AttachStdin"], body["AttachStdout"], body["AttachStderr"]) == (False, False, True)
    with pytest.raises(InvalidArgument):
        build_create_body(RunOptions(image="b", attach=["stdfoo"]), environ={})


def test_env_from_flags_environment_and_file(tmp_path: Path) -> None:
    env_file = tmp_path / "env"
    env_file.write_text("# comment\n\nFROM_FILE=1\nPASSED\n")
    env = parse_env(
        ["A=1", "HOME_VAR", "UNSET_VAR", "EMPTY="],
        [str(env_file)],
        environ={"HOME_VAR": "/root", "PASSED": "p"},
    )
    assert env == ["FROM_FILE=1", "PASSED=p", "A=1", "HOME_VAR=/root", "EMPTY="]


def test_labels_workdir_user_hostname_entrypoint() -> None:
    opts = RunOptions(
        image="busybox",
        labels=["a=1", "flag"],
        workdir="/srv",
        user="1000:1000",
        hostname="box",
        entrypoint="/bin/sh",
        stop_signal="SIGINT",
        stop_timeout=3,
    )
    body = build_create_body(opts, environ={})
    assert body["Labels"] == {"a": "1", "flag": ""}
    assert body["WorkingDir"] == "/srv" and body["User"] == "1000:1000"
    assert body["Hostname"] == "box"
    assert body["Entrypoint"] == ["/bin/sh"]
    assert body["StopSignal"] == "SIGINT" and body["StopTimeout"] == 3


def test_empty_entrypoint_resets_it() -> None:
    body = build_create_body(RunOptions(image="busybox", entrypoint=""), environ={})
    assert body["Entrypoint"] == [""]


def test_host_config_flags_map_to_docker_fields() -> None:
    opts = RunOptions(
        image="busybox",
        auto_remove=True,
        memory="512m",
        pids_limit=100,
        cpus=1.5,
        privileged=True,
        cap_add=["NET_ADMIN"],
        cap_drop=["ALL"],
        read_only=True,
        init=True,
        volumes=["/host:/data:ro", "named:/vol", "/anon"],
        publish=["8080:80", "127.0.0.1::53/udp"],
    )
    host = build_create_body(opts, environ={})["HostConfig"]
    assert host["AutoRemove"] is True
    assert host["Memory"] == 512 * 1024 * 1024
    assert host["PidsLimit"] == 100
    assert host["NanoCpus"] == 1_500_000_000
    assert host["Privileged"] and host["ReadonlyRootfs"] and host["Init"]
    assert host["CapAdd"] == ["NET_ADMIN"] and host["CapDrop"] == ["ALL"]
    assert host["Binds"] == ["/host:/data:ro", "named:/vol"]
    assert host["PortBindings"] == {
        "80/tcp": [{"HostIp": "", "HostPort": "8080"}],
        "53/udp": [{"HostIp": "127.0.0.1", "HostPort": ""}],
    }
    body = build_create_body(opts, environ={})
    assert body["Volumes"] == {"/anon": {}}
    assert body["ExposedPorts"] == {"80/tcp": {}, "53/udp": {}}


def test_publish_ranges_and_ipv6() -> None:
    exposed, bindings = parse_publish(["8000-8001:80-81", "[::1]:9000:90"])
    assert set(exposed) == {"80/tcp", "81/tcp", "90/tcp"}
    assert bindings["81/tcp"] == [{"HostIp": "", "HostPort": "8001"}]
    assert bindings["90/tcp"] == [{"HostIp": "::1", "HostPort": "9000"}]
    with pytest.raises(InvalidArgument, match="invalid containerPort"):
        parse_publish(["8080:http"])


@pytest.mark.parametrize(
    ("spec", "policy"),
    [
        ("no", {"Name": "", "MaximumRetryCount": 0}),
        ("always", {"Name": "always", "MaximumRetryCount": 0}),
        ("unless-stopped", {"Name": "unless-stopped", "MaximumRetryCount": 0}),
        ("on-failure:3", {"Name": "on-failure", "MaximumRetryCount": 3}),
    ],
)
def test_restart_policies(spec: str, policy: dict[str, object]) -> None:
    assert parse_restart(spec) == policy


def test_bad_restart_and_rm_with_restart_are_refused() -> None:
    with pytest.raises(InvalidArgument):
        parse_restart("sometimes")
    with pytest.raises(InvalidArgument, match="--restart and --rm"):
        build_create_body(RunOptions(image="b", auto_remove=True, restart="always"), environ={})


def test_relative_anonymous_volume_is_refused() -> None:
    with pytest.raises(InvalidArgument):
        parse_volumes(["data"])


def test_reference_helpers() -> None:
    assert familiar_tagged("busybox") == "busybox:latest"
    assert familiar_tagged("docker.io/library/busybox:1.36") == "busybox:1.36"
    assert familiar_tagged("localhost:5000/x") == "localhost:5000/x:latest"
    assert split_repo_tag("localhost:5000/x:v1") == ("localhost:5000/x", "v1")
    assert split_repo_tag("localhost:5000/x") == ("localhost:5000/x", None)
