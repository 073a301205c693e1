"""The docker CLI's `logs` against hafend: --details with the json-file attribute options
(labels, labels-regex, env, env-regex, tag), and the other logs flags."""

from __future__ import annotations

import json
from pathlib import Path

from tests.compat.test_docker_cli import docker
from tests.conftest import Hafend


def test_docker_logs_details_show_labels_env_and_tag(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(
        hafend, tmp_path, "run", "-d", "--name", "logattrs",
        "--label", "team=core", "--label", "tier=web", "--label", "other=x",
        "-e", "STAGE=prod", "-e", "SECRET=no", "-e", "APP_MODE=fast run",
        "--log-opt", "labels=team,missing", "--log-opt", "labels-regex=^ti",
        "--log-opt", "env=STAGE", "--log-opt", "env-regex=^APP_",
        "--log-opt", "tag={{.Name}}/{{.ID}}",
        "busybox", "sh", "-c", "echo one; echo two >&2",
    ).stdout.strip()  # fmt: skip
    try:
        docker(hafend, tmp_path, "wait", cid)
        prefix = f"APP_MODE=fast+run,STAGE=prod,tag=logattrs%2F{cid[:12]},team=core,tier=web "
        result = docker(hafend, tmp_path, "logs", "--details", cid)
        assert result.stdout == prefix + "one\n"
        assert result.stderr == prefix + "two\n"
        # timestamps come first, then the details
        stamped = docker(hafend, tmp_path, "logs", "--details", "-t", cid).stdout
        stamp, rest = stamped.split(" ", 1)
        assert stamp.endswith("Z") and rest == prefix + "one\n"
        assert docker(hafend, tmp_path, "logs", cid).stdout == "one\n"  # no details: plain
        # the attributes are in every record of the json-file, as dockerd writes them
        log_path = docker(hafend, tmp_path, "inspect", "-f", "{{.LogPath}}", cid).stdout.strip()
        records = [json.loads(line) for line in Path(log_path).read_text().splitlines()]
        assert {r["log"] for r in records} == {"one\n", "two\n"}
        assert all(r["attrs"]["tag"] == f"logattrs/{cid[:12]}" for r in records)
        assert list(records[0]) == ["log", "stream", "attrs", "time"]
        # and hafen's CLI shows the same
        assert hafend.cli("logs", "--details", cid).stdout == prefix + "one\n"
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_docker_logs_details_without_attributes_is_a_space(hafend: Hafend, tmp_path: Path) -> None:
    cid = docker(hafend, tmp_path, "run", "-d", "busybox", "echo", "plain").stdout.strip()
    try:
        docker(hafend, tmp_path, "wait", cid)
        assert docker(hafend, tmp_path, "logs", "--details", cid).stdout == " plain\n"
        assert hafend.cli("logs", "--details", cid).stdout == " plain\n"
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_bad_log_attribute_options_are_refused(hafend: Hafend, tmp_path: Path) -> None:
    for opt, message in [
        ("tag={{.Nope}}", "unknown field 'Nope'"),
        ("tag={{json .Name}}", "renders only"),
        ("env-regex=(", "invalid regular expression"),
        ("mode=async", "logging mode not supported"),
        ("max-buffer-size=4m", "only supported with 'mode=non-blocking'"),
        ("compress=maybe", "invalid boolean"),
    ]:
        r = docker(hafend, tmp_path, "create", "--log-opt", opt, "busybox", check=False)
        assert r.returncode != 0 and message in r.stderr, (opt, r.stderr)


def test_docker_local_log_driver_with_every_logs_option(hafend: Hafend, tmp_path: Path) -> None:
    """--log-driver local: compact framed records, rotated and compressed (its defaults,
    here with a small max-size), read by `docker logs` with -t, --tail, --since, --until,
    -f and --details; stdout and stderr kept apart."""
    cid = docker(
        hafend, tmp_path, "run", "-d", "--log-driver", "local", "--log-opt", "max-size=1k",
        "busybox", "sh", "-c",
        "i=0; while [ $i -lt 200 ]; do echo out-$i; i=$((i+1)); done; echo oops >&2;"
        " sleep 1.2; echo last",
    ).stdout.strip()  # fmt: skip
    try:
        assert docker(hafend, tmp_path, "wait", cid).stdout.strip() == "0"
        config = json.loads(docker(hafend, tmp_path, "inspect", "-f",
                                   "{{json .HostConfig.LogConfig}}", cid).stdout)  # fmt: skip
        assert config == {"Type": "local", "Config": {"max-size": "1k"}}
        log_path = Path(docker(hafend, tmp_path, "inspect", "-f", "{{.LogPath}}",
                               cid).stdout.strip())  # fmt: skip
        names = sorted(p.name for p in log_path.parent.iterdir())
        assert names[0] == "container.log" and names[1].endswith(".gz")  # rotated, gzipped
        assert not log_path.read_bytes().startswith(b"{")  # not json lines
        result = docker(hafend, tmp_path, "logs", cid)
        out = result.stdout.split()
        assert out[-1] == "last" and result.stderr == "oops\n"
        numbers = [int(w.split("-")[1]) for w in out[:-1]]
        assert numbers == list(range(numbers[0], 200))
        # --tail counts records of both streams: out-199, oops (stderr), last
        assert docker(hafend, tmp_path, "logs", "--tail", "3", cid).stdout.split() == [
            "out-199", "last"
        ]  # fmt: skip
        stamped = docker(hafend, tmp_path, "logs", "-t", "--tail", "1", cid).stdout.split()
        assert stamped[0].endswith("Z") and stamped[1] == "last"
        assert docker(hafend, tmp_path, "logs", "--since", stamped[0], cid).stdout == "last\n"
        until = docker(hafend, tmp_path, "logs", "--until", stamped[0], "--tail", "3", cid)
        assert until.stdout.split() == ["out-199", "last"]
        assert docker(hafend, tmp_path, "logs", "-f", cid).stdout.split() == out
        assert docker(hafend, tmp_path, "logs", "--details", "--tail", "1",
                      cid).stdout == " last\n"  # fmt: skip
        assert hafend.cli("logs", "--tail", "1", cid).stdout == "last\n"
    finally:
        docker(hafend, tmp_path, "rm", "-f", cid)


def test_docker_run_with_non_blocking_log_mode_and_a_buffer_size(
    hafend: Hafend, tmp_path: Path
) -> None:
    """`docker run --log-opt mode=non-blocking --log-opt max-buffer-size=4m` runs, keeps
    the options, and its log reads back through `docker logs`."""
    result = docker(
        hafend, tmp_path, "run", "--name", "nonblocking", "--log-opt", "mode=non-blocking",
        "--log-opt", "max-buffer-size=4m", "busybox", "sh", "-c", "seq 1 3; echo err >&2",
    )  # fmt: skip
    try:
        assert result.stdout == "1\n2\n3\n" and result.stderr == "err\n"
        config = json.loads(docker(hafend, tmp_path, "inspect", "-f",
                                   "{{json .HostConfig.LogConfig}}", "nonblocking").stdout)  # fmt: skip
        assert config == {
            "Type": "json-file",
            "Config": {"mode": "non-blocking", "max-buffer-size": "4m"},
        }
        logs = docker(hafend, tmp_path, "logs", "nonblocking")
        assert (logs.stdout, logs.stderr) == ("1\n2\n3\n", "err\n")
    finally:
        docker(hafend, tmp_path, "rm", "-f", "nonblocking")
